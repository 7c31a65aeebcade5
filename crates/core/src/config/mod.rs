//! The layer config: loading, checking, and resolving one layer for one
//! environment into a [`LayerPlan`](crate::layer::LayerPlan).
//!
//! Pure: [`Config::parse`] and everything after it do no I/O; only
//! [`Config::load`] reads a file.

pub mod error;
mod load;
pub mod names;
pub mod quantity;
pub mod raw;
mod resolve;

pub use error::{ConfigError, ConfigErrors};
pub use load::Config;
pub use raw::RawConfig;
pub use resolve::{MAX_CAPACITY, Overrides, resource_k8s_name, service_k8s_name};
