//! The Kubernetes operator of testlayer: the `TestLayerRun` and `CategoryRun`
//! API types and the controller that drives them through the planner of
//! `testlayer-core`.

pub mod api;
pub mod controller;
pub mod report;

pub(crate) use testlayer_core::{config, history, layer, plan, resources, results, words};
