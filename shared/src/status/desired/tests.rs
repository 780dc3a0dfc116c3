use k8s_openapi::api::core::v1::ContainerStateTerminated;

use super::*;
use crate::fixtures::execution;
use crate::tekton::{
    ChildStatusReference, KnativeCondition, PipelineRun, PipelineRunStatus, StepState, TaskRun,
    TaskRunSpec, TaskRunStatus,
};

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn ctx(secs: i64) -> Context {
    Context {
        now: ts(secs),
        deadline_grace: Duration::from_secs(60),
        start_timeout: Duration::from_secs(120),
        rules: Rules::default(),
        carried: None,
    }
}

fn wfe() -> WorkflowExecution {
    execution("restart-api")
        .generation(1)
        .image("quay.io/k/r:v1")
        .target("payments/deployment/api")
        .timeout("10m")
        .build()
}

fn cond(status: &str, reason: &str) -> KnativeCondition {
    KnativeCondition {
        type_: "Succeeded".into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(format!("{reason} message")),
        ..Default::default()
    }
}

fn run(cond: Option<KnativeCondition>, started: bool, completed_at: Option<i64>) -> ObservedRun {
    let mut pr = PipelineRun::new("wfe-0011223344556677", Default::default());
    pr.status = Some(PipelineRunStatus {
        conditions: cond.into_iter().collect(),
        start_time: started.then(|| Time(ts(1))),
        completion_time: completed_at.map(|s| Time(ts(s))),
        child_references: vec![ChildStatusReference {
            kind: Some("TaskRun".into()),
            name: "tr-restart".into(),
            pipeline_task_name: Some("restart".into()),
            ..Default::default()
        }],
    });
    pr.into()
}

fn task_run(status: &str, code: i32, reason: &str) -> ObservedTaskRun {
    let mut tr = TaskRun::new("tr-restart", TaskRunSpec {});
    tr.status = Some(TaskRunStatus {
        conditions: vec![cond(status, "Failed")],
        steps: vec![StepState {
            name: Some("restart".into()),
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    tr.into()
}

/// Applies an observation at time `at` and stores the result, as the controller's write would.
fn step(w: &mut WorkflowExecution, obs: Observation<'_>, at: i64) -> WorkflowExecutionStatus {
    let s = desired_status(w, obs, &ctx(at));
    w.status = Some(s.clone());
    s
}

/// An execution whose PipelineRun was created at time 0 (Running).
fn running() -> WorkflowExecution {
    let mut w = wfe();
    step(
        &mut w,
        Observation::PipelineRunCreated {
            name: "wfe-0011223344556677",
            adopted: false,
        },
        0,
    );
    w
}

#[test]
fn created_then_running_then_completed() {
    let mut w = wfe();
    let s = step(
        &mut w,
        Observation::PipelineRunCreated {
            name: "wfe-0011223344556677",
            adopted: false,
        },
        0,
    );
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.start_time, Some(Time(ts(0))));
    assert_eq!(
        s.pipeline_run_ref.as_ref().unwrap().name,
        "wfe-0011223344556677"
    );
    assert_eq!(s.observed_generation, Some(1));
    let created = conditions::get(&s.conditions, T::TektonPipelineCreated).unwrap();
    assert_eq!(
        (created.status, created.reason),
        (S::True, R::PipelineCreated)
    );

    // Progress while running is not a transition: nothing to write.
    let running = s.clone();
    let pr = run(Some(cond("Unknown", "Running")), true, None);
    let s = step(
        &mut w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &[],
        },
        5,
    );
    assert_eq!(s, running);

    let pr = run(Some(cond("True", "Succeeded")), true, Some(90));
    let s = step(
        &mut w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &[],
        },
        91,
    );
    assert_eq!(s.phase, Phase::Completed);
    // The transition's write carries the progress: started, summary of the PipelineRun.
    assert_eq!(
        conditions::get(&s.conditions, T::TektonPipelineRunning)
            .unwrap()
            .status,
        S::True
    );
    assert_eq!(s.pipeline_run_status.as_ref().unwrap().status, S::True);
    assert_eq!(s.pipeline_run_status.as_ref().unwrap().total_tasks, 1);
    assert_eq!(s.completion_time, Some(Time(ts(90))));
    assert_eq!(s.duration.as_deref(), Some("1m30s"));
    let complete = conditions::get(&s.conditions, T::TektonPipelineComplete).unwrap();
    assert_eq!(
        (complete.status, complete.reason),
        (S::True, R::PipelineSucceeded)
    );
    assert!(s.failure_details.is_none());
}

#[test]
fn recomputing_from_the_same_observation_changes_nothing() {
    // What makes a no-op reconcile write nothing: the desired status is a fixed point.
    let mut w = running();
    let pr = run(Some(cond("Unknown", "Running")), true, None);
    let first = step(
        &mut w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &[],
        },
        5,
    );
    for later in [6, 30, 300] {
        assert_eq!(
            desired_status(
                &w,
                Observation::PipelineRun {
                    run: &pr,
                    task_runs: &[]
                },
                &ctx(later)
            ),
            first,
            "at +{later}s"
        );
    }
    let adopted_again = desired_status(
        &w,
        Observation::PipelineRunCreated {
            name: "wfe-0011223344556677",
            adopted: true,
        },
        &ctx(40),
    );
    assert_eq!(
        adopted_again.start_time, first.start_time,
        "the start time is not reset"
    );
}

#[test]
fn an_oom_failure_is_classified_and_explained() {
    let mut w = running();
    let pr = run(Some(cond("False", "Failed")), true, Some(125));
    let trs = [task_run("False", 137, "OOMKilled")];
    let s = step(
        &mut w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &trs,
        },
        126,
    );
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.failure_reason, Some(FailureReason::OOMKilled));
    let d = s.failure_details.clone().unwrap();
    assert_eq!(
        (d.reason, d.failed_task_index, d.failed_task_name.as_str()),
        (FailureReason::OOMKilled, 0, "restart")
    );
    assert_eq!(
        (d.failed_step_name.as_deref(), d.exit_code),
        (Some("restart"), Some(137))
    );
    assert_eq!(d.failed_at, Time(ts(125)));
    assert_eq!(d.execution_time_before_failure, "2m5s");
    assert!(d.was_execution_failure);
    assert_eq!(
        d.natural_language_summary,
        "Workflow restart-deployment (1.2.0) failed on payments/deployment/api after 2m5s: OOMKilled.\n\
         Failed in task restart, step restart, exit code 137.\n\
         Cause: Failed message\n\
         Action: raise the step's memory limit, or check the target for a memory leak.\n\
         The workflow ran: non-idempotent actions may have been applied; check the target before running a workflow on it again.\n\
         PipelineRun: wfe-0011223344556677."
            .replace("\\\n", "")
    );
    let complete = conditions::get(&s.conditions, T::TektonPipelineComplete).unwrap();
    assert_eq!((complete.status, complete.reason), (S::False, R::OOMKilled));
    // Terminal: nothing changes it any more.
    let later = run(Some(cond("True", "Succeeded")), true, Some(200));
    assert_eq!(
        desired_status(
            &w,
            Observation::PipelineRun {
                run: &later,
                task_runs: &[]
            },
            &ctx(300)
        ),
        s
    );
    assert_eq!(
        desired_status(&w, Observation::PipelineRunMissing, &ctx(300)),
        s
    );
}

#[test]
fn a_pipeline_run_deleted_externally_fails_the_execution() {
    let mut w = running();
    let s = step(&mut w, Observation::PipelineRunMissing, 30);
    assert_eq!(s.phase, Phase::Failed);
    let d = s.failure_details.unwrap();
    assert_eq!(
        (d.reason, d.message.as_str()),
        (FailureReason::Unknown, "PipelineRun deleted externally")
    );
    assert!(
        d.was_execution_failure,
        "it may have run: the target is blocked"
    );
    assert_eq!(s.duration.as_deref(), Some("30s"));
}

#[test]
fn the_controllers_own_deadline_fires_after_timeout_plus_grace() {
    let w = running();
    let pr = run(Some(cond("Unknown", "Running")), true, None);
    // 10m timeout + 60s grace.
    let s = desired_status(
        &w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &[],
        },
        &ctx(660),
    );
    assert_eq!(s.phase, Phase::Running);
    let s = desired_status(
        &w,
        Observation::PipelineRun {
            run: &pr,
            task_runs: &[],
        },
        &ctx(661),
    );
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.failure_reason, Some(FailureReason::DeadlineExceeded));
    assert!(
        s.failure_details.as_ref().unwrap().was_execution_failure,
        "it ran"
    );
    assert_eq!(
        conditions::get(&s.conditions, T::TektonPipelineComplete)
            .unwrap()
            .reason,
        R::DeadlineExceeded
    );
    // A run that never started: the deadline is a failure before execution.
    let unstarted = run(Some(cond("Unknown", "PipelineRunPending")), false, None);
    let s = desired_status(
        &w,
        Observation::PipelineRun {
            run: &unstarted,
            task_runs: &[],
        },
        &ctx(661),
    );
    assert_eq!(s.failure_reason, Some(FailureReason::DeadlineExceeded));
    assert!(!s.failure_details.unwrap().was_execution_failure);
}

#[test]
fn an_invalid_spec_fails_before_any_pipeline_run() {
    let mut w = wfe();
    w.spec.target_resource = "nope".into();
    let report = crate::admission::validation::validate(&w);
    let s = desired_status(&w, Observation::InvalidSpec(&report), &ctx(0));
    assert_eq!(s.phase, Phase::Failed);
    let d = s.failure_details.unwrap();
    assert_eq!(d.reason, FailureReason::ConfigurationError);
    assert!(
        d.message
            .starts_with("spec is invalid: spec.targetResource: Invalid value"),
        "{}",
        d.message
    );
    assert!(!d.was_execution_failure);
    assert!(s.pipeline_run_ref.is_none() && s.start_time.is_none());
    assert_eq!(
        conditions::get(&s.conditions, T::TektonPipelineCreated)
            .unwrap()
            .reason,
        R::PipelineCreationFailed
    );
}

#[test]
fn a_lock_held_by_another_execution_skips_and_an_unowned_run_fails() {
    let w = wfe();
    let other = execution("other").namespace("team-b").build();
    let details = crate::safety::busy(&w, &other, Some("wfe-0011223344556677"), ts(0));
    let s = desired_status(&w, Observation::Skipped(&details), &ctx(0));
    assert_eq!(s.phase, Phase::Skipped);
    let d = s.skip_details.unwrap();
    assert_eq!(d.reason, SkipReason::ResourceBusy);
    assert_eq!(d.conflicting_workflow.unwrap().name, "other");
    assert_eq!(
        conditions::get(&s.conditions, T::ResourceLocked)
            .unwrap()
            .reason,
        R::TargetResourceBusy
    );

    let s = desired_status(
        &w,
        Observation::UnownedPipelineRun {
            name: "wfe-0011223344556677",
        },
        &ctx(0),
    );
    assert_eq!(s.phase, Phase::Failed);
    let d = s.failure_details.unwrap();
    assert_eq!(d.reason, FailureReason::Unknown);
    assert!(
        d.message
            .contains("carries no kubernaut.ai/workflow-execution label"),
        "{}",
        d.message
    );
}

#[test]
fn a_pipeline_run_stuck_unstarted_past_the_start_timeout_is_reported_once_then_recovers() {
    let mut w = running();
    let pending = run(Some(cond("Unknown", "PipelineRunPending")), false, None);
    let observe = |w: &WorkflowExecution, pr: &ObservedRun, at: i64| {
        desired_status(
            w,
            Observation::PipelineRun {
                run: pr,
                task_runs: &[],
            },
            &ctx(at),
        )
    };
    // Within the 2-minute start timeout: nothing to write.
    assert_eq!(observe(&w, &pending, 120), w.status.clone().unwrap());
    // Past it: one write with the condition False, still Running.
    let s = observe(&w, &pending, 121);
    assert_eq!(s.phase, Phase::Running);
    let c = conditions::get(&s.conditions, T::TektonPipelineRunning).unwrap();
    assert_eq!((c.status, c.reason), (S::False, R::PipelineFailedToStart));
    assert!(
        c.message
            .contains("has not started 2m0s after it was created")
            && c.message.contains("PipelineRunPending"),
        "{}",
        c.message
    );
    w.status = Some(s.clone());
    // Said once: later reconciles change nothing.
    assert_eq!(observe(&w, &pending, 300), s);
    // Tekton's first look (startTime, reason Started) is not a start.
    let mut looked_at = run(Some(cond("Unknown", "Started")), true, None);
    looked_at.status.as_mut().unwrap().child_references.clear();
    assert_eq!(observe(&w, &looked_at, 305), s);
    // It starts after all: the condition recovers at once.
    let started = run(Some(cond("Unknown", "Running")), true, None);
    let s = observe(&w, &started, 310);
    let c = conditions::get(&s.conditions, T::TektonPipelineRunning).unwrap();
    assert_eq!((c.status, c.reason), (S::True, R::PipelineStarted));
    w.status = Some(s.clone());
    assert_eq!(observe(&w, &started, 320), s, "and then stays quiet");
}

#[test]
fn a_pipeline_run_that_starts_in_time_costs_no_extra_write() {
    let w = running();
    let started = run(Some(cond("Unknown", "Running")), true, None);
    let s = desired_status(
        &w,
        Observation::PipelineRun {
            run: &started,
            task_runs: &[],
        },
        &ctx(500),
    );
    assert_eq!(
        s,
        w.status.clone().unwrap(),
        "progress waits for the next transition"
    );
}

/// Every kind of failed status: its `TektonPipelineComplete` and `TektonPipelineRunning`
/// conditions (what `kubectl describe` shows first) and `failedTaskIndex`.
#[test]
fn every_kind_of_failed_status_has_its_conditions_and_failed_task_index() {
    type Cond = Option<(S, R)>;
    let of = |s: &WorkflowExecutionStatus, t: T| -> Cond {
        conditions::get(&s.conditions, t).map(|c| (c.status, c.reason))
    };
    let observed = |pr: ObservedRun, trs: Vec<ObservedTaskRun>, at: i64| {
        let mut w = running();
        step(
            &mut w,
            Observation::PipelineRun {
                run: &pr,
                task_runs: &trs,
            },
            at,
        )
    };
    let started = Some((S::True, R::PipelineStarted));
    let cases: Vec<(
        &str,
        WorkflowExecutionStatus,
        FailureReason,
        Cond,
        Cond,
        i32,
    )> = vec![
        (
            "a step OOMKilled",
            observed(
                run(Some(cond("False", "Failed")), true, Some(20)),
                vec![task_run("False", 137, "OOMKilled")],
                21,
            ),
            FailureReason::OOMKilled,
            Some((S::False, R::OOMKilled)),
            started,
            0,
        ),
        (
            "a step exits 1",
            observed(
                run(Some(cond("False", "Failed")), true, Some(20)),
                vec![task_run("False", 1, "Error")],
                21,
            ),
            FailureReason::TaskFailed,
            Some((S::False, R::TaskFailed)),
            started,
            0,
        ),
        (
            "Tekton's timeout",
            observed(
                run(Some(cond("False", "PipelineRunTimeout")), true, Some(20)),
                vec![],
                21,
            ),
            FailureReason::DeadlineExceeded,
            Some((S::False, R::DeadlineExceeded)),
            started,
            -1,
        ),
        (
            "the bundle cannot be resolved (never started, no TaskRun)",
            observed(
                {
                    let mut pr = run(Some(cond("False", "CouldntGetPipeline")), false, Some(20));
                    if let Some(s) = pr.status.as_mut() {
                        s.child_references.clear();
                    }
                    pr
                },
                vec![],
                21,
            ),
            FailureReason::ConfigurationError,
            Some((S::False, R::PipelineFailed)),
            None,
            -1,
        ),
        (
            "an image cannot be pulled",
            observed(
                run(Some(cond("False", "Failed")), true, Some(20)),
                vec![{
                    let mut tr = task_run("False", 0, "Completed");
                    if let Some(s) = tr.status.as_mut() {
                        s.conditions[0].reason = Some("TaskRunImagePullFailed".into());
                    }
                    tr
                }],
                21,
            ),
            FailureReason::ImagePullBackOff,
            Some((S::False, R::PipelineFailed)),
            started,
            0,
        ),
        (
            "the controller's own deadline",
            observed(
                run(Some(cond("Unknown", "Running")), true, None),
                vec![],
                661,
            ),
            FailureReason::DeadlineExceeded,
            Some((S::False, R::DeadlineExceeded)),
            started,
            -1,
        ),
        (
            "the PipelineRun deleted externally",
            {
                let mut w = running();
                step(&mut w, Observation::PipelineRunMissing, 30)
            },
            FailureReason::Unknown,
            Some((S::False, R::PipelineFailed)),
            None,
            -1,
        ),
        (
            "an invalid spec (no PipelineRun)",
            {
                let mut w = wfe();
                w.spec.target_resource = "nope".into();
                let report = crate::admission::validation::validate(&w);
                desired_status(&w, Observation::InvalidSpec(&report), &ctx(0))
            },
            FailureReason::ConfigurationError,
            None,
            None,
            -1,
        ),
        (
            "a PipelineRun of that name not ours",
            desired_status(
                &wfe(),
                Observation::UnownedPipelineRun {
                    name: "wfe-0011223344556677",
                },
                &ctx(0),
            ),
            FailureReason::Unknown,
            None,
            None,
            -1,
        ),
    ];
    for (what, s, reason, complete, running_cond, index) in cases {
        assert_eq!(s.phase, Phase::Failed, "{what}");
        assert_eq!(s.failure_reason, Some(reason), "{what}");
        let d = s.failure_details.as_ref().expect(what);
        assert_eq!(d.reason, reason, "{what}");
        assert_eq!(d.failed_task_index, index, "{what}: failedTaskIndex");
        assert_eq!(
            d.failed_task_name.is_empty(),
            index == -1,
            "{what}: a task name exactly when a task failed"
        );
        assert_eq!(
            of(&s, T::TektonPipelineComplete),
            complete,
            "{what}: TektonPipelineComplete"
        );
        assert_eq!(
            of(&s, T::TektonPipelineRunning),
            running_cond,
            "{what}: TektonPipelineRunning"
        );
        assert!(
            s.completion_time.is_some() && s.duration.is_some(),
            "{what}"
        );
    }
}
