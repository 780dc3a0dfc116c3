//! The safety rules on the real API server (SPEC 4, Pending rules 2–6): each Skipped reason end to
//! end, the block after an execution failure that outlives the cooldown until an operator clears
//! it with kubectl (attributed by the webhook), the per-target count of failures with its backoff
//! and threshold, a success resetting it, a different workflow taking a finished target at once,
//! two executions racing for one target across two replicas, and two different workflows racing
//! for a target whose finished run still holds the lock. Cooldowns and backoffs are
//! seconds, set by the controller's settings.

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use wfe_controller::context::Settings;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names::{
    CLEAR_EXECUTION_BLOCK, CLEAR_EXECUTION_BLOCK_AT, CLEAR_EXECUTION_BLOCK_BY, pipeline_run_name,
};
use wfe_shared::api::{
    ClearMethod, ConditionReason, ConditionStatus, ConditionType, Phase, SkipDetails, SkipReason,
};
use wfe_shared::safety::Rules;
use wfe_tools::audit::receiver::Receiver;
use wfe_tools::controller::{ControllerReplica, audit_to, settings};
use wfe_tools::env::{Env, env, spec};
use wfe_tools::webhook::LocalWebhook;
use wfe_tools::{eventually, shared};

fn with_rules(e: &Env, identity: &str, rules: Rules) -> Settings {
    Settings {
        rules,
        ..settings(&e.ns, &e.exec_ns, identity)
    }
}

fn controller(e: &Env, rules: Rules) -> ControllerReplica {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("WFE_TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    ControllerReplica::start(e.client.clone(), with_rules(e, "replica-a", rules))
}

fn skip_of(w: &WorkflowExecution) -> SkipDetails {
    let s = w.status.as_ref().expect("status");
    let locked = s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::ResourceLocked)
        .expect("ResourceLocked");
    assert_eq!(locked.status, ConditionStatus::True);
    let details = *s.skip_details.clone().expect("skipDetails");
    let expected = match details.reason {
        SkipReason::ResourceBusy => ConditionReason::TargetResourceBusy,
        SkipReason::RecentlyRemediated => ConditionReason::RecentlyRemediated,
        SkipReason::PreviousExecutionFailed => ConditionReason::PreviousExecutionFailed,
        SkipReason::ExhaustedRetries => ConditionReason::ExhaustedRetries,
    };
    assert_eq!(locked.reason, expected);
    details
}

fn counters(w: &WorkflowExecution) -> (Option<i32>, bool) {
    let s = w.status.as_ref().expect("status");
    (s.consecutive_failures, s.next_allowed_execution.is_some())
}

/// Waits until the target's `nextAllowedExecution` (written on `w`) has passed.
/// Waits until of `x` and `y` one is Running and the other Skipped: (the runner, the skipped).
async fn one_runs_one_skipped(e: &Env, x: &str, y: &str) -> (WorkflowExecution, WorkflowExecution) {
    let wfes = e.wfes.clone();
    eventually(
        &format!("{x} and {y} to settle"),
        Duration::from_secs(30),
        || {
            let (wfes, x, y) = (wfes.clone(), x.to_owned(), y.to_owned());
            async move {
                let phase = |w: &WorkflowExecution| w.status.as_ref().map(|s| s.phase);
                let (wx, wy) = (wfes.get(&x).await.ok()?, wfes.get(&y).await.ok()?);
                match (phase(&wx), phase(&wy)) {
                    (Some(Phase::Running), Some(Phase::Skipped)) => Some((wx, wy)),
                    (Some(Phase::Skipped), Some(Phase::Running)) => Some((wy, wx)),
                    _ => None,
                }
            }
        },
    )
    .await
}

async fn wait_backoff(w: &WorkflowExecution) {
    let until = w
        .status
        .as_ref()
        .and_then(|s| s.next_allowed_execution.as_ref())
        .expect("a backoff")
        .0;
    while jiff::Timestamp::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_failure_blocks_the_target_past_the_cooldown_until_an_operator_clears_it() {
    let e = env("safe-block").await;
    let hook = LocalWebhook::start().await.expect("webhook starts");
    hook.register(&e.client, &e.ns).await.expect("registered");
    // The clearance's audit event goes to a receiver that checks it against DataStorage's document.
    let receiver = Receiver::start().await.expect("receiver");
    let rules = Rules {
        cooldown: Duration::from_secs(2),
        ..Rules::default()
    };
    let _controller = ControllerReplica::start_with_audit(
        e.client.clone(),
        with_rules(&e, "replica-a", rules),
        audit_to(&receiver.url()),
    );
    let _tekton = e.tekton(100);
    let target = "shop/deployment/cart";
    e.create("broke", target, Some("oom")).await;
    let broke = e.wait_phase("broke", Phase::Failed).await;
    let details = broke
        .status
        .as_ref()
        .unwrap()
        .failure_details
        .clone()
        .unwrap();
    assert!(details.was_execution_failure);
    // The cooldown passes and the lock is released: the target is still blocked.
    e.wait_run_deleted(target).await;
    e.create("after", target, None).await;
    let after = e.wait_phase("after", Phase::Skipped).await;
    let skip = skip_of(&after);
    assert_eq!(skip.reason, SkipReason::PreviousExecutionFailed);
    let recent = skip.recent_remediation.clone().unwrap();
    assert_eq!(
        (recent.name.as_str(), recent.outcome),
        ("broke", Phase::Failed)
    );
    assert!(
        skip.message.contains(&format!(
            "kubectl annotate wfe -n {} broke {CLEAR_EXECUTION_BLOCK}=",
            e.ns
        )),
        "{}",
        skip.message
    );
    assert_eq!(e.run_count().await, 0, "nothing ran");

    // A reason too short is rejected by the webhook, naming the rule.
    let short = kubectl(&[
        "annotate",
        "wfe",
        "broke",
        "-n",
        &e.ns,
        &format!("{CLEAR_EXECUTION_BLOCK}=looks fine"),
    ])
    .await;
    assert!(!short.success);
    assert!(
        short.text().contains("at least 10 words (2 given)"),
        "{}",
        short.text()
    );
    // A clearance with a forged stamp: the webhook overwrites it with the authenticated user.
    let reason = "raised the cart memory limit to 1Gi and verified the deployment is healthy again";
    let cleared = kubectl(&[
        "annotate",
        "wfe",
        "broke",
        "-n",
        &e.ns,
        "--as=alice@example.com",
        "--as-group=system:masters",
        &format!("{CLEAR_EXECUTION_BLOCK}={reason}"),
        &format!("{CLEAR_EXECUTION_BLOCK_BY}=mallory"),
        &format!("{CLEAR_EXECUTION_BLOCK_AT}=2020-01-01T00:00:00Z"),
    ])
    .await;
    assert!(cleared.success, "{}", cleared.text());
    let stored = e.wfes.get("broke").await.unwrap();
    let annotations = stored.annotations();
    assert_eq!(annotations[CLEAR_EXECUTION_BLOCK_BY], "alice@example.com");
    let at: jiff::Timestamp = annotations[CLEAR_EXECUTION_BLOCK_AT].parse().unwrap();
    assert!(jiff::Timestamp::now().duration_since(at) < jiff::SignedDuration::from_secs(60));
    // Editing only the stamp later is undone.
    let edit = kubectl(&[
        "annotate",
        "wfe",
        "broke",
        "-n",
        &e.ns,
        "--overwrite",
        &format!("{CLEAR_EXECUTION_BLOCK_BY}=mallory"),
    ])
    .await;
    assert!(edit.success, "{}", edit.text());
    let stored = e.wfes.get("broke").await.unwrap();
    assert_eq!(
        stored.annotations()[CLEAR_EXECUTION_BLOCK_BY],
        "alice@example.com"
    );

    // The controller records it in the status, and the next execution runs.
    let wfes = e.wfes.clone();
    let clearance = eventually(
        "the clearance in the status",
        Duration::from_secs(15),
        || {
            let wfes = wfes.clone();
            async move {
                let w = wfes.get("broke").await.ok()?;
                w.status?.block_clearance
            }
        },
    )
    .await;
    assert_eq!(clearance.cleared_by, "alice@example.com");
    assert_eq!(clearance.clear_reason, reason);
    assert_eq!(clearance.clear_method, ClearMethod::Annotation);
    assert_eq!(clearance.cleared_at.0, at);
    assert_eq!(e.settled_event_count("broke", "BlockCleared").await, 1);
    // The audit trail names the operator as the actor, once.
    let cleared_events = eventually(
        "the block.cleared audit event",
        Duration::from_secs(15),
        || {
            let events = receiver.events();
            async move {
                let found: Vec<_> = events
                    .into_iter()
                    .filter(|v| {
                        v["resource_id"] == "broke"
                            && v["event_type"] == "workflowexecution.block.cleared"
                    })
                    .collect();
                (!found.is_empty()).then_some(found)
            }
        },
    )
    .await;
    assert_eq!(cleared_events.len(), 1, "{cleared_events:?}");
    let event = &cleared_events[0];
    assert_eq!(
        (&event["actor_type"], &event["actor_id"]),
        (&json!("user"), &json!("alice@example.com"))
    );
    assert_eq!(event["event_data"]["clear_reason"], reason);
    assert_eq!(event["event_data"]["workflow_name"], "broke");
    e.create("next", target, None).await;
    e.wait_phase("next", Phase::Completed).await;
    // A recorded clearance cannot be changed.
    let again = kubectl(&[
        "annotate",
        "wfe",
        "broke",
        "-n",
        &e.ns,
        "--overwrite",
        &format!("{CLEAR_EXECUTION_BLOCK}=a different reason that is also long enough to pass the word count"),
    ])
    .await;
    assert!(!again.success);
    assert!(
        again
            .text()
            .contains("already cleared by alice@example.com"),
        "{}",
        again.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_before_execution_back_off_then_exhaust_retries_carried_across_executions() {
    let e = env("safe-backoff").await;
    let controller = controller(
        &e,
        Rules {
            cooldown: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3),
            backoff_max_exponent: 4,
            max_consecutive_failures: 3,
        },
    );
    let _tekton = e.tekton(50);
    let target = "shop/deployment/images";
    let mut last = None;
    for n in 1..=3 {
        let name = format!("pull-{n}");
        if let Some(prev) = &last {
            // Inside the window: Skipped, with how long remains, the count carried.
            let early = format!("early-{n}");
            e.create(&early, target, Some("imagepull")).await;
            let w = e.wait_phase(&early, Phase::Skipped).await;
            let skip = skip_of(&w);
            assert_eq!(skip.reason, SkipReason::RecentlyRemediated);
            assert!(skip.message.contains("backing off"), "{}", skip.message);
            let recent = skip.recent_remediation.unwrap();
            assert_eq!(recent.name, format!("pull-{}", n - 1));
            assert!(recent.cooldown_remaining.is_some());
            assert_eq!(counters(&w), (Some(n - 1), true));
            wait_backoff(prev).await;
        }
        e.create(&name, target, Some("imagepull")).await;
        let w = e.wait_phase(&name, Phase::Failed).await;
        let d = w.status.as_ref().unwrap().failure_details.clone().unwrap();
        assert!(!d.was_execution_failure, "{d:?}");
        assert_eq!(counters(&w), (Some(n), true), "{name}");
        last = Some(w);
    }
    wait_backoff(last.as_ref().unwrap()).await;
    e.create("fourth", target, None).await;
    let w = e.wait_phase("fourth", Phase::Skipped).await;
    let skip = skip_of(&w);
    assert_eq!(skip.reason, SkipReason::ExhaustedRetries);
    assert!(
        skip.message
            .contains("has had 3 consecutive failures before execution (maximum 3)"),
        "{}",
        skip.message
    );
    assert_eq!(
        controller.counter("skips", "RecentlyRemediated"),
        2,
        "one per early execution"
    );
    assert_eq!(controller.counter("skips", "ExhaustedRetries"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_count() {
    let e = env("safe-reset").await;
    let _controller = controller(
        &e,
        Rules {
            cooldown: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1),
            ..Rules::default()
        },
    );
    let _tekton = e.tekton(50);
    let target = "shop/deployment/reset";
    e.create("pull", target, Some("imagepull")).await;
    let failed = e.wait_phase("pull", Phase::Failed).await;
    assert_eq!(counters(&failed), (Some(1), true));
    wait_backoff(&failed).await;
    e.create("ok", target, None).await;
    let ok = e.wait_phase("ok", Phase::Completed).await;
    assert_eq!(counters(&ok), (Some(0), false), "success resets");
    // Past the cooldown of the same workflow, the next failure counts from zero again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    e.create("pull-again", target, Some("imagepull")).await;
    let again = e.wait_phase("pull-again", Phase::Failed).await;
    assert_eq!(counters(&again), (Some(1), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_workflow_waits_out_the_cooldown_and_a_different_one_takes_the_target_at_once() {
    let e = env("safe-cooldown").await;
    let _controller = controller(
        &e,
        Rules {
            cooldown: Duration::from_secs(60),
            ..Rules::default()
        },
    );
    let _tekton = e.tekton(50);
    let target = "shop/deployment/web";
    e.create("first", target, None).await;
    e.wait_phase("first", Phase::Completed).await;
    // The finished run still holds the lock for the 60 s cooldown.
    let run = e.runs.get(&pipeline_run_name(target)).await.unwrap();
    assert_eq!(run.labels()["kubernaut.ai/workflow-execution"], "first");

    e.create("same", target, None).await;
    let same = e.wait_phase("same", Phase::Skipped).await;
    let skip = skip_of(&same);
    assert_eq!(skip.reason, SkipReason::RecentlyRemediated);
    let recent = skip.recent_remediation.unwrap();
    assert_eq!(
        (recent.name.as_str(), recent.outcome),
        ("first", Phase::Completed)
    );
    let remaining = recent.cooldown_remaining.unwrap();
    assert!(remaining.ends_with('s') && remaining != "0s", "{remaining}");

    e.create_from(
        "other",
        spec("other", target, None).workflow("scale-web", "2.0.0"),
    )
    .await;
    e.wait_phase("other", Phase::Completed).await;
    let run = e.runs.get(&pipeline_run_name(target)).await.unwrap();
    assert_eq!(run.labels()["kubernaut.ai/workflow-execution"], "other");
    assert_eq!(e.run_count().await, 1, "never two runs for one target");
    assert_eq!(e.settled_event_count("first", "LockReleased").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executions_racing_for_one_target_across_two_replicas_one_runs_the_other_is_busy() {
    let e = env("safe-race").await;
    let rules = Rules::default();
    let _a = ControllerReplica::start(e.client.clone(), with_rules(&e, "replica-a", rules));
    let _b = ControllerReplica::start(e.client.clone(), with_rules(&e, "replica-b", rules));
    for i in 0..4 {
        let target = format!("shop/deployment/race-{i}");
        let (x, y) = (format!("x-{i}"), format!("y-{i}"));
        tokio::join!(
            e.create(&x, &target, Some("hang")),
            e.create(&y, &target, Some("hang"))
        );
    }
    for i in 0..4 {
        let (x, y) = (format!("x-{i}"), format!("y-{i}"));
        let (runner, skipped) = one_runs_one_skipped(&e, &x, &y).await;
        let skip = skip_of(&skipped);
        assert_eq!(skip.reason, SkipReason::ResourceBusy);
        assert_eq!(skip.conflicting_workflow.unwrap().name, runner.name_any());
    }
    assert_eq!(e.run_count().await, 4, "one run per target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_workflows_racing_for_a_finished_target_one_takes_it_the_other_is_busy() {
    let e = env("safe-race-done").await;
    let rules = Rules {
        cooldown: Duration::from_secs(60),
        ..Rules::default()
    };
    let _a = ControllerReplica::start(e.client.clone(), with_rules(&e, "replica-a", rules));
    let _b = ControllerReplica::start(e.client.clone(), with_rules(&e, "replica-b", rules));
    let _tekton = e.tekton(50);
    let targets: Vec<String> = (0..3)
        .map(|i| format!("shop/deployment/done-{i}"))
        .collect();
    for (i, target) in targets.iter().enumerate() {
        e.create(&format!("done-{i}"), target, None).await;
    }
    for i in 0..3 {
        e.wait_phase(&format!("done-{i}"), Phase::Completed).await;
    }
    // Each finished run still holds its target's lock; two other workflows arrive at once. Both
    // may take the target (rule 6), so both try to release the finished run and create their own.
    for (i, target) in targets.iter().enumerate() {
        let (x, y) = (format!("x-{i}"), format!("y-{i}"));
        tokio::join!(
            e.create_from(
                &x,
                spec(&x, target, Some("hang")).workflow("scale-web", "2.0.0")
            ),
            e.create_from(
                &y,
                spec(&y, target, Some("hang")).workflow("drain-node", "1.0.0")
            )
        );
    }
    for (i, target) in targets.iter().enumerate() {
        let (x, y) = (format!("x-{i}"), format!("y-{i}"));
        let (runner, skipped) = one_runs_one_skipped(&e, &x, &y).await;
        let skip = skip_of(&skipped);
        assert_eq!(skip.reason, SkipReason::ResourceBusy, "{}", skip.message);
        assert_eq!(skip.conflicting_workflow.unwrap().name, runner.name_any());
        let run = e.runs.get(&pipeline_run_name(target)).await.unwrap();
        assert_eq!(
            run.labels()["kubernaut.ai/workflow-execution"],
            runner.name_any()
        );
        assert_eq!(
            e.settled_event_count(&format!("done-{i}"), "LockReleased")
                .await,
            1,
            "the finished run was released once"
        );
    }
    assert_eq!(e.run_count().await, 3, "one run per target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_why_and_until_when_an_execution_was_skipped() {
    let e = env("safe-kubectl").await;
    let _controller = controller(
        &e,
        Rules {
            cooldown: Duration::from_secs(600),
            max_consecutive_failures: 1,
            ..Rules::default()
        },
    );
    let _tekton = e.tekton(50);
    // One execution Skipped for each reason, on four targets.
    e.create("holder", "shop/deployment/busy", Some("hang"))
        .await;
    e.wait_phase("holder", Phase::Running).await;
    e.create("busy", "shop/deployment/busy", None).await;
    e.create("done", "shop/deployment/api", None).await;
    e.wait_phase("done", Phase::Completed).await;
    e.create("again", "shop/deployment/api", None).await;
    e.create("oom", "shop/deployment/cart", Some("oom")).await;
    e.wait_phase("oom", Phase::Failed).await;
    e.create("after-oom", "shop/deployment/cart", None).await;
    e.create("pull", "shop/deployment/images", Some("imagepull"))
        .await;
    e.wait_phase("pull", Phase::Failed).await;
    e.create("after-pull", "shop/deployment/images", None).await;
    let skipped = [
        ("busy", "ResourceBusy", "Conflicting Workflow:"),
        ("again", "RecentlyRemediated", "Cooldown Remaining:"),
        (
            "after-oom",
            "PreviousExecutionFailed",
            "kubernaut.ai/clear-execution-block=",
        ),
        ("after-pull", "ExhaustedRetries", "Recent Remediation:"),
    ];
    for (name, _, _) in skipped {
        e.wait_phase(name, Phase::Skipped).await;
    }
    let get = kubectl(&["get", "wfe", "-n", &e.ns]).await;
    assert!(get.success, "{}", get.text());
    println!("$ kubectl get wfe\n{}", get.stdout);
    for (name, reason, needle) in skipped {
        let line = get
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .expect("a row");
        assert!(
            line.contains("Skipped") && line.contains(reason),
            "{}",
            get.stdout
        );
        let describe = kubectl(&["describe", "wfe", name, "-n", &e.ns]).await;
        assert!(describe.success, "{}", describe.text());
        assert!(
            describe.stdout.lines().any(|l| {
                let l = l.trim();
                l.starts_with("Reason:") && l.ends_with(reason)
            }),
            "{name}: {reason}:\n{}",
            describe.stdout
        );
        for needle in ["Skip Details:", "Skipped At:", "ResourceLocked", needle] {
            assert!(
                describe.stdout.contains(needle),
                "{name}: {needle}:\n{}",
                describe.stdout
            );
        }
        println!("$ kubectl describe wfe {name}\n{}", describe.stdout);
    }
}

async fn kubectl(args: &[&str]) -> wfe_tools::KubectlOutput {
    shared().kubectl_run(args, None).await
}
