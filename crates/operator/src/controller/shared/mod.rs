//! Shared resources (TestLayerResource): the pure rules of claims, grants
//! and their order ([`claims`]), and their I/O: creating and releasing
//! grants ([`writes`]), sweeping grants whose holders are gone
//! ([`sweep`]), and the status of each resource ([`status`]).

pub mod claims;
pub(crate) mod status;
pub(crate) mod sweep;
pub mod writes;
