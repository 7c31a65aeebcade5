//! What the cluster verbs print, as plain functions of what they read
//! (and of `now`): the progress lines of a followed run, the table of
//! `list`, the tree of `get`, the choice of logs of `logs`. No I/O here.

pub mod age;
pub mod line;
pub mod logs;
pub mod progress;
pub mod table;
pub mod tree;
