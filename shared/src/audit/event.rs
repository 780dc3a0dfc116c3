//! The wire form of an audit event: DataStorage's `AuditEventRequest` with the payload of a
//! WorkflowExecution (`WorkflowExecutionAuditPayload`) or of a block clearance
//! (`WorkflowExecutionWebhookAuditPayload`), plus this project's documented extensions
//! (`docs/audit/workflowexecution-audit-events.schema.json`): the identity `idempotency_key` in
//! every payload, the skipped event with phase `Skipped`, `skip_reason` and `skip_message`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::api::{AuditEventType, FailureReason, Phase, SkipReason};

/// Schema version of the envelope.
pub const VERSION: &str = "1.0";
/// `event_category` of every event.
pub const CATEGORY: &str = "workflowexecution";
/// `actor_id` of the events the controller reports on its own behalf.
pub const CONTROLLER_ACTOR: &str = "workflowexecution-controller";
/// `resource_type` of every event.
pub const RESOURCE_TYPE: &str = "WorkflowExecution";

/// One audit event (`AuditEventRequest`).
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub version: String,
    pub event_type: AuditEventType,
    /// RFC 3339, when the transition happened (not when it was sent: a resend is the same event).
    pub event_timestamp: String,
    pub event_category: String,
    pub event_action: Action,
    pub event_outcome: Outcome,
    pub actor_type: ActorType,
    pub actor_id: String,
    pub resource_type: String,
    /// The execution's name.
    pub resource_id: String,
    /// `spec.remediationRequestRef.name` (the execution's namespace/name should it be empty).
    pub correlation_id: String,
    pub namespace: Option<String>,
    pub event_data: Payload,
}

impl AuditEvent {
    /// The event's identity: the same on every resend, different for every other event.
    pub fn idempotency_key(&self) -> &str {
        match &self.event_data {
            Payload::Workflow(p) => &p.idempotency_key,
            Payload::BlockCleared(p) => &p.idempotency_key,
        }
    }
}

/// `event_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Completed,
    Started,
    Failed,
    Skipped,
    BlockCleared,
}

/// `event_outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Pending,
}

/// `actor_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// The controller.
    Service,
    /// An operator (a block clearance).
    User,
}

/// `event_data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Workflow(Box<WorkflowPayload>),
    BlockCleared(BlockClearedPayload),
}

/// `WorkflowExecutionAuditPayload`, with the extensions `idempotency_key`, `skip_reason` and
/// `skip_message` (and phase `Skipped`).
#[skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPayload {
    pub event_type: AuditEventType,
    pub workflow_id: String,
    pub workflow_version: String,
    pub target_resource: String,
    /// The phase the event leaves the execution in (`Pending` for the selection).
    pub phase: Phase,
    pub container_image: String,
    pub execution_name: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration: Option<String>,
    pub pipelinerun_name: Option<String>,
    /// Exactly the parameters passed to the PipelineRun (`TARGET_RESOURCE` included).
    pub parameters: Option<BTreeMap<String, String>>,
    pub failure_reason: Option<FailureReason>,
    pub failure_message: Option<String>,
    pub failed_task_name: Option<String>,
    pub error_details: Option<ErrorDetails>,
    pub skip_reason: Option<SkipReason>,
    pub skip_message: Option<String>,
    pub idempotency_key: String,
}

/// `ErrorDetails`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetails {
    pub message: String,
    /// `ERR_<CATEGORY>_<SPECIFIC>`, e.g. `ERR_EXECUTION_OOM_KILLED`.
    pub code: String,
    pub component: String,
    /// False when the workflow ran (non-idempotent actions may have happened: an operator must
    /// look first), true for a failure before execution.
    pub retry_possible: bool,
}

/// `WorkflowExecutionWebhookAuditPayload`, with the extension `idempotency_key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockClearedPayload {
    pub event_type: AuditEventType,
    pub workflow_name: String,
    pub clear_reason: String,
    pub cleared_at: String,
    /// Always `Blocked`.
    pub previous_state: String,
    /// Always `Running` (DataStorage's enum: the target may run again).
    pub new_state: String,
    pub idempotency_key: String,
}
