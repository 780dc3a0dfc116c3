//! Audit events built from an execution whose status records the transition they report. Pure
//! and deterministic: the same execution gives the same event, so a resend after a crash is the
//! same event, with the same identity.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use crate::api::{AuditEventType, FailureReason, Phase, WorkflowExecution};
use crate::tekton::builder::parameters;

use super::event::{
    Action, ActorType, AuditEvent, BlockClearedPayload, CATEGORY, CONTROLLER_ACTOR, ErrorDetails,
    Outcome, Payload, RESOURCE_TYPE, VERSION, WorkflowPayload,
};

/// The identity of `event_type` of the execution with `uid`: a UUID (version 8, RFC 9562) made
/// from sha256(uid/event type). Each event type happens at most once per execution.
pub fn idempotency_key(uid: &str, event_type: AuditEventType) -> String {
    let digest = Sha256::digest(format!("{uid}/{}", event_type.as_str()).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What identifies the execution across its life: its uid (its namespace/name without one).
fn identity(wfe: &WorkflowExecution) -> String {
    wfe.metadata.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            wfe.metadata.namespace.as_deref().unwrap_or_default(),
            wfe.metadata.name.as_deref().unwrap_or_default()
        )
    })
}

/// Whole seconds, as the API server stores a status's times: an event built before its status
/// is written and the same event rebuilt from the stored status after a crash are equal.
fn rfc3339(t: &Time) -> String {
    k8s_openapi::jiff::Timestamp::from_second(t.0.as_second())
        .unwrap_or(t.0)
        .to_string()
}

/// The event `event_type` of `wfe`.
pub fn build(wfe: &WorkflowExecution, event_type: AuditEventType) -> AuditEvent {
    use AuditEventType as E;
    let status = wfe.status.clone().unwrap_or_default();
    let skipped_at = status.skip_details.as_ref().map(|d| d.skipped_at.clone());
    let when = match event_type {
        E::SelectionCompleted => status
            .start_time
            .clone()
            .or(skipped_at.clone())
            .or(status.completion_time.clone()),
        E::ExecutionStarted => status.start_time.clone(),
        E::WorkflowCompleted | E::WorkflowFailed => status.completion_time.clone(),
        E::WorkflowSkipped => skipped_at.or(status.completion_time.clone()),
        E::BlockCleared => status
            .block_clearance
            .as_ref()
            .map(|c| c.cleared_at.clone()),
    }
    .or(wfe.metadata.creation_timestamp.clone());
    let (action, outcome) = match event_type {
        E::SelectionCompleted | E::WorkflowCompleted => (Action::Completed, Outcome::Success),
        E::ExecutionStarted => (Action::Started, Outcome::Success),
        E::WorkflowFailed => (Action::Failed, Outcome::Failure),
        E::WorkflowSkipped => (Action::Skipped, Outcome::Pending),
        E::BlockCleared => (Action::BlockCleared, Outcome::Success),
    };
    let key = idempotency_key(&identity(wfe), event_type);
    let name = wfe.metadata.name.clone().unwrap_or_default();
    let (actor_type, actor_id, event_data) = match (event_type, status.block_clearance.as_ref()) {
        (E::BlockCleared, Some(c)) => (
            ActorType::User,
            c.cleared_by.clone(),
            Payload::BlockCleared(BlockClearedPayload {
                event_type,
                workflow_name: name.clone(),
                clear_reason: c.clear_reason.clone(),
                cleared_at: rfc3339(&c.cleared_at),
                previous_state: "Blocked".into(),
                new_state: "Running".into(),
                idempotency_key: key,
            }),
        ),
        _ => (
            ActorType::Service,
            CONTROLLER_ACTOR.to_owned(),
            Payload::Workflow(Box::new(workflow_payload(wfe, event_type, key))),
        ),
    };
    let correlation = &wfe.spec.remediation_request_ref.name;
    AuditEvent {
        version: VERSION.into(),
        event_type,
        event_timestamp: when.as_ref().map(rfc3339).unwrap_or_default(),
        event_category: CATEGORY.into(),
        event_action: action,
        event_outcome: outcome,
        actor_type,
        actor_id,
        resource_type: RESOURCE_TYPE.into(),
        correlation_id: if correlation.is_empty() {
            identity_name(wfe)
        } else {
            correlation.clone()
        },
        namespace: wfe.metadata.namespace.clone(),
        resource_id: name,
        event_data,
    }
}

fn identity_name(wfe: &WorkflowExecution) -> String {
    format!(
        "{}/{}",
        wfe.metadata.namespace.as_deref().unwrap_or_default(),
        wfe.metadata.name.as_deref().unwrap_or_default()
    )
}

fn workflow_payload(
    wfe: &WorkflowExecution,
    event_type: AuditEventType,
    key: String,
) -> WorkflowPayload {
    use AuditEventType as E;
    let status = wfe.status.clone().unwrap_or_default();
    let terminal = matches!(
        event_type,
        E::WorkflowCompleted | E::WorkflowFailed | E::WorkflowSkipped
    );
    let ran = matches!(
        event_type,
        E::ExecutionStarted | E::WorkflowCompleted | E::WorkflowFailed
    );
    let phase = match event_type {
        E::SelectionCompleted => Phase::Pending,
        E::ExecutionStarted => Phase::Running,
        E::WorkflowCompleted => Phase::Completed,
        E::WorkflowFailed => Phase::Failed,
        E::WorkflowSkipped | E::BlockCleared => Phase::Skipped,
    };
    let failure = (event_type == E::WorkflowFailed)
        .then_some(status.failure_details.as_deref())
        .flatten();
    let skip = (event_type == E::WorkflowSkipped)
        .then_some(status.skip_details.as_deref())
        .flatten();
    let spec = &wfe.spec;
    WorkflowPayload {
        event_type,
        workflow_id: spec.workflow_ref.workflow_id.clone(),
        workflow_version: spec.workflow_ref.version.clone(),
        target_resource: spec.target_resource.clone(),
        phase,
        container_image: spec.workflow_ref.container_image.clone(),
        execution_name: wfe.metadata.name.clone().unwrap_or_default(),
        started_at: ran
            .then(|| status.start_time.as_ref().map(rfc3339))
            .flatten(),
        completed_at: terminal
            .then(|| status.completion_time.as_ref().map(rfc3339))
            .flatten(),
        duration: terminal.then(|| status.duration.clone()).flatten(),
        pipelinerun_name: ran
            .then(|| status.pipeline_run_ref.as_ref().map(|r| r.name.clone()))
            .flatten(),
        parameters: Some(
            parameters(wfe)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        failure_reason: failure.map(|d| d.reason),
        failure_message: failure.map(|d| d.message.clone()),
        failed_task_name: failure
            .map(|d| d.failed_task_name.clone())
            .filter(|n| !n.is_empty()),
        error_details: failure.map(|d| ErrorDetails {
            message: d.message.clone(),
            code: error_code(d.reason, d.was_execution_failure),
            component: CATEGORY.into(),
            retry_possible: !d.was_execution_failure,
        }),
        skip_reason: skip.map(|d| d.reason),
        skip_message: skip.map(|d| d.message.clone()),
        idempotency_key: key,
    }
}

/// `ERR_<CATEGORY>_<SPECIFIC>`: the category says whether the workflow ran.
pub(super) fn error_code(reason: FailureReason, during_execution: bool) -> String {
    let category = if during_execution {
        "EXECUTION"
    } else {
        "PRE_EXECUTION"
    };
    let specific = match reason {
        FailureReason::OOMKilled => "OOM_KILLED",
        FailureReason::DeadlineExceeded => "DEADLINE_EXCEEDED",
        FailureReason::Forbidden => "FORBIDDEN",
        FailureReason::ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailureReason::ConfigurationError => "CONFIGURATION_ERROR",
        FailureReason::ImagePullBackOff => "IMAGE_PULL_BACK_OFF",
        FailureReason::TaskFailed => "TASK_FAILED",
        FailureReason::Unknown => "UNKNOWN",
    };
    format!("ERR_{category}_{specific}")
}

/// The `workflow.failed` event of an execution deleted while it ran: its PipelineRun was deleted
/// with it, so the workflow was cancelled at `at` (the deletion).
pub fn cancelled(wfe: &WorkflowExecution, at: Time) -> AuditEvent {
    let mut gone = wfe.clone();
    let status = gone.status.get_or_insert_with(Default::default);
    let elapsed = status
        .start_time
        .as_ref()
        .and_then(|s| std::time::Duration::try_from(at.0.duration_since(s.0)).ok())
        .unwrap_or_default();
    let elapsed = crate::admission::duration::format_duration(elapsed);
    let message = format!(
        "the WorkflowExecution was deleted while {}: its PipelineRun was deleted, cancelling the workflow",
        status.phase.as_str()
    );
    status.phase = Phase::Failed;
    status.completion_time = Some(at.clone());
    status.duration = Some(elapsed.clone());
    status.failure_details = Some(Box::new(crate::api::FailureDetails {
        failed_task_index: -1,
        failed_task_name: String::new(),
        failed_step_name: None,
        reason: FailureReason::Unknown,
        message: message.clone(),
        exit_code: None,
        failed_at: at,
        execution_time_before_failure: elapsed,
        natural_language_summary: message,
        was_execution_failure: true,
    }));
    build(&gone, AuditEventType::WorkflowFailed)
}
