//! Admission: what happens to an object before it is stored — defaults filled, every rule checked —
//! and the grammars (target resource, Go durations, patterns) both sides parse with.

pub mod clearance;
pub mod defaulting;
pub mod duration;
pub mod patterns;
mod report;
pub mod target;
pub mod validation;
