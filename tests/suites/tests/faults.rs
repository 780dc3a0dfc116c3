//! The fault matrix (issue 12): two controller replicas reach the real API server only through a
//! fault-injecting proxy (`wfe_harness::fault_proxy`), while 24 executions — 16 on targets of their
//! own (some failing), 4 pairs sharing a target — run on the Tekton stand-in. Whatever the fault,
//! once they converge: the right final phase and failure details, one PipelineRun per execution
//! that ran (created once), none for a skipped one, one Event per transition, no stuck execution
//! (`wfe_tools::faults::assert_invariants`). Convergence times are printed and recorded in
//! docs/reliability.md.

use std::time::{Duration, Instant};

use http::Method;
use wfe_controller::hooks::Point;
use wfe_harness::fault_proxy::{FaultProxy, Snapshot, WriteEffect, WriteFault};
use wfe_tools::controller::{ControllerReplica, audit_to_file, settings};
use wfe_tools::env::{Env, env};
use wfe_tools::faults::{
    EventCheck, Planned, RunLedger, assert_invariants, converge, create, hold_at, replicas_through,
    workload,
};

/// Generous for a busy 2-core CI machine; the printed times are what was measured.
const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

struct Matrix {
    e: Env,
    proxy: FaultProxy,
    plan: Vec<Planned>,
    ledger: RunLedger,
    ledger_task: tokio::task::JoinHandle<()>,
}

async fn matrix(prefix: &str, seed: u64) -> Matrix {
    let e = env(prefix).await;
    let proxy = FaultProxy::start(e.client.clone(), seed)
        .await
        .expect("the fault proxy starts");
    let (ledger, ledger_task) = RunLedger::watch(&e);
    Matrix {
        e,
        proxy,
        plan: workload(16, 4),
        ledger,
        ledger_task,
    }
}

impl Matrix {
    /// Runs the workload under the faults already set (`during`, when given, is called once the
    /// workload is created); checks the invariants; returns the convergence time and what the
    /// proxy did.
    async fn run(self, fault: &str) -> (Duration, Snapshot) {
        self.run_with(fault, |_| {}).await
    }

    async fn run_with(self, fault: &str, during: impl FnOnce(&FaultProxy)) -> (Duration, Snapshot) {
        let _replicas = replicas_through(&self.proxy, &self.e);
        let _tekton = self.e.tekton(300);
        let started = Instant::now();
        create(&self.e, &self.plan).await;
        during(&self.proxy);
        converge(&self.e, &self.plan, CONVERGE_WITHIN).await;
        let took = started.elapsed();
        let done = self.proxy.stats().snapshot();
        // Heal, then check: the invariants must hold with nothing pending.
        self.proxy.set(|f| *f = Default::default());
        assert_invariants(&self.e, &self.plan, &self.ledger, EventCheck::Exact).await;
        eprintln!(
            "{fault}: {} executions converged in {took:?}; proxy: {}",
            self.plan.len(),
            self.proxy.stats().summary()
        );
        self.ledger_task.abort();
        (took, done)
    }
}

fn status_writes(fraction: f64, effect: WriteEffect) -> WriteFault {
    WriteFault {
        path_contains: "/status".into(),
        method: None,
        fraction,
        effect,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_answered_409_and_503() {
    let m = matrix("flt-409", 0x409).await;
    m.proxy.set(|f| {
        f.writes = vec![
            status_writes(0.2, WriteEffect::Refuse(409)),
            // Of the rest, 10 % of all (0.1 / 0.8). kube-rs retries a 503 itself.
            status_writes(0.125, WriteEffect::Refuse(503)),
        ]
    });
    let (_, done) = m.run("20% of status writes 409, 10% 503").await;
    assert!(done.refused > 0, "nothing was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_happen_but_whose_answer_is_lost() {
    let m = matrix("flt-lost", 0x1057).await;
    m.proxy.set(|f| {
        f.writes = vec![
            WriteFault {
                path_contains: "/pipelineruns".into(),
                method: Some(Method::POST),
                fraction: 0.3,
                effect: WriteEffect::LoseAnswer(503),
            },
            // kube-rs retries a 503 itself (its retry meets the landed write: 409) and passes a
            // 500 on: both ways of learning nothing about a write that happened.
            status_writes(0.15, WriteEffect::LoseAnswer(503)),
            status_writes(0.18, WriteEffect::LoseAnswer(500)),
        ]
    });
    let (_, done) = m
        .run("30% of PipelineRun creates and status writes done but answered 503 or 500")
        .await;
    assert!(done.answers_lost > 0, "no answer was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_cut_every_few_seconds_and_re_watches_gone() {
    let m = matrix("flt-watch", 0x3a7c).await;
    m.proxy.set(|f| {
        // Often enough that a run converging in a second still sees its watches cut.
        f.cut_watches_after = Some(Duration::from_millis(500));
        f.expire_watches_fraction = 0.3;
    });
    let (_, done) = m
        .run("watches cut every 0.5 s, 30% of re-watches 410 Gone")
        .await;
    assert!(done.watches_cut > 0, "no watch was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cache_for_ten_seconds() {
    let m = matrix("flt-stale", 0x57a1e).await;
    // Once the workload is created (and its first reconciles are under way), the replicas' watches
    // deliver nothing for 10 s: their caches go stale while their writes still go through.
    let (took, _) = m
        .run_with("every watch paused for 10 s mid-run", |proxy| {
            proxy.set(|f| f.pause_watches_until = Some(Instant::now() + Duration::from_secs(10)))
        })
        .await;
    assert!(
        took >= Duration::from_secs(5),
        "the pause did not hold: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_and_answers_delayed() {
    let m = matrix("flt-reset", 0x7e5e7).await;
    m.proxy.set(|f| {
        f.reset_fraction = 0.05;
        f.delay = Some(Duration::from_millis(30));
    });
    let (_, done) = m.run("5% of requests reset, every answer 30 ms late").await;
    assert!(done.resets > 0, "no connection was reset");
}

/// The replica is killed (its reconciles aborted where they stand) the third time a reconcile
/// reaches `point`, and a new replica takes over. (In process, the lease manager notices its
/// channel closed and releases the Lease; a killed process cannot — see [`failover`].)
async fn killed_at(point: Point, prefix: &str, seed: u64) {
    let m = matrix(prefix, seed).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hook, reached) = hold_at(point, 3);
    let client = m.proxy.client().expect("client");
    let mut first = ControllerReplica::start_with(
        client.clone(),
        settings(&m.e.ns, &m.e.exec_ns, "replica-a"),
        audit_to_file(dir.path().join("a.jsonl")),
        Some(hook),
    );
    let _tekton = m.e.tekton(300);
    create(&m.e, &m.plan).await;
    tokio::time::timeout(Duration::from_secs(60), reached.notified())
        .await
        .unwrap_or_else(|_| panic!("no reconcile reached {point:?} three times"));
    first.kill().await;
    let killed = Instant::now();
    let _second = ControllerReplica::start(client, settings(&m.e.ns, &m.e.exec_ns, "replica-b"));
    converge(&m.e, &m.plan, CONVERGE_WITHIN).await;
    let took = killed.elapsed();
    assert_invariants(&m.e, &m.plan, &m.ledger, EventCheck::NoRepeats).await;
    eprintln!(
        "killed at {point:?}: the new replica converged all {} executions {took:?} after the kill",
        m.plan.len(),
    );
    m.ledger_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_a_pipeline_run_create() {
    killed_at(Point::AfterPipelineRunCreate, "flt-kill-pr", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_a_status_write() {
    killed_at(Point::AfterStatusWrite, "flt-kill-st", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_an_event() {
    killed_at(Point::AfterEvent, "flt-kill-ev", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_an_audit_delivery() {
    killed_at(Point::AfterDelivery, "flt-kill-au", 4).await;
}

/// A `wfe-controller` process (the workspace's debug build: `make test` builds it first) for the
/// test's namespaces, with the chart's default lease timings (15 s, renewed 5 s before expiry).
fn controller_process(e: &Env, identity: &str, dir: &std::path::Path) -> std::process::Child {
    controller_process_with(e, identity, dir, (15, 5), &[])
}

/// [`controller_process`] with other lease timings (duration, grace) and more environment.
fn controller_process_with(
    e: &Env,
    identity: &str,
    dir: &std::path::Path,
    (duration, grace): (u32, u32),
    env: &[(&str, &str)],
) -> std::process::Child {
    let bin = wfe_tools::repo_root().join("target/debug/wfe-controller");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo build -p wfe-controller` (make test does)",
        bin.display()
    );
    let log = std::fs::File::create(dir.join(format!("{identity}.log"))).expect("log file");
    let port = wfe_harness::free_port().expect("port");
    std::process::Command::new(bin)
        .env("KUBECONFIG", &wfe_tools::shared().kubeconfig)
        .envs(env.iter().copied())
        .args(["--watch-namespace", &e.ns])
        .args(["--execution-namespace", &e.exec_ns])
        .args(["--lease-namespace", &e.exec_ns])
        .args(["--lease-name", &format!("wfe-leader-{}", e.ns)])
        .args(["--identity", identity])
        .arg(format!("--lease-duration-seconds={duration}"))
        .arg(format!("--lease-grace-seconds={grace}"))
        .arg(format!("--health-addr=127.0.0.1:{port}"))
        .arg(format!(
            "--audit-file={}",
            dir.join(format!("{identity}.audit")).display()
        ))
        .arg("--log-level=info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("wfe-controller starts")
}

/// The leader process is stopped — with SIGTERM (it releases the Lease) or SIGKILL (the Lease is
/// left to expire) — and the time until the standby has completed a new execution is the failover.
async fn failover(graceful: bool, prefix: &str) -> Duration {
    let e = env(prefix).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _tekton = e.tekton(100);
    let mut a = controller_process(&e, "replica-a", dir.path());
    e.create("before", "ns1/deployment/before", None).await;
    e.wait_phase("before", wfe_shared::api::Phase::Completed)
        .await;
    let mut b = controller_process(&e, "replica-b", dir.path());
    // b stands by (it has seen the Lease held) before the leader goes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let signal = if graceful {
        libc::SIGTERM
    } else {
        libc::SIGKILL
    };
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(a.id() as i32, signal) };
    let _ = tokio::task::spawn_blocking(move || a.wait()).await;
    let gone = Instant::now();
    e.create("after", "ns1/deployment/after", None).await;
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        e.wait_phase("after", wfe_shared::api::Phase::Completed),
    )
    .await;
    let took = gone.elapsed();
    let _ = b.kill();
    let _ = b.wait();
    let log = |id: &str| {
        std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap_or_default()
    };
    assert!(
        done.is_ok(),
        "no replica completed an execution after the leader went;\nreplica-b:\n{}",
        log("replica-b")
    );
    eprintln!(
        "leader {}: the standby completed a new execution {took:?} later",
        if graceful {
            "stopped (SIGTERM)"
        } else {
            "killed (SIGKILL)"
        }
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_fails_over_within_3_s() {
    let took = failover(true, "flt-term").await;
    assert!(took <= Duration::from_secs(3), "failover took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_with_sigkill_fails_over_within_15_s() {
    let took = failover(false, "flt-hard").await;
    assert!(took <= Duration::from_secs(15), "failover took {took:?}");
}

/// A `wfe-controller` process aborted (SIGABRT: no cleanup, the Lease left held) the third time a
/// reconcile reaches `point` (`WFE_KILL_AT`, test builds only); a standby process takes over when
/// the Lease expires (3 s here).
async fn process_killed_at(point: &str, prefix: &str) {
    use std::os::unix::process::ExitStatusExt;
    let m = matrix(prefix, 7).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let short_lease = (3, 1);
    let kill_at = format!("{point}:3");
    let mut first = controller_process_with(
        &m.e,
        "replica-a",
        dir.path(),
        short_lease,
        &[("WFE_KILL_AT", &kill_at)],
    );
    // The first leads before the standby starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut standby = controller_process_with(&m.e, "replica-b", dir.path(), short_lease, &[]);
    let _tekton = m.e.tekton(300);
    create(&m.e, &m.plan).await;
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || first.wait()),
    )
    .await
    .unwrap_or_else(|_| panic!("the process never reached {point} three times"))
    .expect("wait task")
    .expect("wait");
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "aborted at {point}: {status:?}"
    );
    let killed = Instant::now();
    converge(&m.e, &m.plan, CONVERGE_WITHIN).await;
    let took = killed.elapsed();
    assert_invariants(&m.e, &m.plan, &m.ledger, EventCheck::NoRepeats).await;
    let _ = standby.kill();
    let _ = standby.wait();
    eprintln!(
        "process aborted at {point}: the standby converged all {} executions {took:?} after",
        m.plan.len()
    );
    m.ledger_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_aborted_after_a_pipeline_run_create() {
    process_killed_at("after-pipelinerun-create", "flt-pkill-pr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_aborted_after_a_status_write() {
    process_killed_at("after-status-write", "flt-pkill-st").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_aborted_after_an_event() {
    process_killed_at("after-event", "flt-pkill-ev").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_aborted_after_an_audit_delivery() {
    process_killed_at("after-delivery", "flt-pkill-au").await;
}
