//! The audit trail on the real API server, delivered to a DataStorage-compatible receiver that
//! validates every batch against DataStorage's published document: the full lifecycle, each event
//! once and in order; a receiver outage; the controller killed between delivery and the status
//! write and between the status write and delivery; a graceful stop during a delivery; a 409 on the status write; a 400; a 401
//! retried until the rotated token arrives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use wfe_controller::context::Settings;
use wfe_controller::hooks::{Hook, Point};
use wfe_shared::WorkflowExecution;
use wfe_shared::api::{ConditionReason, ConditionStatus, ConditionType, Phase};
use wfe_tools::audit::receiver::{Mode, Receiver};
use wfe_tools::controller::{ControllerReplica, audit_to, settings};
use wfe_tools::env::{Env, env};
use wfe_tools::eventually;

const SELECTION: &str = "workflowexecution.selection.completed";
const STARTED: &str = "workflowexecution.execution.started";
const COMPLETED: &str = "workflowexecution.workflow.completed";
const FAILED: &str = "workflowexecution.workflow.failed";
const SKIPPED: &str = "workflowexecution.workflow.skipped";

fn replica(e: &Env, identity: &str, r: &Receiver, hook: Option<Hook>) -> ControllerReplica {
    let s: Settings = settings(&e.ns, &e.exec_ns, identity);
    ControllerReplica::start_with(e.client.clone(), s, audit_to(&r.url()), hook)
}

fn audit_condition(w: &WorkflowExecution) -> Option<(ConditionStatus, ConditionReason, String)> {
    w.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::AuditRecorded)
        .map(|c| (c.status, c.reason, c.message.clone()))
}

/// Waits until `name`'s status says its events were delivered and owes none.
async fn wait_audited(e: &Env, name: &str) -> WorkflowExecution {
    let wfes = e.wfes.clone();
    eventually(
        &format!("{name}'s audit events delivered"),
        Duration::from_secs(60),
        || {
            let wfes = wfes.clone();
            async move {
                let w = wfes.get(name).await.ok()?;
                let s = w.status.as_ref()?;
                let delivered = matches!(
                    audit_condition(&w),
                    Some((ConditionStatus::True, ConditionReason::AuditSucceeded, _))
                );
                (delivered && s.audit_pending.is_empty() && s.phase.is_terminal()).then_some(w)
            }
        },
    )
    .await
}

/// The event types of `name`'s trail, once each after dropping repeats by identity, and how many
/// repeats there were.
fn deduplicated(r: &Receiver, name: &str) -> (Vec<String>, usize) {
    let trail = r.trail(name);
    let mut seen = BTreeMap::new();
    let mut types = Vec::new();
    for (t, key) in &trail {
        if seen.insert(key.clone(), t.clone()).is_none() {
            types.push(t.clone());
        }
    }
    let repeats = trail.len() - types.len();
    (types, repeats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_execution_leaves_exactly_its_events_in_order_with_the_right_fields() {
    let e = env("audit-life").await;
    let r = Receiver::start().await.expect("receiver");
    let c = replica(&e, "replica-a", &r, None);
    let _tekton = e.tekton(100);
    e.create("ok", "shop/deployment/ok", None).await;
    e.create("oom", "shop/deployment/oom", Some("oom")).await;
    e.create("busy", "shop/deployment/busy", Some("hang")).await;
    e.wait_phase("busy", Phase::Running).await;
    e.create("second", "shop/deployment/busy", None).await;
    for name in ["ok", "oom", "second"] {
        wait_audited(&e, name).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.trail("ok")
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>(),
        [SELECTION, STARTED, COMPLETED]
    );
    assert_eq!(
        r.trail("oom")
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>(),
        [SELECTION, STARTED, FAILED]
    );
    assert_eq!(
        r.trail("second")
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>(),
        [SELECTION, SKIPPED]
    );
    let busy = r.trail("busy");
    assert_eq!(
        busy.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        [SELECTION, STARTED]
    );

    let events = r.events();
    let of = |name: &str, t: &str| {
        events
            .iter()
            .find(|e| e["resource_id"] == name && e["event_type"] == t)
            .cloned()
            .unwrap()
    };
    let started = of("ok", STARTED);
    assert_eq!(started["correlation_id"], "rr-ok");
    assert_eq!(started["namespace"], e.ns);
    // Exactly the parameters the PipelineRun was given.
    let run = e
        .runs
        .get(&wfe_shared::api::names::pipeline_run_name(
            "shop/deployment/ok",
        ))
        .await
        .unwrap();
    let passed: BTreeMap<String, String> = run
        .spec
        .params
        .iter()
        .map(|p| match &p.value {
            wfe_shared::tekton::ParamValue::String(s) => (p.name.clone(), s.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(started["event_data"]["parameters"], json!(passed));
    assert_eq!(
        started["event_data"]["pipelinerun_name"],
        run.metadata.name.unwrap()
    );
    let failed = of("oom", FAILED);
    assert_eq!(failed["event_data"]["failure_reason"], "OOMKilled");
    assert_eq!(
        failed["event_data"]["error_details"]["retry_possible"],
        false
    );
    let skipped = of("second", SKIPPED);
    assert_eq!(skipped["event_data"]["skip_reason"], "ResourceBusy");
    // With a healthy receiver the audit costs no write: two per execution that ran (Running, then
    // Completed or Failed), one for the Running `busy` and one for the Skipped `second`.
    assert_eq!(c.counter("status_writes", "written"), 2 + 2 + 1 + 1);
    assert_eq!(c.counter("audit_events", "rejected"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_delays_the_events_without_losing_or_repeating_any() {
    let e = env("audit-outage").await;
    let mut r = Receiver::start().await.expect("receiver");
    let _c = replica(&e, "replica-a", &r, None);
    let _tekton = e.tekton(100);
    r.down().await;
    for i in 0..5 {
        e.create(&format!("w-{i}"), &format!("shop/deployment/o-{i}"), None)
            .await;
    }
    for i in 0..5 {
        e.wait_phase(&format!("w-{i}"), Phase::Completed).await;
    }
    // Undelivered, and the status says so.
    let wfes = e.wfes.clone();
    let w = eventually(
        "AuditRecorded False while undelivered",
        Duration::from_secs(20),
        || {
            let wfes = wfes.clone();
            async move {
                let w = wfes.get("w-0").await.ok()?;
                let pending = w.status.as_ref()?.audit_pending.len() == 3;
                matches!(
                    audit_condition(&w),
                    Some((ConditionStatus::False, ConditionReason::AuditPending, _))
                )
                .then_some(w)
                .filter(|_| pending)
            }
        },
    )
    .await;
    assert!(audit_condition(&w).unwrap().2.contains("not delivered yet"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.up().await.expect("listening again");
    for i in 0..5 {
        let name = format!("w-{i}");
        wait_audited(&e, &name).await;
        let (types, repeats) = deduplicated(&r, &name);
        assert_eq!(types, [SELECTION, STARTED, COMPLETED], "{name}");
        assert_eq!(repeats, 0, "{name}: nothing is sent twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_delivery_and_the_status_write_the_resend_is_the_same_event() {
    let e = env("audit-crash1").await;
    let r = Receiver::start().await.expect("receiver");
    let (hook, reached) = wfe_tools::faults::hold_at(Point::AfterDelivery, 1);
    let mut first = replica(&e, "replica-a", &r, Some(hook));
    let _tekton = e.tekton(100);
    e.create("crash", "shop/deployment/crash", None).await;
    tokio::time::timeout(Duration::from_secs(30), reached.notified())
        .await
        .expect("the first delivery");
    first.kill().await;
    let w = e.wfes.get("crash").await.unwrap();
    assert_eq!(
        w.status.unwrap().phase,
        Phase::Pending,
        "killed before the write"
    );
    let _second = replica(&e, "replica-b", &r, None);
    wait_audited(&e, "crash").await;
    let (types, repeats) = deduplicated(&r, "crash");
    assert_eq!(types, [SELECTION, STARTED, COMPLETED]);
    assert_eq!(
        repeats, 2,
        "selection and start were sent again, with the same identity"
    );
    assert_eq!(e.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_status_write_and_delivery_the_owed_events_are_sent_once() {
    let e = env("audit-crash2").await;
    let r = Receiver::start().await.expect("receiver");
    r.set(Mode::Fail(503));
    let mut first = replica(&e, "replica-a", &r, None);
    let _tekton = e.tekton(100);
    e.create("owed", "shop/deployment/owed", None).await;
    let wfes = e.wfes.clone();
    eventually(
        "the Completed write with its events owed",
        Duration::from_secs(30),
        || {
            let wfes = wfes.clone();
            async move {
                let w = wfes.get("owed").await.ok()?;
                let s = w.status?;
                (s.phase == Phase::Completed && s.audit_pending.len() == 3).then_some(())
            }
        },
    )
    .await;
    first.kill().await;
    assert!(r.events().is_empty());
    r.set(Mode::Accept);
    let _second = replica(&e, "replica-b", &r, None);
    wait_audited(&e, "owed").await;
    let (types, repeats) = deduplicated(&r, "owed");
    assert_eq!(types, [SELECTION, STARTED, COMPLETED]);
    assert_eq!(repeats, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_the_delivery_in_flight_finish_and_records_it() {
    let e = env("audit-drain").await;
    let r = Receiver::start().await.expect("receiver");
    r.set(Mode::Slow(Duration::from_secs(2)));
    let mut first = replica(&e, "replica-a", &r, None);
    let _tekton = e.tekton(100);
    e.create("drain", "shop/deployment/drain", None).await;
    let depth = first.metrics.audit_depth.clone();
    eventually("a delivery in flight", Duration::from_secs(30), || {
        let depth = depth.clone();
        async move { (depth.get() > 0).then_some(()) }
    })
    .await;
    // SIGTERM while the receiver is still answering: the reconcile runs to its end.
    let started = std::time::Instant::now();
    first.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let w = e.wfes.get("drain").await.unwrap();
    let status = w.status.as_ref().unwrap();
    assert_eq!(status.phase, Phase::Running, "the transition was written");
    assert!(
        status.audit_pending.is_empty(),
        "{:?}",
        status.audit_pending
    );
    assert_eq!(
        audit_condition(&w).map(|c| (c.0, c.1)),
        Some((ConditionStatus::True, ConditionReason::AuditSucceeded))
    );
    assert_eq!(
        deduplicated(&r, "drain"),
        (vec![SELECTION.to_owned(), STARTED.to_owned()], 0)
    );
    // The next replica finishes the execution and sends only what is new.
    r.set(Mode::Accept);
    let _second = replica(&e, "replica-b", &r, None);
    wait_audited(&e, "drain").await;
    e.wait_phase("drain", Phase::Completed).await;
    let (types, repeats) = deduplicated(&r, "drain");
    assert_eq!(types, [SELECTION, STARTED, COMPLETED]);
    assert_eq!(repeats, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_the_status_write_never_sends_twice() {
    let e = env("audit-409").await;
    let r = Receiver::start().await.expect("receiver");
    // After the first delivery, someone else changes the object: the status write gets a 409.
    let wfes = e.wfes.clone();
    let once = Arc::new(AtomicBool::new(false));
    let hook: Hook = Arc::new(move |at| {
        let (wfes, once) = (wfes.clone(), once.clone());
        Box::pin(async move {
            if at == Point::AfterDelivery && !once.swap(true, Ordering::SeqCst) {
                let patch = json!({"metadata": {"labels": {"touched": "yes"}}});
                wfes.patch("conflicted", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("label");
            }
        })
    });
    let c = replica(&e, "replica-a", &r, Some(hook));
    let _tekton = e.tekton(100);
    e.create("conflicted", "shop/deployment/c", None).await;
    wait_audited(&e, "conflicted").await;
    assert!(
        c.counter("status_writes", "conflict") >= 1,
        "a 409 happened"
    );
    let (types, repeats) = deduplicated(&r, "conflicted");
    assert_eq!(types, [SELECTION, STARTED, COMPLETED]);
    assert_eq!(repeats, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_recorded_not_retried_and_the_workflow_goes_on() {
    let e = env("audit-400").await;
    let r = Receiver::start().await.expect("receiver");
    r.set(Mode::Fail(400));
    let c = replica(&e, "replica-a", &r, None);
    let _tekton = e.tekton(100);
    e.create("refused", "shop/deployment/r", None).await;
    e.wait_phase("refused", Phase::Completed).await;
    let wfes = e.wfes.clone();
    let w = eventually("AuditFailed", Duration::from_secs(20), || {
        let wfes = wfes.clone();
        async move {
            let w = wfes.get("refused").await.ok()?;
            let failed = matches!(
                audit_condition(&w),
                Some((ConditionStatus::False, ConditionReason::AuditFailed, _))
            );
            (failed && w.status.as_ref()?.audit_pending.is_empty()).then_some(w)
        }
    })
    .await;
    let message = audit_condition(&w).unwrap().2;
    assert!(message.contains("400 Bad Request"), "{message}");
    assert!(
        message.contains("the test receiver was told to answer 400"),
        "{message}"
    );
    assert!(e.settled_event_count("refused", "AuditFailed").await >= 1);
    let requests = r.requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(r.requests(), requests, "not retried");
    assert!(c.counter("audit_events", "rejected") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_read_from_its_file_and_again_when_it_rotates() {
    let e = env("audit-token").await;
    let r = Receiver::start().await.expect("receiver");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    r.require_token(Some("first-token"));
    let mut config = audit_to(&r.url());
    config.token_file = Some(token.clone());
    let s = settings(&e.ns, &e.exec_ns, "replica-a");
    let _c = ControllerReplica::start_with(e.client.clone(), s, config, None);
    let _tekton = e.tekton(50);
    e.create("one", "shop/deployment/t1", None).await;
    wait_audited(&e, "one").await;
    // The receiver moves to a new token before the controller's file has it: 401, which is
    // retried (the workflow goes on, its events stay owed), not recorded as a final refusal.
    r.require_token(Some("second-token"));
    e.create("two", "shop/deployment/t2", None).await;
    let wfes = e.wfes.clone();
    let message = eventually("AuditPending after a 401", Duration::from_secs(30), || {
        let wfes = wfes.clone();
        async move {
            let w = wfes.get("two").await.ok()?;
            match audit_condition(&w)? {
                (ConditionStatus::False, ConditionReason::AuditPending, m) => Some(m),
                _ => None,
            }
        }
    })
    .await;
    assert!(message.contains("401"), "{message}");
    // The kubelet swaps a projected token in place: the owed events go out with it.
    let next = dir.path().join("token.next");
    std::fs::write(&next, "second-token").unwrap();
    std::fs::rename(&next, &token).unwrap();
    wait_audited(&e, "two").await;
    let (types, repeats) = deduplicated(&r, "two");
    assert_eq!(types, [SELECTION, STARTED, COMPLETED]);
    assert_eq!(repeats, 0);
}
