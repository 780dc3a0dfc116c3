//! The audit step of a plan: delivered with the transition's one write, deferred (the events kept
//! in the status, looked at again later), refused (recorded, not retried), the flip of what an
//! earlier write left owed, and a deleted execution waiting for its events within the grace.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::test_support::*;
use super::*;
use crate::api::{AuditEventType as E, ConditionReason, ConditionStatus, ConditionType};
use crate::fixtures::execution;
use crate::status::conditions;

fn audit_condition(s: &WorkflowExecutionStatus) -> (ConditionStatus, ConditionReason, String) {
    let c = conditions::get(&s.conditions, ConditionType::AuditRecorded).expect("AuditRecorded");
    (c.status, c.reason, c.message.clone())
}

fn deferred() -> Done {
    Done::AuditDeferred {
        retry_after: Duration::from_secs(4),
        reason: "connection refused".into(),
    }
}

/// A Pending execution whose PipelineRun was just created: the transition's events are due.
fn created() -> (WorkflowExecution, Vec<Done>) {
    let w = execution("w").finalized().uid("u").timeout("10m").build();
    (
        w,
        vec![Done::Created(pipeline_run_name(
            "payments/deployment/payment-api",
        ))],
    )
}

#[test]
fn a_transition_delivers_its_events_first_then_writes_once_saying_so() {
    let (w, mut done) = created();
    let Step::Act(Effect::Deliver(events)) = plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    ) else {
        panic!("the events go before the write");
    };
    let types: Vec<E> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types, [E::SelectionCompleted, E::ExecutionStarted]);
    done.push(Done::Delivered(types));
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    ));
    let s = p.status.expect("one write");
    assert_eq!(s.phase, Phase::Running);
    assert!(s.audit_pending.is_empty());
    let (status, reason, message) = audit_condition(&s);
    assert_eq!(
        (status, reason),
        (ConditionStatus::True, ConditionReason::AuditSucceeded)
    );
    assert_eq!(
        message,
        "delivered workflowexecution.selection.completed, workflowexecution.execution.started"
    );
}

#[test]
fn an_unreachable_receiver_leaves_the_events_owed_in_the_transitions_write() {
    let (w, mut done) = created();
    done.push(deferred());
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    ));
    let s = p.status.expect("the transition is written anyway");
    assert_eq!(
        s.phase,
        Phase::Running,
        "audit trouble never holds a workflow up"
    );
    assert_eq!(
        s.audit_pending,
        [E::SelectionCompleted, E::ExecutionStarted]
    );
    let (status, reason, message) = audit_condition(&s);
    assert_eq!(
        (status, reason),
        (ConditionStatus::False, ConditionReason::AuditPending)
    );
    assert_eq!(
        message,
        "workflowexecution.selection.completed, workflowexecution.execution.started not delivered yet (connection refused); retrying"
    );
    // Looked at again after the sink's backoff, sooner than the start check (120 s).
    assert_eq!(p.requeue, Some(Duration::from_secs(4)));
}

/// Its PipelineRun, running.
fn running_run() -> crate::tekton::observed::ObservedRun {
    serde_json::from_value(json!({
        "metadata": {"name": "wfe-1", "namespace": "exec", "uid": "r",
                     "labels": {"kubernaut.ai/workflow-execution": "w",
                                "kubernaut.ai/source-namespace": "team-a"}},
        "status": {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
                   "childReferences": [{"kind": "TaskRun", "name": "tr"}]}
    }))
    .unwrap()
}

/// A Running execution whose Running write left its events owed.
fn owing() -> WorkflowExecution {
    execution("w")
        .finalized()
        .uid("u")
        .timeout("10m")
        .status(json!({"phase": "Running", "startTime": t(0),
                       "pipelineRunRef": {"name": "wfe-1"},
                       "auditPending": ["workflowexecution.selection.completed",
                                        "workflowexecution.execution.started"]}))
        .build()
}

#[test]
fn what_an_earlier_write_left_owed_is_delivered_and_flipped_by_one_more_write() {
    let w = owing();
    let run = running_run();
    let Step::Act(Effect::Deliver(events)) = plan(
        &w,
        &Seen {
            run: Some(&run),
            ..Seen::default()
        },
        &ctx(5),
    ) else {
        panic!("owed events are delivered");
    };
    assert_eq!(events.len(), 2);
    let done = [Done::Delivered(vec![
        E::SelectionCompleted,
        E::ExecutionStarted,
    ])];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            run: Some(&run),
            ..Seen::default()
        },
        &ctx(5),
    ));
    let s = p.status.expect("the flip");
    assert_eq!(s.phase, Phase::Running);
    assert!(s.audit_pending.is_empty());
    assert_eq!(audit_condition(&s).0, ConditionStatus::True);
    // Still unreachable: no write at all, just another look later — and the running
    // execution's own checks stay scheduled.
    let done = [deferred()];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            run: Some(&run),
            ..Seen::default()
        },
        &ctx(5),
    ));
    assert_eq!(p.status, None);
    assert_eq!(p.requeue, Some(Duration::from_secs(4)));
    let later = Done::AuditDeferred {
        retry_after: Duration::from_secs(3600),
        reason: "down".into(),
    };
    let done = [later];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            run: Some(&run),
            ..Seen::default()
        },
        &ctx(5),
    ));
    assert_eq!(
        p.requeue,
        Some(Duration::from_secs(115)),
        "the start check comes first"
    );
}

#[test]
fn a_refusal_is_recorded_with_its_detail_and_not_retried() {
    let w = owing();
    let run = running_run();
    let done = [Done::AuditRejected {
        types: vec![E::SelectionCompleted, E::ExecutionStarted],
        detail: "400 Bad Request: Validation Error: correlation_id is required".into(),
    }];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            run: Some(&run),
            ..Seen::default()
        },
        &ctx(5),
    ));
    let s = p.status.expect("recorded");
    assert!(s.audit_pending.is_empty(), "not retried");
    let (status, reason, message) = audit_condition(&s);
    assert_eq!(
        (status, reason),
        (ConditionStatus::False, ConditionReason::AuditFailed)
    );
    assert!(
        message.ends_with(
            "(not retried): 400 Bad Request: Validation Error: correlation_id is required"
        ),
        "{message}"
    );
    assert_eq!(p.events.len(), 1);
    assert_eq!(
        (p.events[0].type_, p.events[0].reason),
        (EventType::Warning, EventReason::AuditFailed)
    );
    assert!(p.log.iter().any(|l| l.level() == LogLevel::Warn));
}

#[test]
fn nothing_owed_means_no_delivery_and_no_write() {
    let w = execution("w")
        .finalized()
        .status(json!({"phase": "Completed", "startTime": t(0), "completionTime": t(1)}))
        .build();
    assert_eq!(finish(plan(&w, &Seen::default(), &ctx(5))), Plan::default());
}

fn deleting(at: i64) -> WorkflowExecution {
    let mut w = owing();
    w.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(NOW + at).unwrap()));
    w
}

#[test]
fn a_deleted_execution_waits_for_its_events_within_the_grace_then_goes_without_them() {
    let w = deleting(0);
    // What it owes, and the cancellation of the running workflow.
    let Step::Act(Effect::Deliver(events)) = plan(&w, &Seen::default(), &ctx(1)) else {
        panic!("owed events first");
    };
    let types: Vec<E> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            E::SelectionCompleted,
            E::ExecutionStarted,
            E::WorkflowFailed
        ]
    );
    let done = [deferred()];
    let seen = Seen {
        done: &done,
        ..Seen::default()
    };
    let p = finish(plan(&w, &seen, &ctx(1)));
    assert_eq!(
        p.requeue,
        Some(Duration::from_secs(4)),
        "the finalizer waits"
    );
    assert!(p.events.is_empty());
    // Past the grace (600 s after the deletion): it goes, saying what was lost.
    assert_eq!(
        plan(&w, &seen, &ctx(600)),
        Step::Act(Effect::RemoveFinalizer)
    );
    let done = [deferred(), Done::FinalizerRemoved];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(600),
    ));
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            EventReason::WorkflowExecutionDeleted,
            EventReason::AuditDropped
        ]
    );
    assert_eq!(
        p.events[1].note,
        "audit events of this execution were lost, not delivered within the grace of 10m0s after the deletion: connection refused"
    );
    // Refused for good: it goes at once.
    let refused = [Done::AuditRejected {
        types: types.clone(),
        detail: "400".into(),
    }];
    let seen = Seen {
        done: &refused,
        ..Seen::default()
    };
    assert_eq!(plan(&w, &seen, &ctx(1)), Step::Act(Effect::RemoveFinalizer));
    let done = [refused[0].clone(), Done::FinalizerRemoved];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(1),
    ));
    assert_eq!(
        p.events.last().map(|e| (e.reason, e.note.as_str())),
        Some((
            EventReason::AuditDropped,
            "audit events of this execution were lost, refused: 400"
        ))
    );
    // Delivered: it goes, nothing lost.
    let delivered = [Done::Delivered(types), Done::FinalizerRemoved];
    let p = finish(plan(
        &w,
        &Seen {
            done: &delivered,
            ..Seen::default()
        },
        &ctx(1),
    ));
    assert_eq!(p.events.len(), 1);
}

#[test]
fn events_an_earlier_delivery_did_not_cover_are_sent_too() {
    // Before a conflict: the owed selection and start were delivered. After the re-read the run
    // has completed: the completion is owed as well, and sent.
    let w = owing();
    let mut run = running_run();
    run.status = serde_json::from_value(json!({
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
        "completionTime": t(9)}))
    .unwrap();
    let done = [Done::Delivered(vec![
        E::SelectionCompleted,
        E::ExecutionStarted,
    ])];
    let seen = Seen {
        run: Some(&run),
        done: &done,
        ..Seen::default()
    };
    let Step::Act(Effect::Deliver(events)) = plan(&w, &seen, &ctx(10)) else {
        panic!("the completion is sent");
    };
    let types: Vec<E> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types, [E::WorkflowCompleted]);
    let done = [
        Done::Delivered(vec![E::SelectionCompleted, E::ExecutionStarted]),
        Done::Delivered(types),
    ];
    let s = finish(plan(
        &w,
        &Seen {
            run: Some(&run),
            done: &done,
            ..Seen::default()
        },
        &ctx(10),
    ))
    .status
    .unwrap();
    assert_eq!(s.phase, Phase::Completed);
    assert!(s.audit_pending.is_empty());
    assert_eq!(audit_condition(&s).0, ConditionStatus::True);
    // Unreachable for the last: it stays owed, and the write says so.
    let done = [
        Done::Delivered(vec![E::SelectionCompleted, E::ExecutionStarted]),
        deferred(),
    ];
    let s = finish(plan(
        &w,
        &Seen {
            run: Some(&run),
            done: &done,
            ..Seen::default()
        },
        &ctx(10),
    ))
    .status
    .unwrap();
    assert_eq!(s.audit_pending, [E::WorkflowCompleted]);
    assert_eq!(audit_condition(&s).1, ConditionReason::AuditPending);
}

#[test]
fn a_deleted_execution_sends_what_an_earlier_delivery_did_not_cover() {
    let w = deleting(0);
    let done = [Done::Delivered(vec![
        E::SelectionCompleted,
        E::ExecutionStarted,
    ])];
    let Step::Act(Effect::Deliver(events)) = plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(1),
    ) else {
        panic!("the cancellation is still owed");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, E::WorkflowFailed);
}

#[test]
fn a_conflict_keeps_what_effects_did_only_in_the_same_part_of_the_plan() {
    let w = owing();
    assert!(same_branch(&w, &w.clone()));
    let mut deleted = w.clone();
    deleted.metadata.deletion_timestamp = Some(Time(ctx(1).now));
    assert!(!same_branch(&w, &deleted), "now being deleted");
    let mut completed = w.clone();
    completed.status.as_mut().unwrap().phase = Phase::Completed;
    assert!(!same_branch(&w, &completed));
    let failed = execution("w")
        .status(json!({"phase": "Failed", "completionTime": t(0)}))
        .build();
    let mut cleared = failed.clone();
    cleared.metadata.annotations = Some(
        [
            (
                crate::api::names::CLEAR_EXECUTION_BLOCK.to_owned(),
                "why".to_owned(),
            ),
            (
                crate::api::names::CLEAR_EXECUTION_BLOCK_BY.to_owned(),
                "alice".to_owned(),
            ),
            (crate::api::names::CLEAR_EXECUTION_BLOCK_AT.to_owned(), t(0)),
        ]
        .into(),
    );
    assert!(!same_branch(&failed, &cleared), "a clearance to record");
}
