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
