//! What schedules and triggers share: runs made from a template
//! ([`ticks`]: their names, groups, history and conditions), the shape of
//! the decision ([`decision`]), and writing it ([`apply`]).

pub mod apply;
pub mod decision;
pub mod ticks;
