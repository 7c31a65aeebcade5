//! The binaries a control plane is made of, and where build scripts put
//! them ([`bin_dir`], [`built_dir`]).

use std::path::{Path, PathBuf};

use crate::TestkitError;

/// Binaries the control plane is made of.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// Where the control-plane binaries are: `$TESTLAYER_BIN_DIR`, else what
/// `tests/cluster/build.sh --print-bin-dir` names.
pub fn bin_dir() -> Result<PathBuf, TestkitError> {
    built_dir(
        "TESTLAYER_BIN_DIR",
        "tests/cluster/build.sh",
        "--print-bin-dir",
    )
}

/// A directory a build script fills: `$env` when set, else what the
/// repository's `script flag` prints.
pub(crate) fn built_dir(env: &str, script: &str, flag: &str) -> Result<PathBuf, TestkitError> {
    if let Some(d) = std::env::var_os(env).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(flag)
        .output()
        .map_err(TestkitError::io(format!("running {}", script.display())))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
