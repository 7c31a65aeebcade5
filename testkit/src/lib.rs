//! Test support for testlayer: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager built by `tests/cluster/build.sh`), a test
//! kubelet that plays the nodes through the API server, and a real node
//! (kubelet, containerd, runc) for tests that run real containers, and
//! Kueue's manager (built by `tests/kueue/build.sh`).

mod certs;
mod control_plane;
mod error;
pub mod imports;
pub mod kubelet;
pub mod kueue;
pub mod node;
mod ports;
mod process;

pub use control_plane::{
    BINARIES, ControlPlane, ControlPlaneOptions, bin_dir, client_from_kubeconfig,
};
pub use error::TestkitError;
pub use kubelet::{
    KubeletOptions, LogServing, NodeFailure, OnSigterm, PodEnd, PodScript, TestKubelet,
};
pub use kueue::Kueue;
pub use node::RealNode;
pub use process::processes_naming;
