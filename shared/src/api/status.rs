use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::condition::{Condition, ConditionStatus};

/// Observed state of a WorkflowExecution.
///
/// `status` and `status.phase` carry structural defaults (`{}` and `Pending`) in the CRD, so the API
/// server itself shows every object as `Pending` from the moment it is stored — see `docs/initial-phase.md`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {}))]
pub struct WorkflowExecutionStatus {
    /// The `metadata.generation` this status reflects.
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,

    /// Lifecycle phase.
    #[serde(default)]
    pub phase: Phase,

    /// When the PipelineRun was created.
    pub start_time: Option<Time>,

    /// When the execution reached a terminal phase.
    pub completion_time: Option<Time>,

    /// Rounded human duration between start and completion, e.g. `1m30s`.
    #[schemars(length(max = 64))]
    pub duration: Option<String>,

    /// The PipelineRun executing this WorkflowExecution.
    pub pipeline_run_ref: Option<PipelineRunRef>,

    /// Summary of the PipelineRun's state.
    pub pipeline_run_status: Option<PipelineRunStatusSummary>,

    /// Deprecated: mirror of `failureDetails.reason`, kept for older clients.
    pub failure_reason: Option<FailureReason>,

    /// Why the execution failed, set when `phase` is `Failed`.
    pub failure_details: Option<Box<FailureDetails>>,

    /// Why the execution was skipped, set when `phase` is `Skipped`.
    pub skip_details: Option<Box<SkipDetails>>,

    /// Consecutive pre-execution failures on this target, carried forward between executions.
    #[schemars(range(min = 0))]
    pub consecutive_failures: Option<i32>,

    /// Earliest time a new execution on this target may start (exponential backoff).
    pub next_allowed_execution: Option<Time>,

    /// An operator cleared this failed execution's block (SPEC 4): it no longer stops new
    /// executions on the target.
    pub block_clearance: Option<Box<BlockClearance>>,

    /// Audit events this execution owes, oldest first: the status is the outbox (SPEC 6). A
    /// transition whose events could not be delivered is written with them; once delivered, a
    /// write removes them and `AuditRecorded` turns True.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 8))]
    pub audit_pending: Vec<AuditEventType>,

    /// Standard conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"],
        "maxItems" = 16
    ))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase: `Pending` → `Running` → `Completed` | `Failed`; `Pending` → `Skipped` | `Failed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

impl Phase {
    /// Completed, Failed and Skipped never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Skipped)
    }

    /// The name as the API spells it (a metric label, a log field).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
            Phase::Skipped => "Skipped",
        }
    }
}

/// Reference to the PipelineRun (in the execution namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Summary of the PipelineRun's `Succeeded` condition and task progress.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatusSummary {
    /// Status of the PipelineRun's `Succeeded` condition.
    pub status: ConditionStatus,
    /// Tekton's reason, e.g. `Running`, `Succeeded`, `PipelineRunTimeout`.
    pub reason: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub completed_tasks: i32,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub total_tasks: i32,
}

/// Classified failure reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FailureReason {
    OOMKilled,
    DeadlineExceeded,
    Forbidden,
    ResourceExhausted,
    ConfigurationError,
    ImagePullBackOff,
    TaskFailed,
    Unknown,
}

impl FailureReason {
    /// The name as the API spells it (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::OOMKilled => "OOMKilled",
            FailureReason::DeadlineExceeded => "DeadlineExceeded",
            FailureReason::Forbidden => "Forbidden",
            FailureReason::ResourceExhausted => "ResourceExhausted",
            FailureReason::ConfigurationError => "ConfigurationError",
            FailureReason::ImagePullBackOff => "ImagePullBackOff",
            FailureReason::TaskFailed => "TaskFailed",
            FailureReason::Unknown => "Unknown",
        }
    }
}

/// What failed, where, and why.
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    /// Index of the failed task in the pipeline (0-based); -1 when no task ran.
    #[schemars(range(min = -1))]
    pub failed_task_index: i32,
    /// Pipeline task name of the failed task; empty when no task ran.
    #[serde(default)]
    pub failed_task_name: String,
    pub failed_step_name: Option<String>,
    pub reason: FailureReason,
    #[schemars(length(max = 32768))]
    pub message: String,
    /// First non-zero step exit code.
    pub exit_code: Option<i32>,
    pub failed_at: Time,
    /// How long the workflow ran before failing, e.g. `2m5s`.
    pub execution_time_before_failure: String,
    /// A few lines an on-call engineer can act on.
    pub natural_language_summary: String,
    /// True when the workflow actually ran (non-idempotent actions may have happened).
    pub was_execution_failure: bool,
}

/// Why an execution was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SkipReason {
    ResourceBusy,
    RecentlyRemediated,
    ExhaustedRetries,
    PreviousExecutionFailed,
}

impl SkipReason {
    /// The name as the API spells it (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::ResourceBusy => "ResourceBusy",
            SkipReason::RecentlyRemediated => "RecentlyRemediated",
            SkipReason::ExhaustedRetries => "ExhaustedRetries",
            SkipReason::PreviousExecutionFailed => "PreviousExecutionFailed",
        }
    }
}

/// Details of a skip.
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkipDetails {
    pub reason: SkipReason,
    pub message: String,
    pub skipped_at: Time,
    pub conflicting_workflow: Option<ConflictingWorkflowRef>,
    pub recent_remediation: Option<RecentRemediationRef>,
}

/// The execution holding the target's lock.
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictingWorkflowRef {
    pub name: String,
    pub namespace: Option<String>,
    pub workflow_id: String,
    pub started_at: Option<Time>,
    pub target_resource: String,
}

/// The recent execution that put the target in cooldown or backoff.
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentRemediationRef {
    pub name: String,
    pub namespace: Option<String>,
    pub workflow_id: String,
    pub completed_at: Option<Time>,
    /// Phase the recent execution ended in.
    pub outcome: Phase,
    pub target_resource: String,
    /// How long until a new execution is allowed, e.g. `3m20s`.
    pub cooldown_remaining: Option<String>,
}

/// Who cleared a failed execution's block, when, why and how — attribution the controller copies
/// from what the mutating webhook stamped, never from what the user wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockClearance {
    pub cleared_at: Time,
    /// The authenticated user of the admission request that set the clearance.
    #[schemars(length(min = 1, max = 512))]
    pub cleared_by: String,
    #[schemars(length(min = 1, max = 4096))]
    pub clear_reason: String,
    pub clear_method: ClearMethod,
}

/// How a block was cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ClearMethod {
    /// The `kubernaut.ai/clear-execution-block` annotation, stamped by the mutating webhook.
    Annotation,
}

/// The audit events of an execution (SPEC 6), as DataStorage names them; each happens at most once
/// per execution.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum AuditEventType {
    /// The spec was validated and the execution selected to run (before its PipelineRun).
    #[serde(rename = "workflowexecution.selection.completed")]
    SelectionCompleted,
    /// The PipelineRun was created (or adopted).
    #[serde(rename = "workflowexecution.execution.started")]
    ExecutionStarted,
    #[serde(rename = "workflowexecution.workflow.completed")]
    WorkflowCompleted,
    #[serde(rename = "workflowexecution.workflow.failed")]
    WorkflowFailed,
    #[serde(rename = "workflowexecution.workflow.skipped")]
    WorkflowSkipped,
    /// An operator cleared the execution's block.
    #[serde(rename = "workflowexecution.block.cleared")]
    BlockCleared,
}

impl AuditEventType {
    /// The name DataStorage knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelectionCompleted => "workflowexecution.selection.completed",
            Self::ExecutionStarted => "workflowexecution.execution.started",
            Self::WorkflowCompleted => "workflowexecution.workflow.completed",
            Self::WorkflowFailed => "workflowexecution.workflow.failed",
            Self::WorkflowSkipped => "workflowexecution.workflow.skipped",
            Self::BlockCleared => "workflowexecution.block.cleared",
        }
    }
}
