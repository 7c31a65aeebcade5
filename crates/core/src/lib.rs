//! The pure core of testlayer, shared by both executors: the layer config,
//! the resolved layer model, the planner, test results and run reports.
//!
//! Plain data and functions: no I/O runtime, no Kubernetes client and no
//! clock reads (time comes in as arguments), so everything here is tested
//! exhaustively without a cluster. The Kubernetes operator
//! (`testlayer-operator`) and the local executor (`testlayer-local`) are
//! siblings that depend on this crate and never on each other.

pub mod config;
pub mod history;
pub mod layer;
pub mod parse_words;
pub mod plan;
pub mod report;
mod report_html;
pub mod resources;
pub mod results;
pub mod schedule;
pub mod trend;
pub mod words;
