//! The fault matrix's workload and its invariants (issue 12): many executions on distinct and shared
//! targets, run by controllers talking to the API server through a [`FaultProxy`], and the checks
//! that must hold once they have converged — whatever the faults were.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use wfe_harness::fault_proxy::FaultProxy;
use wfe_shared::api::{FailureReason, Phase};
use wfe_shared::tekton::PipelineRun;

use crate::controller::{ControllerReplica, settings};
use crate::env::Env;

/// One execution of the workload and what it must end as.
#[derive(Clone, Debug)]
pub struct Planned {
    pub name: String,
    pub target: String,
    pub outcome: Option<&'static str>,
    /// The other execution on the same target, if any: exactly one of the two runs.
    pub shares_with: Option<String>,
}

/// `distinct` executions on targets of their own (every fifth fails: OOMKilled, exit 1 alternately)
/// and `shared` pairs of executions created back to back on one target.
pub fn workload(distinct: usize, shared: usize) -> Vec<Planned> {
    let mut plan = Vec::new();
    for i in 0..distinct {
        let outcome = match i % 10 {
            4 => Some("oom"),
            9 => Some("fail"),
            _ => None,
        };
        plan.push(Planned {
            name: format!("wfe-d{i}"),
            target: format!("ns1/deployment/d-{i}"),
            outcome,
            shares_with: None,
        });
    }
    for i in 0..shared {
        let (a, b) = (format!("wfe-s{i}a"), format!("wfe-s{i}b"));
        for (name, other) in [(&a, &b), (&b, &a)] {
            plan.push(Planned {
                name: name.clone(),
                target: format!("ns1/statefulset/s-{i}"),
                outcome: None,
                shares_with: Some(other.clone()),
            });
        }
    }
    plan
}

/// Every PipelineRun UID ever seen, by name — from a watch of our own, not through the proxy.
#[derive(Clone, Default)]
pub struct RunLedger(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl RunLedger {
    /// Watches the execution namespace's PipelineRuns until the returned task is aborted.
    pub fn watch(e: &Env) -> (Self, tokio::task::JoinHandle<()>) {
        let ledger = Self::default();
        let runs: Api<PipelineRun> = Api::namespaced(e.client.clone(), &e.exec_ns);
        let seen = ledger.clone();
        let task = tokio::spawn(async move {
            let mut events =
                std::pin::pin!(watcher(runs, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let objects = match event {
                    Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => vec![run],
                    _ => continue,
                };
                for run in objects {
                    if let (Some(name), Some(uid)) = (run.metadata.name, run.metadata.uid) {
                        seen.record(name, uid);
                    }
                }
            }
        });
        (ledger, task)
    }

    fn record(&self, name: String, uid: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name).or_default().insert(uid);
    }

    pub fn uids(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Two controller replicas whose every request goes through `proxy`.
pub fn replicas_through(proxy: &FaultProxy, e: &Env) -> Vec<ControllerReplica> {
    ["replica-a", "replica-b"]
        .iter()
        .map(|id| {
            let client = proxy.client().expect("a client through the proxy");
            ControllerReplica::start(client, settings(&e.ns, &e.exec_ns, id))
        })
        .collect()
}

/// Creates the workload (directly, not through the proxy).
pub async fn create(e: &Env, plan: &[Planned]) {
    for p in plan {
        e.create(&p.name, &p.target, p.outcome).await;
    }
}

/// Waits until every execution is in a terminal phase (or `within` passes: a stuck execution
/// fails the test naming it); returns how long convergence took.
pub async fn converge(e: &Env, plan: &[Planned], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let list = e.wfes.list(&Default::default()).await;
        let stuck: Vec<String> = match &list {
            Ok(list) => plan
                .iter()
                .filter(|p| {
                    !list.items.iter().any(|w| {
                        w.metadata.name.as_deref() == Some(&p.name)
                            && w.status.as_ref().is_some_and(|s| s.phase.is_terminal())
                    })
                })
                .map(|p| p.name.clone())
                .collect(),
            Err(_) => vec!["(list failed)".into()],
        };
        if stuck.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not terminal after {within:?}: {stuck:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How strictly the Events are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventCheck {
    /// Exactly one per transition.
    Exact,
    /// None repeated; those of transitions in flight may be missing (a quarter at most) — a
    /// controller killed between a write and its Events (Events are best-effort across a crash;
    /// the audit trail is the loss-free record).
    NoRepeats,
}

/// A hook that holds a reconcile forever the `nth` time it reaches `point`, and tells: the test
/// then kills the replica there.
pub fn hold_at(
    point: wfe_controller::hooks::Point,
    nth: usize,
) -> (wfe_controller::hooks::Hook, Arc<tokio::sync::Notify>) {
    let reached = Arc::new(tokio::sync::Notify::new());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tell = reached.clone();
    let hook: wfe_controller::hooks::Hook = Arc::new(move |at| {
        let hold = at == point && hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth;
        let tell = tell.clone();
        Box::pin(async move {
            if hold {
                tell.notify_one();
                std::future::pending::<()>().await;
            }
        })
    });
    (hook, reached)
}

/// The invariants, after convergence:
/// - each execution ended as it must: Completed, or Failed with the reason its outcome gives and a
///   failed task, step and exit code; of two on one target exactly one ran and the other was
///   Skipped;
/// - each execution that ran has exactly one PipelineRun, created once (one UID ever), named for
///   its target; one that was skipped has none;
/// - each transition published exactly one Event (with [`EventCheck::NoRepeats`]: at most one);
/// - every lock is still held (the cooldown outlasts the test), by the execution that ran.
pub async fn assert_invariants(e: &Env, plan: &[Planned], ledger: &RunLedger, check: EventCheck) {
    let list = e.wfes.list(&Default::default()).await.expect("list");
    let by_name: BTreeMap<String, _> = list
        .items
        .into_iter()
        .filter_map(|w| Some((w.metadata.name.clone()?, w)))
        .collect();
    let phase = |name: &str| by_name[name].status.as_ref().map(|s| s.phase);
    let mut ran = BTreeSet::new();
    for p in plan {
        let wfe = &by_name[&p.name];
        let status = wfe.status.as_ref().expect("a status");
        match (&p.shares_with, p.outcome) {
            (Some(other), _) => {
                let pair = [phase(&p.name), phase(other)];
                let completed = pair
                    .iter()
                    .filter(|s| **s == Some(Phase::Completed))
                    .count();
                let skipped = pair.iter().filter(|s| **s == Some(Phase::Skipped)).count();
                assert!(
                    completed == 1 && skipped == 1,
                    "{} and {other} on one target: {pair:?}",
                    p.name
                );
            }
            (None, None) => assert_eq!(status.phase, Phase::Completed, "{}", p.name),
            (None, Some(outcome)) => {
                assert_eq!(status.phase, Phase::Failed, "{}: {status:?}", p.name);
                let details = status.failure_details.as_ref().expect("failureDetails");
                let expected = match outcome {
                    "oom" => FailureReason::OOMKilled,
                    _ => FailureReason::TaskFailed,
                };
                assert_eq!(details.reason, expected, "{}", p.name);
                assert!(
                    details.exit_code.is_some() && details.failed_step_name.is_some(),
                    "{}: {details:?}",
                    p.name
                );
            }
        }
        if status.phase != Phase::Skipped {
            ran.insert(p.name.clone());
        }
    }

    let runs = e
        .runs
        .list(&Default::default())
        .await
        .expect("list PipelineRuns");
    // The ledger's own watch may still be backing off after an outage: let it catch up with every
    // run that exists before it is asked how often each was created.
    let caught_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < caught_up
        && runs.items.iter().any(|r| {
            r.metadata
                .name
                .as_ref()
                .is_some_and(|n| !ledger.uids().contains_key(n))
        })
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uids = ledger.uids();
    for p in plan {
        let name = wfe_shared::api::names::pipeline_run_name(&p.target);
        if ran.contains(&p.name) {
            let seen = uids.get(&name).map(BTreeSet::len).unwrap_or(0);
            assert_eq!(
                seen, 1,
                "{}: PipelineRun {name} created {seen} times",
                p.name
            );
            let run = runs
                .items
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(&name))
                .unwrap_or_else(|| panic!("{}: its PipelineRun {name} is gone", p.name));
            let owner = run
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(wfe_shared::api::names::WORKFLOW_EXECUTION));
            assert_eq!(owner, Some(&p.name), "{name} is held by {owner:?}");
        }
    }
    assert_eq!(
        runs.items.len(),
        ran.len(),
        "one PipelineRun per execution that ran, no other"
    );

    // Events follow the status writes that caused them: let the last ones land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut missing, mut total) = (0, 0);
    for p in plan {
        let events = e.events(&p.name).await;
        let expected: &[&str] = match phase(&p.name) {
            Some(Phase::Completed) => &["PipelineRunCreated", "WorkflowCompleted"],
            Some(Phase::Failed) => &["PipelineRunCreated", "WorkflowFailed"],
            Some(Phase::Skipped) => &["Skipped"],
            other => panic!("{}: not terminal: {other:?}", p.name),
        };
        let expected: BTreeMap<String, i32> = expected.iter().map(|r| (r.to_string(), 1)).collect();
        let fine = match check {
            EventCheck::Exact => events == expected,
            EventCheck::NoRepeats => events
                .iter()
                .all(|(reason, n)| *n == 1 && expected.contains_key(reason)),
        };
        missing += expected.keys().filter(|r| !events.contains_key(*r)).count();
        total += expected.len();
        if !fine {
            let all: Vec<_> =
                futures::future::join_all(plan.iter().map(|p| e.events(&p.name))).await;
            eprintln!("all Events: {all:?}");
        }
        assert!(
            fine,
            "{}: the Events published: {events:?}, expected {expected:?} ({check:?})",
            p.name
        );
    }
    // A crash or an outage may cost the Events of the transitions in flight (up to the reconcile
    // concurrency of the replica killed) — never most of them.
    let allowed = match check {
        EventCheck::Exact => 0,
        EventCheck::NoRepeats => total / 4,
    };
    assert!(
        missing <= allowed,
        "{missing} Events missing (at most {allowed} may be, {check:?})"
    );
}
