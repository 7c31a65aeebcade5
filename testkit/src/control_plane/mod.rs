//! A real etcd + kube-apiserver + kube-controller-manager on loopback ports,
//! started from the binaries `tests/cluster/build.sh` builds.
//!
//! The flags follow controller-runtime's envtest, with client-certificate
//! auth for the admin, service-account tokens, and RBAC authorization on.
//!
//! This file holds the shared [`ControlPlane`]; `handle` holds the type
//! itself (what it offers, stopping it); `binaries` which binaries it runs
//! and where they are; `start` starts its processes; `clients` makes
//! clients and kubeconfigs; `setup` installs CRDs and creates namespaces.

mod binaries;
mod clients;
mod handle;
mod setup;
mod start;

use std::sync::OnceLock;

pub(crate) use binaries::built_dir;
pub use binaries::{BINARIES, bin_dir};
pub use clients::client_from_kubeconfig;
pub use handle::ControlPlane;
pub use start::ControlPlaneOptions;

use crate::process::{on_lasting_thread, remove_at_exit};

static SHARED: OnceLock<(bool, Result<ControlPlane, String>)> = OnceLock::new();

impl ControlPlane {
    /// The control plane shared by every test of this test binary, started on
    /// first use. Panics with the reason when it cannot be started, so that a
    /// missing build fails the test loudly instead of skipping it.
    pub fn shared() -> &'static ControlPlane {
        Self::shared_with(ControlPlaneOptions::default())
    }

    /// The shared control plane, started with `options` on first use. A test
    /// binary uses one kind: asking for another panics.
    pub fn shared_with(options: ControlPlaneOptions) -> &'static ControlPlane {
        let (scheduler, r) = SHARED.get_or_init(|| {
            let r = on_lasting_thread("control-plane", move || {
                ControlPlane::start_with(None, options)
            })
            .map(|mut cp| {
                cp.owns_dir = false;
                remove_at_exit(cp.dir.clone());
                cp
            });
            (options.scheduler, r)
        });
        assert_eq!(
            *scheduler, options.scheduler,
            "this test binary asked for the shared control plane with and without a scheduler"
        );
        match r {
            Ok(cp) => cp,
            Err(e) => panic!("the test control plane could not be started: {e}"),
        }
    }
}
