//! Outages of the control plane itself (issue 12's fault matrix): kube-apiserver, then etcd, killed
//! (SIGKILL) while 24 executions are in flight and started again a few seconds later with the same
//! data. Two controller replicas must ride it out: reconnect, re-watch, re-elect, and converge to
//! the same invariants as every other fault (`wfe_tools::faults::assert_invariants`). This binary
//! has its own control plane, and its tests take turns: each outage is the only one.

use std::time::{Duration, Instant};

use wfe_harness::{Component, on_lasting_thread};
use wfe_tools::faults::{EventCheck, RunLedger, assert_invariants, converge, create, workload};
use wfe_tools::{env::env, shared};

/// How long the process stays down.
const DOWN: Duration = Duration::from_secs(4);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn outage(component: Component, prefix: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let e = env(prefix).await;
    let (ledger, ledger_task) = RunLedger::watch(&e);
    let _a = e.controller("replica-a");
    let _b = e.controller("replica-b");
    let _tekton = e.tekton(1500);
    let plan = workload(16, 4);
    create(&e, &plan).await;
    // Mid-run: PipelineRuns created, none finished yet.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let in_flight = e
        .wfes
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|w| !w.status.as_ref().is_some_and(|s| s.phase.is_terminal()))
        .count();
    assert!(in_flight > 0, "nothing was in flight when the outage began");
    let cp = shared();
    cp.stop(component);
    let stopped = Instant::now();
    tokio::time::sleep(DOWN).await;
    tokio::task::spawn_blocking(move || {
        on_lasting_thread("control-plane-restart", move || cp.start_again(component))
    })
    .await
    .expect("the restart thread")
    .unwrap_or_else(|e| panic!("{component:?} did not come back: {e}"));
    let back = stopped.elapsed();
    converge(&e, &plan, Duration::from_secs(120)).await;
    let converged = stopped.elapsed();
    assert_invariants(&e, &plan, &ledger, EventCheck::NoRepeats).await;
    eprintln!(
        "{component:?} killed for {DOWN:?} with {in_flight} executions in flight (serving again {back:?} after the kill): all {} converged {converged:?} after the kill",
        plan.len()
    );
    ledger_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_killed_and_started_again_mid_run() {
    outage(Component::ApiServer, "out-apiserver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_started_again_mid_run() {
    outage(Component::Etcd, "out-etcd").await;
}
