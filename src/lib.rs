//! testlayer: runs a test suite as layers of categories, in Kubernetes or as
//! local processes, planned by one pure planner.

pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod layer;
pub mod local;
pub mod plan;
pub mod report;
pub mod results;
