#!/usr/bin/env bash
# Builds the workspace's tests and runs their binaries side by side: most of
# them spend their time waiting on a control plane, a node or a container,
# so several at once finish the suite sooner than `cargo test`, which runs one
# binary after another. At most one binary that starts a real node runs at a
# time (they time what the node does), and one always runs while any is
# left; the longest binaries (as measured by the last run, kept in the
# cache) start first.
#
# Usage: scripts/test-binaries.sh [LANES]   (default: TESTLAYER_TEST_LANES or 3)
# Three on two cores: the binaries wait far more than they compute (with
# two, the CPUs were 70% busy), and one lane is the real node's.
# Each binary's output (every test's line, as `cargo test` prints it) is
# printed whole when the binary ends; the exit status is 1
# when any binary failed, and the failures are listed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

lanes="${1:-${TESTLAYER_TEST_LANES:-3}}"
cache="${TESTLAYER_CACHE:-$HOME/.cache/testlayer}"
mkdir -p "$cache"
times="$cache/test-times.tsv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
  > "$work/build.json"

# One line per test binary: name, package directory, executable, whether it
# starts a real node (its source names one).
python3 - "$work/build.json" "$times" > "$work/plan.tsv" <<'EOF'
import json, os, sys
build, times_path = sys.argv[1], sys.argv[2]
known = {}
if os.path.exists(times_path):
    for line in open(times_path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 2:
            try:
                known[parts[0]] = float(parts[1])
            except ValueError:
                pass
rows = []
for line in open(build):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if not m["profile"]["test"]:
        continue
    t = m["target"]
    name = f"{t['kind'][0]}:{t['name']}"
    src = open(t["src_path"], encoding="utf-8", errors="replace").read()
    node = any(w in src for w in ("real_node()", "RealNode::", "Release::install", "cluster/up.sh"))
    rows.append((name, os.path.dirname(m["manifest_path"]), m["executable"], node))
# Longest first; unknown ones (a new binary) before the known short ones.
rows.sort(key=lambda r: -known.get(r[0], 60.0))
for name, cwd, exe, node in rows:
    print(f"{name}\t{cwd}\t{exe}\t{'node' if node else 'plain'}")
EOF

# The machine's CPU time (busy, total) so far, from /proc/stat: how busy the
# binaries kept it says whether more lanes would help.
cpu_ticks() {
  awk '/^cpu / { idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print total - idle, total }' /proc/stat
}
read -r busy0 total0 < <(cpu_ticks)

mapfile -t plan < "$work/plan.tsv"
total=${#plan[@]}
echo "running $total test binaries, $lanes at a time"

declare -A pid_name=() pid_kind=() pid_start=()
declare -a failed=()
node_running=0
next_free=()
for i in "${!plan[@]}"; do next_free+=("$i"); done
: > "$work/times.tsv"

start_one() {
  local idx="$1" name cwd exe kind
  IFS=$'\t' read -r name cwd exe kind <<< "${plan[$idx]}"
  (cd "$cwd" && exec "$exe") > "$work/$idx.log" 2>&1 &
  local pid=$!
  pid_name[$pid]="$idx"
  pid_kind[$pid]="$kind"
  pid_start[$pid]="$(date +%s)"
  if [ "$kind" = node ]; then node_running=1; fi
}

# Starts the next binary that may run now, a real-node one first when no
# real node runs (so that they do not all wait for the end); returns 1 when
# none may.
start_next() {
  local want k idx kind
  for want in node plain; do
    if [ "$want" = node ] && [ "$node_running" = 1 ]; then continue; fi
    for k in "${!next_free[@]}"; do
      idx="${next_free[$k]}"
      kind="$(cut -f4 <<< "${plan[$idx]}")"
      [ "$kind" = "$want" ] || continue
      unset 'next_free[k]'
      next_free=("${next_free[@]}")
      start_one "$idx"
      return 0
    done
  done
  return 1
}

while [ "${#next_free[@]}" -gt 0 ] || [ "${#pid_name[@]}" -gt 0 ]; do
  while [ "${#pid_name[@]}" -lt "$lanes" ] && [ "${#next_free[@]}" -gt 0 ] && start_next; do :; done
  done_pid=""
  rc=0
  wait -n -p done_pid "${!pid_name[@]}" || rc=$?
  [ -n "$done_pid" ] || continue
  idx="${pid_name[$done_pid]}"
  IFS=$'\t' read -r name cwd exe kind <<< "${plan[$idx]}"
  took=$(( $(date +%s) - pid_start[$done_pid] ))
  if [ "$kind" = node ]; then node_running=0; fi
  unset "pid_name[$done_pid]" "pid_kind[$done_pid]" "pid_start[$done_pid]"
  printf '%s\t%s\n' "$name" "$took" >> "$work/times.tsv"
  if [ "$rc" = 0 ]; then
    printf '\n--- %s passed in %ss; its output:\n' "$name" "$took"
  else
    failed+=("$name")
    printf '\n--- %s FAILED with exit %s after %ss; its output:\n' "$name" "$rc" "$took"
  fi
  cat "$work/$idx.log"
done

# Keep the measured durations for the next run's order (only when whole).
if [ "$(wc -l < "$work/times.tsv")" -eq "$total" ]; then
  cp "$work/times.tsv" "$times"
fi

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\n%s of %s test binaries failed: %s\n' "${#failed[@]}" "$total" "${failed[*]}"
  exit 1
fi
# A suite that ran nothing has proven nothing: count the tests that passed.
passed=$(cat "$work"/*.log | sed -nE 's/^test result: ok\. ([0-9]+) passed.*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
if [ "$passed" -eq 0 ]; then
  echo "no test ran in $total test binaries" >&2
  exit 1
fi
read -r busy1 total1 < <(cpu_ticks)
printf '\nall %s test binaries passed: %s tests; the CPUs were %s%% busy meanwhile\n' \
  "$total" "$passed" "$(( 100 * (busy1 - busy0) / (total1 - total0 > 0 ? total1 - total0 : 1) ))"
