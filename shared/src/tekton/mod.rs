//! Tekton: the PipelineRun the controller writes, what it reads back, and what that means — the
//! types, the builder, the failure classification and the ownership (lock) model.

pub mod builder;
pub mod classify;
pub mod observed;
pub mod ownership;
mod types;

pub use types::*;
