//! testlayer: runs a test suite as layers of categories, in Kubernetes or as
//! local processes, planned by one pure planner.

pub mod config;
pub mod layer;
pub mod plan;
