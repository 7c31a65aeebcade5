//! The TestLayerRun reconciler: read what is stored ([`read`]), decide
//! with the pure [`step`], write what it said ([`apply`]); with the pure
//! builders of the objects a run makes ([`build`]), the reading of its Pods
//! ([`pod_state`]) and its frozen plan ([`frozen_plan`]).

pub(crate) mod apply;
pub mod build;
pub mod frozen_plan;
pub mod happened;
pub mod node_health;
pub mod pod_state;
pub(crate) mod pod_sweep;
pub(crate) mod read;
pub(crate) mod read_logs;
pub mod reconcile;
pub mod step;
