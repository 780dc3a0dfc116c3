//! Audit events: which transitions produce which, and that an event is a pure function of the
//! execution (a resend is the same event).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::api::AuditEventType as E;
use crate::fixtures::execution;

#[test]
fn each_transition_produces_its_events_in_order() {
    use Phase::*;
    assert_eq!(
        transition_events(Pending, Running, true),
        [E::SelectionCompleted, E::ExecutionStarted]
    );
    assert_eq!(
        transition_events(Pending, Skipped, true),
        [E::SelectionCompleted, E::WorkflowSkipped]
    );
    assert_eq!(
        transition_events(Pending, Failed, true),
        [E::SelectionCompleted, E::WorkflowFailed]
    );
    assert_eq!(
        transition_events(Pending, Failed, false),
        [E::WorkflowFailed]
    );
    assert_eq!(
        transition_events(Running, Completed, true),
        [E::WorkflowCompleted]
    );
    assert_eq!(
        transition_events(Running, Failed, true),
        [E::WorkflowFailed]
    );
    assert!(transition_events(Pending, Pending, true).is_empty());
}

#[test]
fn an_event_built_before_its_status_is_stored_equals_the_one_rebuilt_after() {
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let precise = at
        .checked_add(std::time::Duration::from_nanos(282_175_886))
        .unwrap();
    let w = |t: Timestamp| {
        execution("w")
            .uid("u")
            .status(json!({"phase": "Running", "startTime": Time(t),
                           "pipelineRunRef": {"name": "wfe-1"}}))
            .build()
    };
    let before = build(&w(precise), E::ExecutionStarted);
    let after = build(&w(at), E::ExecutionStarted);
    assert_eq!(before, after);
    assert_eq!(before.event_timestamp, "2027-01-15T08:00:00Z");
}

#[test]
fn identities_differ_by_execution_and_event_and_look_like_uuids() {
    let a = idempotency_key("u1", E::WorkflowFailed);
    assert_eq!(a, idempotency_key("u1", E::WorkflowFailed));
    assert_ne!(a, idempotency_key("u2", E::WorkflowFailed));
    assert_ne!(a, idempotency_key("u1", E::WorkflowCompleted));
    let parts: Vec<usize> = a.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12]);
    assert_eq!(&a[14..15], "8", "version 8");
    assert!("89ab".contains(&a[19..20]), "RFC 9562 variant");
    // Without a uid, the namespace/name stands in.
    let named = execution("w").build();
    assert_eq!(
        build(&named, E::SelectionCompleted).idempotency_key(),
        idempotency_key("team-a/w", E::SelectionCompleted)
    );
}

#[test]
fn the_correlation_id_falls_back_to_the_execution() {
    let w = execution("w").remediation_request("").build();
    assert_eq!(build(&w, E::SelectionCompleted).correlation_id, "team-a/w");
    let w = execution("w").build();
    assert_eq!(build(&w, E::SelectionCompleted).correlation_id, "rr-1");
}

#[test]
fn an_identity_never_changes_across_releases() {
    // A receiver drops a resend by this key, also one sent by the next version after an upgrade.
    assert_eq!(
        idempotency_key("6617deb5-fc0f-4f09-95ab-83c51d48bec0", E::WorkflowFailed),
        GOLDEN_KEY
    );
}
const GOLDEN_KEY: &str = "69102d44-a760-85b7-81e4-011970324e14";

fn payload(event: &AuditEvent) -> &WorkflowPayload {
    match &event.event_data {
        Payload::Workflow(p) => p,
        other => panic!("not a workflow payload: {other:?}"),
    }
}

fn failed(reason: &str, during_execution: bool, task: &str) -> crate::api::WorkflowExecution {
    execution("w")
        .uid("u")
        .status(json!({
            "phase": "Failed",
            "startTime": "2026-12-03T12:00:00Z",
            "completionTime": "2026-12-03T12:01:00Z",
            "duration": "1m0s",
            "pipelineRunRef": {"name": "wfe-1"},
            "failureDetails": {
                "failedTaskIndex": 0,
                "failedTaskName": task,
                "reason": reason,
                "message": "step restart was OOMKilled",
                "failedAt": "2026-12-03T12:01:00Z",
                "executionTimeBeforeFailure": "1m0s",
                "naturalLanguageSummary": "it ran out of memory",
                "wasExecutionFailure": during_execution
            }
        }))
        .build()
}

#[test]
fn a_failed_event_says_why_and_whether_a_retry_is_possible_and_only_it_does() {
    let w = failed("OOMKilled", true, "restart");
    let p = payload(&build(&w, E::WorkflowFailed)).clone();
    assert_eq!(p.failure_reason, Some(crate::api::FailureReason::OOMKilled));
    assert_eq!(
        p.failure_message.as_deref(),
        Some("step restart was OOMKilled")
    );
    assert_eq!(p.failed_task_name.as_deref(), Some("restart"));
    let e = p.error_details.expect("error details");
    assert_eq!(e.code, "ERR_EXECUTION_OOM_KILLED");
    assert_eq!(e.message, "step restart was OOMKilled");
    assert!(!e.retry_possible, "it ran: not safe to retry");
    assert_eq!(p.phase, Phase::Failed);
    assert_eq!(p.completed_at.as_deref(), Some("2026-12-03T12:01:00Z"));
    // Before execution: retry possible; no task named, none reported.
    let w = failed("ImagePullBackOff", false, "");
    let p = payload(&build(&w, E::WorkflowFailed)).clone();
    assert_eq!(p.failed_task_name, None);
    let e = p.error_details.expect("error details");
    assert_eq!(e.code, "ERR_PRE_EXECUTION_IMAGE_PULL_BACK_OFF");
    assert!(e.retry_possible);
    // The other events of a failed execution carry no failure.
    for t in [E::SelectionCompleted, E::ExecutionStarted] {
        let p = payload(&build(&w, t)).clone();
        assert_eq!(
            (p.failure_reason, p.error_details.is_none(), p.skip_reason),
            (None, true, None),
            "{t:?}"
        );
    }
}

#[test]
fn a_skipped_event_says_why_and_only_it_does() {
    let w = execution("w")
        .uid("u")
        .status(json!({
            "phase": "Skipped",
            "completionTime": "2026-12-03T12:01:00Z",
            "skipDetails": {
                "reason": "ResourceBusy",
                "message": "target busy",
                "skippedAt": "2026-12-03T12:01:00Z"
            }
        }))
        .build();
    let p = payload(&build(&w, E::WorkflowSkipped)).clone();
    assert_eq!(p.skip_reason, Some(crate::api::SkipReason::ResourceBusy));
    assert_eq!(p.skip_message.as_deref(), Some("target busy"));
    assert_eq!(p.failure_reason, None);
    let p = payload(&build(&w, E::SelectionCompleted)).clone();
    assert_eq!((p.skip_reason, p.skip_message), (None, None));
}

#[test]
fn every_failure_reason_has_its_error_code() {
    use crate::api::FailureReason as F;
    let codes: Vec<String> = [
        F::OOMKilled,
        F::DeadlineExceeded,
        F::Forbidden,
        F::ResourceExhausted,
        F::ConfigurationError,
        F::ImagePullBackOff,
        F::TaskFailed,
        F::Unknown,
    ]
    .into_iter()
    .map(|r| super::build::error_code(r, false))
    .collect();
    assert_eq!(
        codes,
        [
            "ERR_PRE_EXECUTION_OOM_KILLED",
            "ERR_PRE_EXECUTION_DEADLINE_EXCEEDED",
            "ERR_PRE_EXECUTION_FORBIDDEN",
            "ERR_PRE_EXECUTION_RESOURCE_EXHAUSTED",
            "ERR_PRE_EXECUTION_CONFIGURATION_ERROR",
            "ERR_PRE_EXECUTION_IMAGE_PULL_BACK_OFF",
            "ERR_PRE_EXECUTION_TASK_FAILED",
            "ERR_PRE_EXECUTION_UNKNOWN",
        ]
    );
}
