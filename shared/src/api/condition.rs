use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// A `metav1.Condition` whose type and reason are closed enums.
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// Changes only when `status` flips.
    pub last_transition_time: Time,
    pub reason: ConditionReason,
    #[schemars(length(max = 32768))]
    pub message: String,
}

/// Condition types of a WorkflowExecution.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ConditionType {
    TektonPipelineCreated,
    TektonPipelineRunning,
    TektonPipelineComplete,
    AuditRecorded,
    ResourceLocked,
}

/// `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

impl From<&str> for ConditionStatus {
    /// Knative's reading: `True` and `False` are themselves, anything else is `Unknown`.
    fn from(s: &str) -> Self {
        match s {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }
}

/// Every reason a WorkflowExecution condition can carry (SPEC section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionReason {
    // TektonPipelineCreated
    PipelineCreated,
    PipelineCreationFailed,
    QuotaExceeded,
    RBACDenied,
    ImagePullFailed,
    // TektonPipelineRunning
    PipelineStarted,
    PipelineFailedToStart,
    // TektonPipelineComplete
    PipelineSucceeded,
    PipelineFailed,
    TaskFailed,
    DeadlineExceeded,
    OOMKilled,
    // AuditRecorded
    AuditSucceeded,
    AuditFailed,
    AuditPending,
    // ResourceLocked
    TargetResourceBusy,
    RecentlyRemediated,
    PreviousExecutionFailed,
    ExhaustedRetries,
}
