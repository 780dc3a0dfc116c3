//! The plan with the safety rules: a Skipped transition in one write, the lock of a finished
//! execution released before the create (once), the wait for a run going away, the bookkeeping
//! written with each transition, and a block clearance recorded.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::test_support::*;
use super::*;
use crate::api::names::{
    CLEAR_EXECUTION_BLOCK, CLEAR_EXECUTION_BLOCK_AT, CLEAR_EXECUTION_BLOCK_BY,
};
use crate::api::{AuditEventType, ConditionReason, ConditionType, SkipReason};
use crate::fixtures::execution;
use crate::status::conditions;

const TARGET: &str = "payments/deployment/payment-api";

fn pending() -> WorkflowExecution {
    execution("w").finalized().timeout("10m").build()
}

fn past(name: &str, workflow: &str, status: Value) -> Arc<WorkflowExecution> {
    Arc::new(
        execution(name)
            .uid(&format!("uid-{name}"))
            .workflow(workflow, "1")
            .status(status)
            .build(),
    )
}

fn completed(name: &str, workflow: &str, done: i64) -> Arc<WorkflowExecution> {
    past(
        name,
        workflow,
        json!({"phase": "Completed", "startTime": t(done - 10), "completionTime": t(done),
               "consecutiveFailures": 0, "pipelineRunRef": {"name": pipeline_run_name(TARGET)}}),
    )
}

fn run_of(owner: &str, deleting: bool) -> ObservedRun {
    let mut metadata = json!({"name": pipeline_run_name(TARGET), "namespace": "exec",
        "uid": format!("run-of-{owner}"),
        "labels": {"kubernaut.ai/workflow-execution": owner,
                   "kubernaut.ai/source-namespace": "team-a"}});
    if deleting {
        metadata["deletionTimestamp"] = json!(t(0));
    }
    serde_json::from_value(json!({"metadata": metadata})).unwrap()
}

#[test]
fn look_asks_for_the_history_only_while_pending() {
    assert!(look(&pending()).unwrap().history);
    let running = execution("w")
        .status(json!({"phase": "Running", "pipelineRunRef": {"name": "x"}}))
        .build();
    assert!(!look(&running).unwrap().history);
}

#[test]
fn a_skip_is_one_write_with_its_condition_event_and_metrics_and_no_effect() {
    // Even without its finalizer: a Skipped execution holds nothing, so none is added.
    let w = execution("w").timeout("10m").build();
    let history = [completed("done", "restart-deployment", -100)];
    let seen = Seen {
        history: &history,
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(0));
    let s = p.status.expect("one write");
    assert_eq!(s.phase, Phase::Skipped);
    assert_eq!(s.completion_time.as_ref().map(|t| t.0), Some(ctx(0).now));
    let d = s.skip_details.as_ref().unwrap();
    assert_eq!(d.reason, SkipReason::RecentlyRemediated);
    let locked = conditions::get(&s.conditions, ConditionType::ResourceLocked).unwrap();
    assert_eq!(locked.reason, ConditionReason::RecentlyRemediated);
    assert_eq!(locked.message, d.message);
    assert_eq!(
        s.consecutive_failures,
        Some(0),
        "the bookkeeping is carried"
    );
    assert_eq!(p.events.len(), 1);
    assert_eq!(
        (p.events[0].reason, p.events[0].note.as_str()),
        (EventReason::Skipped, d.message.as_str())
    );
    assert_eq!(
        p.metrics,
        [
            Metric::Finished {
                outcome: Phase::Skipped,
                seconds: None
            },
            Metric::Skipped(SkipReason::RecentlyRemediated)
        ]
    );
    assert_eq!(p.requeue, None);
}

#[test]
fn each_skip_reason_maps_to_its_condition_reason() {
    let failed = |during: bool, n: i32, until: i64| {
        past(
            "f",
            "restart-deployment",
            json!({"phase": "Failed", "completionTime": t(-100), "consecutiveFailures": n,
                   "nextAllowedExecution": t(until),
                   "failureDetails": {"failedTaskIndex": -1, "reason": "Unknown", "message": "m",
                       "failedAt": t(-100), "executionTimeBeforeFailure": "1s",
                       "naturalLanguageSummary": "s", "wasExecutionFailure": during}}),
        )
    };
    let busy = past("b", "x", json!({"phase": "Running", "startTime": t(-5)}));
    for (history, reason) in [
        (busy, ConditionReason::TargetResourceBusy),
        (
            failed(true, 0, -100),
            ConditionReason::PreviousExecutionFailed,
        ),
        (failed(false, 5, -50), ConditionReason::ExhaustedRetries),
        (failed(false, 1, 30), ConditionReason::RecentlyRemediated),
    ] {
        let history = [history];
        let seen = Seen {
            history: &history,
            ..Seen::default()
        };
        let s = settled(&pending(), &seen, &ctx(0)).status.unwrap();
        let c = conditions::get(&s.conditions, ConditionType::ResourceLocked).unwrap();
        assert_eq!(c.reason, reason);
    }
}

#[test]
fn a_finished_holders_lock_is_released_once_then_the_run_created() {
    // A different workflow completed a moment ago: allowed, but its run still holds the name.
    let history = [completed("done", "scale-up", -10)];
    let theirs = run_of("done", false);
    let seen = Seen {
        run: Some(&theirs),
        history: &history,
        ..Seen::default()
    };
    let w = pending();
    assert_eq!(
        plan(&w, &seen, &ctx(0)),
        Step::Act(Effect::DeletePipelineRun {
            name: pipeline_run_name(TARGET),
            uid: Some("run-of-done".into())
        })
    );
    // Deleted (or found gone): create, never delete again.
    for released in [
        Done::Deleted(pipeline_run_name(TARGET)),
        Done::Gone(pipeline_run_name(TARGET)),
    ] {
        let done = [released.clone()];
        let step = plan(
            &w,
            &Seen {
                done: &done,
                ..seen
            },
            &ctx(0),
        );
        assert!(
            matches!(step, Step::Act(Effect::CreatePipelineRun(_))),
            "{step:?}"
        );
    }
    let done = [
        Done::Deleted(pipeline_run_name(TARGET)),
        Done::Created(pipeline_run_name(TARGET)),
    ];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    assert_eq!(p.status.unwrap().phase, Phase::Running);
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [EventReason::LockReleased, EventReason::PipelineRunCreated]
    );
    let about = p.events[0].regarding.as_ref().expect("about the holder");
    assert_eq!(
        (about.name.as_deref(), about.uid.as_deref()),
        (Some("done"), Some("uid-done"))
    );
    assert!(
        p.events[0]
            .note
            .starts_with("released for WorkflowExecution team-a/w (workflow restart-deployment)"),
        "{}",
        p.events[0].note
    );
    assert!(p.events[1].regarding.is_none());
    // Found gone: nobody's lock was released here, no Event.
    let done = [
        Done::Gone(pipeline_run_name(TARGET)),
        Done::Created(pipeline_run_name(TARGET)),
    ];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    assert_eq!(p.events.len(), 1);
}

#[test]
fn a_running_holders_lock_is_never_released() {
    let history = [past(
        "busy",
        "x",
        json!({"phase": "Running", "startTime": t(-5)}),
    )];
    let theirs = run_of("busy", false);
    let seen = Seen {
        run: Some(&theirs),
        history: &history,
        ..Seen::default()
    };
    let p = settled(&pending(), &seen, &ctx(0));
    assert_eq!(
        p.status.unwrap().skip_details.unwrap().reason,
        SkipReason::ResourceBusy
    );
    // Pending in the index (its Running write not seen yet): the create asks the API server.
    let history = [past("new-one", "x", json!({"phase": "Pending"}))];
    let theirs = run_of("new-one", false);
    let seen = Seen {
        run: Some(&theirs),
        history: &history,
        ..Seen::default()
    };
    assert!(matches!(
        plan(&pending(), &seen, &ctx(0)),
        Step::Act(Effect::CreatePipelineRun(_))
    ));
    let done = [Done::NameTaken(Box::new(theirs.clone()))];
    let p = settled(
        &pending(),
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    let s = p.status.unwrap();
    let d = s.skip_details.unwrap();
    assert_eq!(d.reason, SkipReason::ResourceBusy);
    assert_eq!(d.conflicting_workflow.unwrap().workflow_id, "x");
    assert_eq!(p.metrics[0], Metric::PipelineRun(CreateResult::Locked));
}

#[test]
fn a_taken_name_of_a_finished_holder_is_released_once_and_a_going_run_is_waited_for() {
    let history = [completed("done", "scale-up", -10)];
    let w = pending();
    let theirs = run_of("done", false);
    // The cache had not seen the run: the create told.
    let done = [Done::NameTaken(Box::new(theirs.clone()))];
    let seen = Seen {
        history: &history,
        done: &done,
        ..Seen::default()
    };
    assert!(matches!(
        plan(&w, &seen, &ctx(0)),
        Step::Act(Effect::DeletePipelineRun { .. })
    ));
    // Deleted, created again: still taken by a run going away — wait, no write.
    let going = run_of("done", true);
    let done = [
        Done::NameTaken(Box::new(theirs.clone())),
        Done::Deleted(pipeline_run_name(TARGET)),
        Done::NameTaken(Box::new(going)),
    ];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    assert_eq!(p.status, None);
    // The lock this reconcile released is announced, once, even though it must wait.
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [EventReason::LockReleased]);
    assert_eq!(p.requeue, Some(Duration::from_secs(2)));
    assert!(
        matches!(&p.log[..], [.., LogLine::Note { message, .. }] if message.contains("being deleted"))
    );
    // Taken again by the same finished holder after a release: no second delete, Skipped.
    let done = [
        Done::Deleted(pipeline_run_name(TARGET)),
        Done::NameTaken(Box::new(theirs)),
    ];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    assert_eq!(p.status.unwrap().phase, Phase::Skipped);
}

#[test]
fn a_refused_release_is_retried_without_counting_a_create() {
    let history = [completed("done", "scale-up", -10)];
    let theirs = run_of("done", false);
    let done = [Done::Failed("forbidden".into())];
    let seen = Seen {
        run: Some(&theirs),
        history: &history,
        done: &done,
        ..Seen::default()
    };
    let p = settled(&pending(), &seen, &ctx(0));
    assert!(p.failed && p.status.is_none() && p.metrics.is_empty());
}

#[test]
fn the_bookkeeping_is_written_with_every_transition() {
    let history = [past(
        "f",
        "restart-deployment",
        json!({"phase": "Failed", "completionTime": t(-500), "consecutiveFailures": 2,
               "nextAllowedExecution": t(-380)}),
    )];
    let seen = Seen {
        history: &history,
        done: &[],
        ..Seen::default()
    };
    // Pending -> Running: the count carried, the window behind it.
    let done = [Done::Created(pipeline_run_name(TARGET))];
    let s = settled(
        &pending(),
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    )
    .status
    .unwrap();
    assert_eq!(
        (s.consecutive_failures, &s.next_allowed_execution),
        (Some(2), &None)
    );
    // Running -> Failed before execution: the third, 4m of backoff from the failure.
    let mut running = pending();
    running.status = Some(s);
    let image_pull = run_of("w", false);
    let mut image_pull = image_pull;
    image_pull.status = serde_json::from_value(json!({
        "conditions": [{"type": "Succeeded", "status": "False", "reason": "CouldntGetTask",
                        "message": "bundle image pull failed: ImagePullBackOff"}],
        "completionTime": t(10)}))
    .unwrap();
    let s = settled(
        &running,
        &Seen {
            run: Some(&image_pull),
            ..Seen::default()
        },
        &ctx(12),
    )
    .status
    .unwrap();
    assert!(!s.failure_details.as_ref().unwrap().was_execution_failure);
    assert_eq!(s.consecutive_failures, Some(3));
    assert_eq!(
        s.next_allowed_execution.map(|t| t.0.to_string()),
        Some(t(10 + 240))
    );
    // An invalid spec never reached the target: no bookkeeping at all.
    let invalid = execution("w").finalized().image("not an image").build();
    let s = settled(&invalid, &seen, &ctx(0)).status.unwrap();
    assert_eq!(
        (s.consecutive_failures, s.next_allowed_execution),
        (None, None)
    );
}

fn failed_with(annotations: Value, cleared: bool) -> WorkflowExecution {
    let mut status = json!({"phase": "Failed", "completionTime": t(-100)});
    if cleared {
        status["blockClearance"] = json!({"clearedAt": t(-1), "clearedBy": "alice",
            "clearReason": "r", "clearMethod": "Annotation"});
    }
    execution("w")
        .finalized()
        .set("metadata.annotations", annotations)
        .status(status)
        .build()
}

#[test]
fn a_stamped_clearance_is_recorded_once_and_announced() {
    let reason = "the node was replaced and the deployment checked by hand, all good now";
    let stamped = json!({CLEAR_EXECUTION_BLOCK: reason, CLEAR_EXECUTION_BLOCK_BY: "alice",
                         CLEAR_EXECUTION_BLOCK_AT: t(-5)});
    let w = failed_with(stamped.clone(), false);
    // Its audit event first, as the operator's act.
    let Step::Act(Effect::Deliver(events)) = plan(&w, &Seen::default(), &ctx(0)) else {
        panic!("expected the clearance's audit event");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, AuditEventType::BlockCleared);
    assert_eq!(events[0].actor_id, "alice");
    // Then the record, owing the event only when it was not delivered.
    let delivered = [Done::Delivered(vec![AuditEventType::BlockCleared])];
    let deferred = [Done::AuditDeferred {
        retry_after: Duration::from_secs(1),
        reason: "down".into(),
    }];
    for (done, owed) in [
        (&delivered[..], vec![]),
        (&deferred[..], vec![AuditEventType::BlockCleared]),
    ] {
        let step = plan(
            &w,
            &Seen {
                done,
                ..Seen::default()
            },
            &ctx(0),
        );
        let Step::Act(Effect::RecordClearance {
            clearance: c,
            audit_pending,
        }) = step
        else {
            panic!("expected the clearance to be recorded, got {step:?}");
        };
        assert_eq!(
            (c.cleared_by.as_str(), c.clear_reason.as_str()),
            ("alice", reason)
        );
        assert_eq!(audit_pending, owed);
    }
    let done = [delivered[0].clone(), Done::ClearanceRecorded];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    );
    assert_eq!(p.status, None, "the status patch was the effect");
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, EventReason::BlockCleared);
    assert!(p.events[0].note.starts_with("block cleared by alice at "));
    assert_eq!(p.metrics, [Metric::BlockCleared]);
    // Once recorded, the clearance is not recorded again.
    let recorded = failed_with(stamped.clone(), true);
    assert_eq!(
        settled(&recorded, &Seen::default(), &ctx(0)),
        Plan::default()
    );
    // A refused patch is retried.
    let done = [delivered[0].clone(), Done::Failed("forbidden".into())];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    );
    assert!(p.failed && p.events.is_empty());
    // Completed executions have no block.
    let mut completed = w.clone();
    completed.status.as_mut().unwrap().phase = Phase::Completed;
    assert_eq!(
        settled(&completed, &Seen::default(), &ctx(0)),
        Plan::default()
    );
}

#[test]
fn an_unstamped_clearance_is_refused_with_a_warning() {
    let w = failed_with(json!({CLEAR_EXECUTION_BLOCK: "some reason"}), false);
    let p = settled(&w, &Seen::default(), &ctx(0));
    assert_eq!(p.status, None);
    assert_eq!(p.events[0].reason, EventReason::BlockClearanceIgnored);
    assert_eq!(p.events[0].type_, EventType::Warning);
    assert_eq!(p.log[0].level(), LogLevel::Warn);
}

#[test]
fn the_longest_pending_reconcile_takes_five_effects() {
    // No finalizer, an empty cache, and a finished execution's run holding the name.
    let mut w = execution("w").timeout("10m").build();
    let history = [completed("done", "scale-up", -10)];
    let theirs = run_of("done", false);
    let mut done: Vec<Done> = Vec::new();
    let plan_done = loop {
        let seen = Seen {
            history: &history,
            done: &done,
            ..Seen::default()
        };
        let result = match plan(&w, &seen, &ctx(0)) {
            Step::Finish(p) => break p,
            Step::Act(Effect::AddFinalizer) => {
                // As the controller does: the written object is the one planned with next.
                w.metadata.finalizers = Some(vec![crate::api::names::FINALIZER.into()]);
                Done::FinalizerAdded
            }
            Step::Act(Effect::CreatePipelineRun(run)) => {
                let released = done.iter().any(|d| matches!(d, Done::Deleted(_)));
                if released {
                    Done::Created(run.metadata.name.unwrap_or_default())
                } else {
                    Done::NameTaken(Box::new(theirs.clone()))
                }
            }
            Step::Act(Effect::DeletePipelineRun { name, .. }) => Done::Deleted(name),
            Step::Act(Effect::Deliver(events)) => {
                Done::Delivered(events.iter().map(|e| e.event_type).collect())
            }
            other => panic!("unexpected {other:?}"),
        };
        done.push(result);
    };
    assert_eq!(done.len(), 5, "{done:?}");
    assert_eq!(plan_done.status.unwrap().phase, Phase::Running);
}

#[test]
fn a_cached_run_of_ours_is_adopted_before_the_rules() {
    // A crash between the create and the status write; the rules would now say RecentlyRemediated.
    let history = [completed("done", "restart-deployment", -100)];
    let ours = run_of("w", false);
    let seen = Seen {
        run: Some(&ours),
        history: &history,
        ..Seen::default()
    };
    let p = settled(&pending(), &seen, &ctx(0));
    assert_eq!(p.status.unwrap().phase, Phase::Running);
    assert_eq!(p.metrics[0], Metric::PipelineRun(CreateResult::Adopted));
}

#[test]
fn an_unstamped_clearance_does_not_hold_up_the_lock_release() {
    let w = execution("w")
        .finalized()
        .set(
            "metadata.annotations",
            json!({CLEAR_EXECUTION_BLOCK: "some reason"}),
        )
        .status(json!({"phase": "Failed", "completionTime": t(-400),
                       "pipelineRunRef": {"name": pipeline_run_name(TARGET)}}))
        .build();
    let ours = run_of("w", false);
    let seen = Seen {
        run: Some(&ours),
        ..Seen::default()
    };
    assert!(matches!(
        plan(&w, &seen, &ctx(0)),
        Step::Act(Effect::DeletePipelineRun { .. })
    ));
    let done = [Done::Deleted(pipeline_run_name(TARGET))];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(0),
    );
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            EventReason::LockReleased,
            EventReason::BlockClearanceIgnored
        ]
    );
}

#[test]
fn a_clearance_sends_its_event_even_after_another_delivery_and_never_owes_a_refused_one() {
    let reason = "the node was replaced and the deployment checked by hand, all good now";
    let stamped = json!({CLEAR_EXECUTION_BLOCK: reason, CLEAR_EXECUTION_BLOCK_BY: "alice",
                         CLEAR_EXECUTION_BLOCK_AT: t(-5)});
    let w = failed_with(stamped, false);
    let leftover = [Done::Delivered(vec![AuditEventType::WorkflowFailed])];
    assert!(matches!(
        plan(
            &w,
            &Seen {
                done: &leftover,
                ..Seen::default()
            },
            &ctx(0)
        ),
        Step::Act(Effect::Deliver(_))
    ));
    let refused = [Done::AuditRejected {
        types: vec![AuditEventType::BlockCleared],
        detail: "400 Bad Request".into(),
    }];
    let Step::Act(Effect::RecordClearance { audit_pending, .. }) = plan(
        &w,
        &Seen {
            done: &refused,
            ..Seen::default()
        },
        &ctx(0),
    ) else {
        panic!("recorded");
    };
    assert!(audit_pending.is_empty(), "a refusal is final");
    let done = [refused[0].clone(), Done::ClearanceRecorded];
    let p = finish(plan(
        &w,
        &Seen {
            done: &done,
            ..Seen::default()
        },
        &ctx(0),
    ));
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [EventReason::BlockCleared, EventReason::AuditFailed]
    );
}
