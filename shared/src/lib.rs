//! Everything the WorkflowExecution webhook, controller and tests must agree on. Pure: no I/O.

pub mod api;
pub mod crd;
pub mod limits;
pub mod patterns;
pub mod tekton;

pub use api::{Phase, WorkflowExecution, WorkflowExecutionSpec, WorkflowExecutionStatus};
