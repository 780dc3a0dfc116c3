//! The plan, step by step, as the controller walks it: effects asked for, their results fed back,
//! and the finished plan's status, Events, metrics and requeue.

use std::time::Duration;

use serde_json::json;

use super::test_support::*;
use super::*;
use crate::api::{FailureReason, SkipReason};
use crate::fixtures::execution;
use crate::tekton::observed::ObservedRun;

fn pending() -> WorkflowExecution {
    execution("w").finalized().timeout("10m").build()
}

fn run_of(owner: Option<(&str, &str)>, status: serde_json::Value) -> ObservedRun {
    let mut labels = serde_json::Map::new();
    if let Some((ns, name)) = owner {
        labels.insert("kubernaut.ai/workflow-execution".into(), json!(name));
        labels.insert("kubernaut.ai/source-namespace".into(), json!(ns));
    }
    serde_json::from_value(json!({
        "metadata": {"name": pipeline_run_name("payments/deployment/payment-api"),
                     "namespace": "exec", "uid": "u-1", "labels": labels},
        "status": status
    }))
    .unwrap()
}

fn running_at(start: i64) -> WorkflowExecution {
    execution("w")
        .finalized()
        .timeout("10m")
        .status(json!({"phase": "Running", "startTime": t(start),
                       "pipelineRunRef": {"name": pipeline_run_name("payments/deployment/payment-api")}}))
        .build()
}

#[test]
fn look_asks_for_what_each_phase_reads() {
    let name = pipeline_run_name("payments/deployment/payment-api");
    assert_eq!(
        look(&pending()),
        Some(Look {
            name: name.clone(),
            source: Source::Cache,
            task_runs: false,
            history: true,
        })
    );
    assert_eq!(
        look(&running_at(0)).map(|l| (l.source, l.task_runs)),
        Some((Source::CacheThenRead, true))
    );
    let running_without_ref = execution("w").status(json!({"phase": "Running"})).build();
    assert_eq!(look(&running_without_ref), None);
    let skipped = execution("w").status(json!({"phase": "Skipped"})).build();
    assert_eq!(look(&skipped), None);
    let mut deleting = pending();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ctx(0).now),
    );
    assert_eq!(
        look(&deleting),
        Some(Look {
            name,
            source: Source::Read,
            task_runs: false,
            history: false,
        })
    );
    deleting.metadata.finalizers = None;
    assert_eq!(look(&deleting), None, "not ours to clean up");
}

#[test]
fn pending_adds_a_missing_finalizer_then_creates_and_writes_running_once() {
    let bare = execution("w").build();
    assert_eq!(
        plan(&bare, &Seen::default(), &ctx(0)),
        Step::Act(Effect::AddFinalizer)
    );
    let w = pending();
    let Step::Act(Effect::CreatePipelineRun(run)) = plan(&w, &Seen::default(), &ctx(0)) else {
        panic!("expected a create");
    };
    let name = run.metadata.name.clone().unwrap();
    assert_eq!(run.metadata.namespace.as_deref(), Some("exec"));
    let done = [Done::Created(name.clone())];
    let seen = Seen {
        done: &done,
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(0));
    let status = p.status.expect("one status write");
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.pipeline_run_ref.map(|r| r.name), Some(name.clone()));
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, EventReason::PipelineRunCreated);
    assert_eq!(
        p.events[0].note,
        format!("Created PipelineRun exec/{name}; Pending -> Running")
    );
    assert_eq!(p.metrics, [Metric::PipelineRun(CreateResult::Created)]);
    assert!(
        p.requeue.is_some(),
        "the start check and deadline are scheduled"
    );
    assert!(!p.failed);
    assert!(p.log.iter().any(|l| matches!(
        l,
        LogLine::Transition {
            from: Phase::Pending,
            to: Phase::Running,
            ..
        }
    )));
    assert!(p.log.iter().any(
        |l| matches!(l, LogLine::Note { message, .. } if message.contains("created PipelineRun"))
    ));
}

#[test]
fn a_cached_run_of_ours_is_adopted_without_a_create() {
    let run = run_of(Some(("team-a", "w")), json!(null));
    let seen = Seen {
        run: Some(&run),
        ..Seen::default()
    };
    let p = settled(&pending(), &seen, &ctx(0));
    assert_eq!(p.metrics, [Metric::PipelineRun(CreateResult::Adopted)]);
    assert!(p.events[0].note.starts_with("Adopted PipelineRun"));
    assert_eq!(p.status.unwrap().phase, Phase::Running);
}

#[test]
fn a_cached_run_of_another_execution_is_confirmed_by_the_create() {
    let run = run_of(Some(("team-a", "other")), json!(null));
    let seen = Seen {
        run: Some(&run),
        ..Seen::default()
    };
    assert!(matches!(
        plan(&pending(), &seen, &ctx(0)),
        Step::Act(Effect::CreatePipelineRun(_))
    ));
}

#[test]
fn a_taken_name_skips_locks_or_fails_by_its_holder() {
    let cases = [
        (
            Some(("team-b", "holder")),
            Phase::Skipped,
            CreateResult::Locked,
            EventReason::Skipped,
        ),
        (
            None,
            Phase::Failed,
            CreateResult::Unowned,
            EventReason::WorkflowFailed,
        ),
        (
            Some(("team-a", "w")),
            Phase::Running,
            CreateResult::Adopted,
            EventReason::PipelineRunCreated,
        ),
    ];
    for (owner, phase, result, reason) in cases {
        let done = [Done::NameTaken(Box::new(run_of(owner, json!(null))))];
        let seen = Seen {
            done: &done,
            ..Seen::default()
        };
        let p = settled(&pending(), &seen, &ctx(0));
        let status = p.status.unwrap();
        assert_eq!(status.phase, phase, "{owner:?}");
        assert_eq!(p.metrics[0], Metric::PipelineRun(result));
        assert_eq!(p.events[0].reason, reason);
        if phase == Phase::Skipped {
            let skip = status.skip_details.unwrap();
            assert_eq!(skip.reason, SkipReason::ResourceBusy);
            assert!(skip.message.contains("team-b/holder"), "{}", skip.message);
            assert_eq!(
                p.metrics[1],
                Metric::Finished {
                    outcome: Phase::Skipped,
                    seconds: None
                }
            );
        }
    }
}

#[test]
fn a_refused_create_is_counted_and_retried_without_a_write() {
    let done = [Done::Failed("quota".into())];
    let seen = Seen {
        done: &done,
        ..Seen::default()
    };
    let p = settled(&pending(), &seen, &ctx(0));
    assert!(p.failed && p.status.is_none() && p.events.is_empty());
    assert_eq!(p.metrics, [Metric::PipelineRun(CreateResult::Error)]);
}

#[test]
fn an_invalid_spec_fails_with_a_validation_event_and_no_effect() {
    let w = execution("w").finalized().image("not an image").build();
    let p = settled(&w, &Seen::default(), &ctx(0));
    let status = p.status.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(
        status.failure_details.unwrap().reason,
        FailureReason::ConfigurationError
    );
    assert_eq!(p.events[0].reason, EventReason::WorkflowValidationFailed);
    assert_eq!(p.events[0].type_, EventType::Warning);
    assert!(matches!(
        p.metrics[0],
        Metric::Finished {
            outcome: Phase::Failed,
            ..
        }
    ));
    assert_eq!(
        p.metrics[1],
        Metric::Failed(FailureReason::ConfigurationError),
        "failures are counted by reason"
    );
    assert_eq!(p.metrics.len(), 2);
}

#[test]
fn running_without_news_writes_nothing_and_schedules_the_next_check() {
    let w = running_at(0);
    let run = run_of(
        Some(("team-a", "w")),
        json!({"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
                                                     "childReferences": [{"kind": "TaskRun", "name": "tr"}]}),
    );
    let seen = Seen {
        run: Some(&run),
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(30));
    assert_eq!(p.status, None);
    assert!(p.events.is_empty() && p.metrics.is_empty() && p.log.is_empty());
    // The start check (120 s after the start) comes before the deadline (10m + 60 s).
    assert_eq!(p.requeue, Some(Duration::from_secs(90)));
    let p = settled(&w, &seen, &ctx(200));
    assert_eq!(p.requeue, Some(Duration::from_secs(660 - 200)));
    // Exactly at the start timeout the check is due now, not again: only the deadline is left.
    let p = settled(&w, &seen, &ctx(120));
    assert_eq!(p.requeue, Some(Duration::from_secs(660 - 120)));
}

#[test]
fn a_run_that_does_not_start_is_logged_as_a_warning_and_its_recovery_as_info() {
    let w = running_at(0);
    let pending = run_of(
        Some(("team-a", "w")),
        json!({"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "PipelineRunPending"}]}),
    );
    let seen = Seen {
        run: Some(&pending),
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(121));
    let stuck = p.status.clone().expect("the condition turns False");
    assert_eq!(stuck.phase, Phase::Running);
    assert!(p.events.is_empty(), "no transition, no Event");
    assert_eq!(p.log.len(), 1, "{:?}", p.log);
    assert_eq!(p.log[0].level(), LogLevel::Warn);
    assert!(
        matches!(&p.log[0], LogLine::Note { message, .. } if message.starts_with("TektonPipelineRunning False (PipelineFailedToStart)")),
        "{:?}",
        p.log
    );
    // It starts after all: one more write, logged at info.
    let mut w = w;
    w.status = Some(stuck);
    let started = run_of(
        Some(("team-a", "w")),
        json!({"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
               "childReferences": [{"kind": "TaskRun", "name": "tr"}]}),
    );
    let seen = Seen {
        run: Some(&started),
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(130));
    assert!(p.status.is_some());
    assert_eq!(p.log.len(), 1, "{:?}", p.log);
    assert_eq!(p.log[0].level(), LogLevel::Info);
}

#[test]
fn completion_is_one_write_one_event_and_the_outcome_metric() {
    let w = running_at(0);
    let run = run_of(
        Some(("team-a", "w")),
        json!({"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
                                                     "completionTime": t(90)}),
    );
    let seen = Seen {
        run: Some(&run),
        ..Seen::default()
    };
    let p = settled(&w, &seen, &ctx(95));
    assert_eq!(p.status.unwrap().phase, Phase::Completed);
    assert_eq!(p.events[0].reason, EventReason::WorkflowCompleted);
    assert_eq!(
        p.metrics,
        [Metric::Finished {
            outcome: Phase::Completed,
            seconds: Some(90.0)
        }]
    );
    assert_eq!(p.requeue, None);
}

#[test]
fn a_vanished_run_fails_the_execution() {
    let p = settled(&running_at(0), &Seen::default(), &ctx(5));
    let status = p.status.unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(
        status.failure_details.unwrap().message,
        "PipelineRun deleted externally"
    );
}

fn finished_at(at: i64) -> WorkflowExecution {
    execution("w")
        .finalized()
        .status(json!({"phase": "Completed", "startTime": t(0), "completionTime": t(at),
                       "pipelineRunRef": {"name": pipeline_run_name("payments/deployment/payment-api")}}))
        .build()
}

#[test]
fn a_finished_lock_is_released_once_after_the_cooldown() {
    let w = finished_at(0);
    let ours = run_of(Some(("team-a", "w")), json!(null));
    let seen = Seen {
        run: Some(&ours),
        ..Seen::default()
    };
    assert_eq!(
        settled(&w, &seen, &ctx(299)),
        Plan::default(),
        "cooldown not over"
    );
    assert_eq!(
        plan(&w, &seen, &ctx(300)),
        Step::Act(Effect::DeletePipelineRun {
            name: ours.name().to_owned(),
            uid: Some("u-1".into())
        })
    );
    let done = [Done::Deleted(ours.name().to_owned())];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(300),
    );
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, EventReason::LockReleased);
    assert!(
        p.events[0].note.starts_with("cooldown of 5m0s over"),
        "{}",
        p.events[0].note
    );
    let refused = [Done::Failed("forbidden".into())];
    let p = settled(
        &w,
        &Seen {
            done: &refused,
            ..seen
        },
        &ctx(300),
    );
    assert!(
        p.failed && p.events.is_empty(),
        "a refused delete is retried, never announced"
    );
    let gone = [Done::Gone(ours.name().to_owned())];
    assert!(
        settled(
            &w,
            &Seen {
                done: &gone,
                ..seen
            },
            &ctx(300)
        )
        .events
        .is_empty()
    );
    assert!(lock_due(
        &w,
        Some(&ours),
        ctx(300).now,
        Duration::from_secs(300)
    ));
    let other = run_of(Some(("team-a", "later")), json!(null));
    assert!(!lock_due(
        &w,
        Some(&other),
        ctx(300).now,
        Duration::from_secs(300)
    ));
    assert!(!lock_due(&w, None, ctx(300).now, Duration::from_secs(300)));
}

#[test]
fn a_terminal_status_is_never_written_again() {
    let w = finished_at(0);
    let run = run_of(
        Some(("team-a", "w")),
        json!({"conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]}),
    );
    let seen = Seen {
        run: Some(&run),
        ..Seen::default()
    };
    assert_eq!(settled(&w, &seen, &ctx(10)).status, None);
}

#[test]
fn deletion_removes_our_run_then_the_finalizer_then_tells() {
    let mut w = running_at(0);
    w.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        ctx(0).now,
    ));
    let ours = run_of(Some(("team-a", "w")), json!(null));
    let seen = Seen {
        run: Some(&ours),
        ..Seen::default()
    };
    let name = ours.name().to_owned();
    assert_eq!(
        plan(&w, &seen, &ctx(1)),
        Step::Act(Effect::DeletePipelineRun {
            name: name.clone(),
            uid: Some("u-1".into())
        })
    );
    // A running workflow is cancelled: its audit event goes before the finalizer.
    let done = [Done::Deleted(name.clone())];
    let Step::Act(Effect::Deliver(events)) = plan(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(1),
    ) else {
        panic!("expected the cancellation's audit event");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type,
        crate::api::AuditEventType::WorkflowFailed
    );
    let delivered = Done::Delivered(vec![crate::api::AuditEventType::WorkflowFailed]);
    let done = [Done::Deleted(name.clone()), delivered.clone()];
    assert_eq!(
        plan(
            &w,
            &Seen {
                done: &done,
                ..seen
            },
            &ctx(1)
        ),
        Step::Act(Effect::RemoveFinalizer)
    );
    let done = [
        Done::Deleted(name.clone()),
        delivered.clone(),
        Done::FinalizerRemoved,
    ];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(1),
    );
    assert_eq!(p.events[0].reason, EventReason::WorkflowExecutionDeleted);
    assert!(
        p.events[0]
            .note
            .contains("removed (cancelled if it was running)")
    );
    // Someone else's run is left alone.
    let theirs = run_of(Some(("team-a", "other")), json!(null));
    let seen = Seen {
        run: Some(&theirs),
        ..Seen::default()
    };
    let done = [delivered.clone()];
    assert_eq!(
        plan(
            &w,
            &Seen {
                done: &done,
                ..seen
            },
            &ctx(1)
        ),
        Step::Act(Effect::RemoveFinalizer)
    );
    let done = [delivered, Done::FinalizerRemoved];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            ..seen
        },
        &ctx(1),
    );
    assert_eq!(
        p.events[0].note,
        "deleted; no PipelineRun of this execution to remove"
    );
    // A refused delete is reported and retried.
    let done = [Done::Failed("boom".into())];
    let p = settled(
        &w,
        &Seen {
            done: &done,
            run: Some(&ours),
            ..Seen::default()
        },
        &ctx(1),
    );
    assert!(p.failed);
    assert_eq!(p.events[0].reason, EventReason::CleanupFailed);
    assert_eq!(
        p.events[0].note,
        format!("cannot delete PipelineRun exec/{name}: boom")
    );
    // Without our finalizer there is nothing to do.
    w.metadata.finalizers = Some(vec!["other".into()]);
    assert_eq!(settled(&w, &Seen::default(), &ctx(1)), Plan::default());
}
