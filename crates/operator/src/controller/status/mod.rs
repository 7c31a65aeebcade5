//! The pure vocabulary of every resource's status: conditions, and the
//! words of a stalled or invalid object.

pub(crate) mod conditions;
pub mod invalid;
pub mod note;
pub mod reasons;
