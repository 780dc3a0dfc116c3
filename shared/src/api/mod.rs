//! The `WorkflowExecution` API (`kubernaut.ai/v1alpha1`): spec, status and conditions, the CRD
//! generated from them, the names derived from them, and the limits they obey.

mod condition;
pub mod crd;
pub mod limits;
pub mod names;
mod spec;
mod status;

pub use condition::{Condition, ConditionReason, ConditionStatus, ConditionType};
pub use spec::{
    ExecutionConfig, RemediationRequestReference, WorkflowExecution, WorkflowExecutionSpec,
    WorkflowReference,
};
pub use status::{
    AuditEventType, BlockClearance, ClearMethod, ConflictingWorkflowRef, FailureDetails,
    FailureReason, Phase, PipelineRunRef, PipelineRunStatusSummary, RecentRemediationRef,
    SkipDetails, SkipReason, WorkflowExecutionStatus,
};

/// API group of the WorkflowExecution CRD.
pub const GROUP: &str = "kubernaut.ai";
/// API version of the WorkflowExecution CRD.
pub const VERSION: &str = "v1alpha1";
