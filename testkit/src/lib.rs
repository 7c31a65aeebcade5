//! Test support for testlayer: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager built by `tests/cluster/build.sh`) and a test
//! kubelet that plays the nodes through the API server.

mod certs;
mod control_plane;
mod error;
pub mod kubelet;
mod process;

pub use control_plane::{BINARIES, ControlPlane, bin_dir, client_from_kubeconfig};
pub use error::TestkitError;
pub use kubelet::{
    KubeletOptions, LogServing, NodeFailure, OnSigterm, PodEnd, PodScript, TestKubelet,
};
