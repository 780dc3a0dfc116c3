//! The controller against the real API server, with the Tekton stand-in playing Tekton.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names::pipeline_run_name;
use wfe_shared::api::{ConditionReason, ConditionStatus, ConditionType, FailureReason, Phase};
use wfe_shared::fixtures::execution;
use wfe_shared::tekton::{ParamValue, PipelineRun};
use wfe_tools::controller::{ControllerReplica, settings};
use wfe_tools::env::{env, settled_counter};
use wfe_tools::{eventually, shared};

fn string_param(run: &PipelineRun, name: &str) -> Option<String> {
    run.spec
        .params
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| match &p.value {
            ParamValue::String(s) => Some(s.clone()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_runs_the_pipeline_and_completes_with_two_status_writes() {
    let e = env("ctl-happy").await;
    let controller = e.controller("replica-a");
    let target = "payments/deployment/payment-api";
    e.create("restart-api", target, Some("hang")).await;

    let running = e.wait_phase("restart-api", Phase::Running).await;
    let run = e
        .runs
        .get(&pipeline_run_name(target))
        .await
        .expect("PipelineRun created");
    // The PipelineRun, field by field.
    let labels = run.labels();
    assert_eq!(labels["kubernaut.ai/workflow-execution"], "restart-api");
    assert_eq!(labels["kubernaut.ai/source-namespace"], e.ns);
    assert_eq!(labels["kubernaut.ai/workflow-id"], "restart-deployment");
    assert_eq!(
        labels["kubernaut.ai/target-resource"],
        "payments__deployment__payment-api"
    );
    assert_eq!(run.annotations()["kubernaut.ai/target-resource"], target);
    let pref = run.spec.pipeline_ref.clone().unwrap();
    assert_eq!(pref.resolver.as_deref(), Some("bundles"));
    let bundle: Vec<_> = pref
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.value.clone()))
        .collect();
    assert_eq!(
        bundle[0],
        (
            "bundle",
            ParamValue::String("quay.io/kubernaut/workflows/restart:v1.2.0".into())
        )
    );
    let names: Vec<&str> = run.spec.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["REPLICAS", "SIMULATE_OUTCOME", "TARGET_RESOURCE"]);
    assert_eq!(
        string_param(&run, "TARGET_RESOURCE").as_deref(),
        Some(target)
    );
    let template = run.spec.task_run_template.clone().unwrap();
    assert_eq!(template.service_account_name.as_deref(), Some("runner"));
    let sc = template.pod_template.unwrap().security_context.unwrap();
    assert_eq!(
        (
            sc.run_as_non_root,
            sc.seccomp_profile.unwrap().type_.as_str()
        ),
        (Some(true), "RuntimeDefault")
    );
    assert_eq!(
        run.spec.timeouts.clone().unwrap().pipeline.as_deref(),
        Some("10m")
    );

    let status = running.status.clone().unwrap();
    assert!(status.start_time.is_some());
    assert_eq!(
        status.pipeline_run_ref.unwrap().name,
        pipeline_run_name(target)
    );
    let created = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::TektonPipelineCreated)
        .unwrap();
    assert_eq!(created.status, ConditionStatus::True);

    // Now Tekton finishes it.
    let now = k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap();
    e.runs
        .patch_status(&run.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": {
            "startTime": now.to_string(), "completionTime": now.to_string(),
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "Tasks Completed: 1"}]}})))
        .await
        .unwrap();
    let done = e.wait_phase("restart-api", Phase::Completed).await;
    let s = done.status.unwrap();
    assert!(s.completion_time.is_some() && s.duration.is_some());
    let complete = s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::TektonPipelineComplete)
        .unwrap();
    assert_eq!(complete.status, ConditionStatus::True);
    assert_eq!(s.observed_generation, done.metadata.generation);
    assert_eq!(s.pipeline_run_status.unwrap().status, ConditionStatus::True);
    // Exactly two status writes: Running and Completed.
    assert_eq!(
        settled_counter(&controller, "status_writes", "written", 2).await,
        2
    );
    assert_eq!(
        e.settled_event_count("restart-api", "PipelineRunCreated")
            .await,
        1
    );
    assert_eq!(
        e.settled_event_count("restart-api", "WorkflowCompleted")
            .await,
        1
    );
    assert_eq!(e.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_class_is_classified_from_tekton_state() {
    let e = env("ctl-fail").await;
    let _controller = e.controller("replica-a");
    let _tekton = e.tekton(200);
    let step = Some(wfe_tools::tekton::STEP);
    // Tekton does not say which step ran when it cancelled a timed-out run (every step reads
    // "exit 1, TaskRunCancelled"), so no step or exit code is reported for it.
    let cases = [
        ("oom", FailureReason::OOMKilled, Some(137), step, true),
        ("fail", FailureReason::TaskFailed, Some(3), step, true),
        ("timeout", FailureReason::DeadlineExceeded, None, None, true),
        (
            "imagepull",
            FailureReason::ImagePullBackOff,
            None,
            step,
            false,
        ),
    ];
    for (outcome, ..) in &cases {
        e.create(
            &format!("wfe-{outcome}"),
            &format!("ns1/deployment/{outcome}"),
            Some(outcome),
        )
        .await;
    }
    for (outcome, reason, exit_code, failed_step, executed) in cases {
        let w = e.wait_phase(&format!("wfe-{outcome}"), Phase::Failed).await;
        let s = w.status.unwrap();
        let d = s.failure_details.clone().unwrap();
        assert_eq!(d.reason, reason, "{outcome}: {d:?}");
        assert_eq!(s.failure_reason, Some(reason));
        assert_eq!(d.exit_code, exit_code, "{outcome}");
        assert_eq!(d.was_execution_failure, executed, "{outcome}");
        assert_eq!(d.failed_task_name, wfe_tools::tekton::TASK, "{outcome}");
        assert_eq!(d.failed_step_name.as_deref(), failed_step, "{outcome}");
        assert!(
            d.natural_language_summary.contains(&format!("{reason:?}")),
            "{}",
            d.natural_language_summary
        );
        let failed = e
            .settled_event_count(&format!("wfe-{outcome}"), "WorkflowFailed")
            .await;
        assert_eq!(failed, 1, "{outcome}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_that_bypassed_admission_fails_without_a_pipeline_run() {
    let e = env("ctl-invalid").await;
    let _controller = e.controller("replica-a");
    // Passes the CRD schema, fails the shared validator: digest and image disagree.
    let mut spec = e.create("placeholder", "ns1/deployment/x", None).await.spec;
    e.wfes
        .delete("placeholder", &DeleteParams::default())
        .await
        .ok();
    spec.workflow_ref.container_image = format!("quay.io/k/r@sha256:{}", "a".repeat(64));
    spec.workflow_ref.container_digest = Some(format!("sha256:{}", "b".repeat(64)));
    spec.target_resource = "ns1/deployment/invalid".into();
    e.wfes
        .create(
            &PostParams::default(),
            &WorkflowExecution::new("bad-digest", spec),
        )
        .await
        .unwrap();
    let w = e.wait_phase("bad-digest", Phase::Failed).await;
    let d = w.status.unwrap().failure_details.unwrap();
    assert_eq!(d.reason, FailureReason::ConfigurationError);
    assert!(
        d.message.contains("spec.workflowRef.containerDigest"),
        "{}",
        d.message
    );
    assert!(!d.was_execution_failure);
    assert!(
        e.runs
            .get_opt(&pipeline_run_name("ns1/deployment/invalid"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        e.settled_event_count("bad-digest", "WorkflowValidationFailed")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_deleted_externally_fails_the_execution() {
    let e = env("ctl-gone").await;
    let _controller = e.controller("replica-a");
    let target = "ns1/deployment/gone";
    e.create("victim", target, Some("hang")).await;
    e.wait_phase("victim", Phase::Running).await;
    e.runs
        .delete(&pipeline_run_name(target), &DeleteParams::default())
        .await
        .unwrap();
    let w = e.wait_phase("victim", Phase::Failed).await;
    let d = w.status.unwrap().failure_details.unwrap();
    assert_eq!(
        (d.reason, d.message.as_str()),
        (FailureReason::Unknown, "PipelineRun deleted externally")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_execution_removes_its_pipeline_run_and_releases_the_finalizer() {
    let e = env("ctl-delete").await;
    let _controller = e.controller("replica-a");
    let target = "ns1/deployment/deleted";
    e.create("doomed", target, Some("hang")).await;
    let w = e.wait_phase("doomed", Phase::Running).await;
    assert!(
        w.finalizers()
            .iter()
            .any(|f| f == wfe_shared::api::names::FINALIZER)
    );
    e.wfes
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let (wfes, runs) = (e.wfes.clone(), e.runs.clone());
    eventually(
        "the WorkflowExecution and its PipelineRun to be gone",
        Duration::from_secs(30),
        || {
            let (wfes, runs) = (wfes.clone(), runs.clone());
            async move {
                let wfe_gone = wfes.get_opt("doomed").await.ok()?.is_none();
                let run_gone = runs
                    .get_opt(&pipeline_run_name(target))
                    .await
                    .ok()?
                    .is_none();
                (wfe_gone && run_gone).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_flight_and_restarted_creates_no_duplicate() {
    let e = env("ctl-restart").await;
    let mut first = e.controller("replica-a");
    let targets: Vec<String> = (0..6).map(|i| format!("ns1/deployment/app-{i}")).collect();
    for (i, t) in targets.iter().enumerate() {
        e.create(&format!("wfe-{i}"), t, Some("hang")).await;
    }
    // Kill it while it is still working through them.
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.kill().await;
    let _second = e.controller("replica-b");
    // No Tekton stand-in here: this test finishes the PipelineRuns itself, and a stand-in's
    // "Running" patch could land after the test's "Succeeded".
    for i in 0..6 {
        e.wait_phase(&format!("wfe-{i}"), Phase::Running).await;
    }
    assert_eq!(
        e.run_count().await,
        6,
        "one PipelineRun per execution, none twice"
    );
    // Finish them all by hand and check the final status.
    for t in &targets {
        e.runs
            .patch_status(&pipeline_run_name(t), &PatchParams::default(), &Patch::Merge(json!({"status": {
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "done"}]}})))
            .await
            .unwrap();
    }
    for i in 0..6 {
        e.wait_phase(&format!("wfe-{i}"), Phase::Completed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_already_labelled_for_the_execution_is_adopted_not_duplicated() {
    let e = env("ctl-adopt").await;
    let target = "ns1/deployment/adopted";
    let wfe = e.create("adoptee", target, Some("hang")).await;
    // What a crash between "PipelineRun created" and "status written" leaves behind.
    let run = wfe_shared::tekton::builder::build(&wfe, &e.exec_ns);
    e.runs.create(&PostParams::default(), &run).await.unwrap();
    let controller = e.controller("replica-a");
    let w = e.wait_phase("adoptee", Phase::Running).await;
    let created = w
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == ConditionType::TektonPipelineCreated)
        .unwrap();
    assert!(
        created.message.starts_with("adopted"),
        "{}",
        created.message
    );
    // The metric counts adoption attempts: a reconcile woken with a stale (still Pending) copy may
    // adopt once more before its write is refused with a 409. Never a create.
    assert!(controller.counter("pipeline_runs", "adopted") >= 1);
    assert_eq!(controller.counter("pipeline_runs", "created"), 0);
    assert_eq!(e.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_execution_on_a_locked_target_is_skipped_and_an_unlabelled_run_fails() {
    let e = env("ctl-lock").await;
    let _controller = e.controller("replica-a");
    let target = "ns1/deployment/busy";
    e.create("holder", target, Some("hang")).await;
    e.wait_phase("holder", Phase::Running).await;
    e.create("latecomer", target, None).await;
    let w = e.wait_phase("latecomer", Phase::Skipped).await;
    let skip = w.status.unwrap().skip_details.unwrap();
    assert_eq!(skip.reason, wfe_shared::api::SkipReason::ResourceBusy);
    assert_eq!(skip.conflicting_workflow.unwrap().name, "holder");
    assert_eq!(e.run_count().await, 1);

    let stranger_target = "ns1/deployment/stranger";
    let mut run = PipelineRun::new(&pipeline_run_name(stranger_target), Default::default());
    run.metadata.namespace = Some(e.exec_ns.clone());
    e.runs.create(&PostParams::default(), &run).await.unwrap();
    e.create("blocked", stranger_target, None).await;
    let w = e.wait_phase("blocked", Phase::Failed).await;
    let d = w.status.unwrap().failure_details.unwrap();
    assert_eq!(d.reason, FailureReason::Unknown);
    assert!(
        d.message
            .contains("carries no kubernaut.ai/workflow-execution label"),
        "{}",
        d.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_at_once_make_exactly_one_pipeline_run_per_execution() {
    let e = env("ctl-replicas").await;
    let a = e.controller("replica-a");
    let b = e.controller("replica-b");
    let _tekton = e.tekton(100);
    for i in 0..8 {
        e.create(&format!("wfe-{i}"), &format!("ns1/deployment/r-{i}"), None)
            .await;
    }
    for i in 0..8 {
        e.wait_phase(&format!("wfe-{i}"), Phase::Completed).await;
    }
    assert_eq!(e.run_count().await, 8);
    let leaders = a.metrics.leader.get() + b.metrics.leader.get();
    assert_eq!(leaders, 1, "exactly one replica leads");
    let created = a.counter("pipeline_runs", "created") + b.counter("pipeline_runs", "created");
    assert_eq!(created, 8, "each PipelineRun created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_racing_conflicts_keep_the_outcome_and_emit_no_duplicate_event() {
    let e = env("ctl-409").await;
    let controller = e.controller("replica-a");
    let _tekton = e.tekton(300);
    // Someone else keeps updating the objects (labels), so the controller's writes hit 409s.
    let names: Vec<String> = (0..4).map(|i| format!("wfe-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        e.create(n, &format!("ns1/deployment/c-{i}"), None).await;
    }
    let meddler = {
        let (api, names) = (e.wfes.clone(), names.clone());
        tokio::spawn(async move {
            for round in 0..400u32 {
                for n in &names {
                    let _ = api
                        .patch(
                            n,
                            &PatchParams::default(),
                            &Patch::Merge(
                                json!({"metadata": {"labels": {"round": round.to_string()}}}),
                            ),
                        )
                        .await;
                }
            }
        })
    };
    for n in &names {
        e.wait_phase(n, Phase::Completed).await;
    }
    meddler.abort();
    for n in &names {
        assert_eq!(
            e.settled_event_count(n, "PipelineRunCreated").await,
            1,
            "{n}"
        );
        assert_eq!(
            e.settled_event_count(n, "WorkflowCompleted").await,
            1,
            "{n}"
        );
    }
    assert_eq!(e.run_count().await, 4);
    eprintln!(
        "status writes: {} written, {} conflicts",
        controller.counter("status_writes", "written"),
        controller.counter("status_writes", "conflict")
    );
    assert_eq!(
        settled_counter(&controller, "status_writes", "written", 8).await,
        8,
        "two per execution, conflicts or not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_cooldown_the_lock_is_released_once() {
    let e = env("ctl-release").await;
    let _controller = e.controller("replica-a");
    let target = "ns1/deployment/released";
    e.create("finished", target, Some("hang")).await;
    e.wait_phase("finished", Phase::Running).await;
    // Finished long ago: the 5-minute cooldown is over as soon as the controller sees it.
    e.runs
        .patch_status(&pipeline_run_name(target), &PatchParams::default(), &Patch::Merge(json!({"status": {
            "completionTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "done"}]}})))
        .await
        .unwrap();
    e.wait_phase("finished", Phase::Completed).await;
    e.wait_run_deleted(target).await;
    assert_eq!(e.settled_event_count("finished", "LockReleased").await, 1);
    // The target is free again: a new execution runs.
    e.create("next", target, Some("hang")).await;
    e.wait_phase("next", Phase::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_that_ends_while_watching_releases_the_lock_without_any_new_event() {
    let e = env("ctl-sweep").await;
    // Nothing changes after Completed: only the controller's lock sweep can notice the end.
    let mut settings = settings(&e.ns, &e.exec_ns, "replica-a");
    settings.rules.cooldown = Duration::from_secs(4);
    let _controller = ControllerReplica::start(e.client.clone(), settings);
    let _tekton = e.tekton(100);
    let target = "ns1/deployment/cooled";
    e.create("cooled", target, None).await;
    e.wait_phase("cooled", Phase::Completed).await;
    let completed_at = std::time::Instant::now();
    assert!(
        e.runs
            .get_opt(&pipeline_run_name(target))
            .await
            .unwrap()
            .is_some(),
        "the lock is held during the cooldown"
    );
    e.wait_run_deleted(target).await;
    let held = completed_at.elapsed();
    // Completion time has a 1 s resolution, and the sweep runs every second for a 4 s cooldown.
    assert!(
        held >= Duration::from_secs(2) && held <= Duration::from_secs(8),
        "lock held {held:?} for a 4 s cooldown"
    );
    assert_eq!(e.settled_event_count("cooled", "LockReleased").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_starts_is_reported_and_the_own_deadline_still_fires_after_other_events() {
    let e = env("ctl-stuck").await;
    let mut settings = settings(&e.ns, &e.exec_ns, "replica-a");
    settings.pipeline_start_timeout = Duration::from_secs(2);
    let _controller = ControllerReplica::start(e.client.clone(), settings);
    // No Tekton at all: the PipelineRun is created and never starts.
    let spec = execution("stuck")
        .remediation_request("rr-stuck")
        .target("ns1/deployment/stuck")
        .timeout("6s")
        .build()
        .spec;
    e.wfes
        .create(
            &PostParams::default(),
            &WorkflowExecution::new("stuck", spec),
        )
        .await
        .unwrap();
    e.wait_phase("stuck", Phase::Running).await;
    // Tekton-like chatter after the Running write: each update re-runs the reconcile, which must
    // keep the start check and the deadline scheduled.
    let run_name = pipeline_run_name("ns1/deployment/stuck");
    for i in 0..3 {
        e.runs
            .patch_status(&run_name, &PatchParams::default(), &Patch::Merge(json!({"status": {
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "PipelineRunPending",
                                "message": format!("waiting for resolution ({i})")}]}})))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let wfes = e.wfes.clone();
    let stuck = eventually(
        "TektonPipelineRunning to turn False",
        Duration::from_secs(20),
        || {
            let wfes = wfes.clone();
            async move {
                let w = wfes.get("stuck").await.ok()?;
                let s = w.status.clone()?;
                let c = s
                    .conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::TektonPipelineRunning)?;
                (c.status == ConditionStatus::False).then_some((s.phase, c.clone()))
            }
        },
    )
    .await;
    assert_eq!(stuck.0, Phase::Running, "reported, not failed");
    assert_eq!(stuck.1.reason, ConditionReason::PipelineFailedToStart);
    assert!(
        stuck
            .1
            .message
            .contains("has not started 2s after it was created")
            && stuck.1.message.contains("PipelineRunPending"),
        "{}",
        stuck.1.message
    );
    // 6s timeout + 1s grace: the controller's own deadline ends it.
    let failed = e.wait_phase("stuck", Phase::Failed).await;
    let details = failed.status.unwrap().failure_details.unwrap();
    assert_eq!(details.reason, FailureReason::DeadlineExceeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_metrics_after_real_executions_are_promtool_clean() {
    let e = env("ctl-metrics").await;
    let controller = e.controller("replica-a");
    let _tekton = e.tekton(100);
    e.create("measured", "ns1/deployment/measured", None).await;
    e.wait_phase("measured", Phase::Completed).await;
    // Outcome metrics follow the status write, like Events.
    let executions = controller.metrics.executions.clone();
    eventually(
        "the execution to be counted",
        Duration::from_secs(15),
        || {
            let executions = executions.clone();
            async move { (executions.with_label_values(&["Completed"]).get() == 1).then_some(()) }
        },
    )
    .await;
    let text = controller.metrics.render();
    for needle in [
        r#"wfe_controller_executions_total{outcome="Completed"} 1"#,
        r#"wfe_controller_pipelinerun_creations_total{result="created"} 1"#,
        r#"wfe_controller_status_writes_total{result="written"} 2"#,
        "wfe_controller_leader 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    shared()
        .binaries
        .promtool_check(&text)
        .expect("promtool check metrics is clean");
}
