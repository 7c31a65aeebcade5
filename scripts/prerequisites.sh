#!/usr/bin/env bash
# Installs what the tests need and the machine may lack (the example needs
# only Rust and pytest: scripts/example.sh installs pytest itself):
# rustfmt and clippy, Python's pytest (for the example project), Lua 5.4
# (for the Argo CD health check test), Chromium (for the HTML report test),
# GNU time, unshare.
set -euo pipefail

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

if ! python3 -m pytest --version >/dev/null 2>&1; then
  python3 -m pip install --quiet pytest
fi

# Lua 5.4 runs the Argo CD health check in tests/gitops.rs.
if ! command -v lua5.4 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq lua5.4 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq lua5.4 >/dev/null; }
  else
    echo "error: lua5.4 is needed by tests/gitops.rs; install it (Debian: apt-get install lua5.4)" >&2
    exit 1
  fi
fi

# Headless Chromium opens the HTML report in tests/report_html.rs.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${TESTLAYER_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  else
    echo "error: chromium is needed by tests/report_html.rs; install it (Debian: apt-get install chromium) or set TESTLAYER_CHROMIUM" >&2
    exit 1
  fi
fi

if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq time >/dev/null
  else
    echo "note: /usr/bin/time is missing; peak memory of the control-plane build will not be measured" >&2
  fi
fi

# tests/kueue.rs runs Kueue's manager in a mount namespace of its own
# (`unshare`, util-linux) with an overlay on /etc: root and overlayfs.
if ! command -v unshare >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq util-linux >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
  else
    echo "error: unshare (util-linux) is needed by tests/kueue.rs" >&2
    exit 1
  fi
fi
