//! Everything the WorkflowExecution webhook, controller and tests must agree on. Pure: no I/O.

pub mod api;
pub mod conditions;
pub mod crd;
pub mod defaulting;
pub mod desired;
pub mod duration;
pub mod failure;
pub mod labels;
pub mod limits;
pub mod patterns;
pub mod pipelinerun;
pub mod state;
pub mod target;
pub mod tekton;
pub mod validation;

pub use api::{Phase, WorkflowExecution, WorkflowExecutionSpec, WorkflowExecutionStatus};
