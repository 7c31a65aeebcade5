//! testlayer: runs a test suite as layers of categories, in Kubernetes or as
//! local processes, planned by one pure planner.
//!
//! This crate is the `testlayer` command. The work lives in three crates it
//! re-exports: `testlayer-core` (config, planner, results, reports; pure),
//! `testlayer-local` (the local executor) and `testlayer-operator` (the API
//! types and the Kubernetes controller; with the default feature
//! `cluster`, which also brings the verbs that talk to a cluster: without
//! it, `testlayer` builds in a fraction of the time and runs layers locally).

pub mod cli;

pub use testlayer_core::{
    config, history, layer, parse_words, plan, report, results, trend, words,
};
pub use testlayer_local as local;
#[cfg(feature = "cluster")]
pub use testlayer_operator::{api, controller};
