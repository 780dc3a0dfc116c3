//! Everything the WorkflowExecution webhook, controller and tests must agree on. Pure: no I/O.
//!
//! The tree tells the two flows:
//! - [`api`]: the API types, the names derived from them, and the limits;
//! - [`admission`]: what the webhook does to an object before it is stored (defaulting,
//!   validation, and the grammars both use);
//! - [`tekton`]: the Tekton objects the controller writes and reads (types, the PipelineRun
//!   builder, failure classification, who holds a target's lock);
//! - [`status`]: the status an execution should have (desired status, conditions, summary, the
//!   phase state machine);
//! - [`safety`]: the rules that keep a target safe before anything runs on it (one execution at a
//!   time, the block after an execution failure, backoff, cooldown);
//! - [`audit`]: the audit events of each transition, as DataStorage takes them;
//! - [`plan`]: everything one reconcile must do — the side effect, the status write, the Events,
//!   the log lines, the metrics and the requeue — for the controller to carry out.

pub mod admission;
pub mod api;
pub mod audit;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod plan;
pub mod safety;
pub mod status;
pub mod tekton;

pub use api::{Phase, WorkflowExecution, WorkflowExecutionSpec, WorkflowExecutionStatus};
