//! Benchmark of the controller against the real API server (a benchmark, not a test).
//!
//! Runs the release `wfe-controller` binary as its own process (so its RSS is its own), with the
//! Tekton stand-in completing every PipelineRun at once. Creates N WorkflowExecutions on distinct
//! targets and reports: executions per second, time from the PipelineRun's success to the
//! WorkflowExecution reading Completed (p50/p99), API writes per execution as the API server counts
//! them (`apiserver_request_total`), 409s, writes during an idle period, and the controller's RSS with
//! everything cached.
//!
//! `cargo build --release -p wfe-controller -p wfe-tools && target/release/controller-bench --executions 1000`

mod ceiling;
mod soak;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use wfe_shared::fixtures::execution;
use wfe_shared::{Phase, WorkflowExecution, WorkflowExecutionStatus};
use wfe_tools::procfs::{cpu_seconds, rss_kib, rss_parts_kib};
use wfe_tools::tekton::TektonStandIn;

#[derive(Parser, Debug)]
#[command(about = "Benchmark of wfe-controller against a real kube-apiserver")]
struct Args {
    /// WorkflowExecutions to run.
    #[arg(long, default_value_t = 1000)]
    executions: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 16)]
    creators: usize,
    /// Create at this many per second (0: as fast as the creators go).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Controller reconcile concurrency (the controller's default).
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Idle period after the run in which writes are counted (must be zero for the controller).
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Cooldown the controller holds finished executions' locks for (Go duration).
    #[arg(long, default_value = "5m")]
    cooldown: String,
    /// Create all executions first, then start the controller and time how fast it drains them
    /// (from its start, including its initial list of everything).
    #[arg(long)]
    backlog: bool,
    /// Serve the admission webhook (in this process) and register it, as an installation does: it
    /// defaults every create, including the controller's finalizer.
    #[arg(long)]
    webhook: bool,
    /// Run a DataStorage-compatible audit receiver (in this process; it validates every batch
    /// against DataStorage's document) and point the controller at it. Without it the controller
    /// writes its audit events as JSON lines to its stdout (discarded here).
    #[arg(long)]
    receiver: bool,
    /// Soak instead: create at `--rate` (default 10/s here) for this many minutes, delete each
    /// execution `--soak-keep-seconds` after it completed, and sample the controller's memory,
    /// descriptors, threads and runtime tasks every 10 s.
    #[arg(long, default_value_t = 0)]
    soak_minutes: u64,
    #[arg(long, default_value_t = 30)]
    soak_keep_seconds: u64,
    /// After the run, issue the same API requests per execution from a minimal client (no
    /// controller), with the same creators and as many workers as the controller's concurrency,
    /// and report the controller's rate as a fraction of that ceiling.
    #[arg(long)]
    ceiling: bool,
    /// The controller binary (default: `wfe-controller` next to this binary).
    #[arg(long)]
    controller: Option<PathBuf>,
}

struct Controller(Child);

impl Drop for Controller {
    /// SIGTERM first, as Kubernetes stops a pod (the controller releases its lease and exits);
    /// SIGKILL only if it has not exited after 30 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Write requests by (verb, resource, subresource, code) from the API server's metrics.
async fn writes(
    client: &Client,
) -> anyhow::Result<BTreeMap<(String, String, String, String), f64>> {
    requests(client, &["POST", "PATCH", "PUT", "DELETE", "APPLY"]).await
}

/// Read requests (a watch counts when it ends), as `writes`.
async fn reads(client: &Client) -> anyhow::Result<BTreeMap<(String, String, String, String), f64>> {
    requests(client, &["GET", "LIST", "WATCH"]).await
}

/// Requests with one of `verbs`, as `writes`.
async fn requests(
    client: &Client,
    verbs: &[&str],
) -> anyhow::Result<BTreeMap<(String, String, String, String), f64>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |k: &str| {
            line.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        let verb = label("verb");
        if !verbs.contains(&verb.as_str()) {
            continue;
        }
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry((verb, label("resource"), label("subresource"), label("code")))
            .or_insert(0.0) += value;
    }
    Ok(out)
}

/// `verb resource[/subresource]: count` of a delta, on one line.
fn summary(d: &BTreeMap<(String, String, String, String), f64>) -> String {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for ((verb, resource, sub, _), v) in d {
        let key = match sub.as_str() {
            "" => format!("{verb} {resource}"),
            _ => format!("{verb} {resource}/{sub}"),
        };
        *by.entry(key).or_default() += v;
    }
    by.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn delta(
    before: &BTreeMap<(String, String, String, String), f64>,
    after: &BTreeMap<(String, String, String, String), f64>,
) -> BTreeMap<(String, String, String, String), f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// The API server's own CPU seconds so far (`process_cpu_seconds_total` of its metrics).
async fn apiserver_cpu(client: &Client) -> anyhow::Result<f64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total ")?.parse().ok())
        .context("the API server's metrics have no process_cpu_seconds_total")
}

/// One minimal-client run of `--ceiling`, in namespaces of its own.
struct CeilingRun {
    /// Read requests during it, for comparison with the controller's.
    reads: String,
    rate: f64,
    writes_per_execution: f64,
    api_cpu_per_execution: f64,
}

async fn ceiling_phase(
    client: &Client,
    cp: &wfe_harness::ControlPlane,
    args: &Args,
    template: &WorkflowExecution,
    bodies: &ceiling::Bodies,
    webhook: Option<&wfe_tools::webhook::LocalWebhook>,
    watches: bool,
) -> anyhow::Result<CeilingRun> {
    let namespace = cp.namespace(client, "bench-ceiling").await;
    let run_namespace = cp.namespace(client, "bench-ceiling-runs").await;
    if let Some(w) = webhook {
        w.register(client, &namespace).await?;
    }
    let before = writes(client).await?;
    let reads_before = reads(client).await?;
    let api_cpu_before = apiserver_cpu(client).await?;
    let took = ceiling::run(ceiling::Ceiling {
        client: client.clone(),
        namespace,
        run_namespace,
        template: template.clone(),
        bodies: bodies.clone(),
        executions: args.executions,
        creators: args.creators,
        workers: args.concurrency.into(),
        webhook_adds_finalizer: webhook.is_some(),
        watches,
    })
    .await?;
    let api_cpu = apiserver_cpu(client).await? - api_cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = args.executions as f64;
    let total: f64 = delta(&before, &writes(client).await?)
        .into_iter()
        .filter(|((_, r, _, _), _)| r != "leases")
        .map(|(_, v)| v)
        .sum();
    Ok(CeilingRun {
        reads: summary(&delta(&reads_before, &reads(client).await?)),
        rate: n / took.as_secs_f64(),
        writes_per_execution: total / n,
        api_cpu_per_execution: api_cpu / n,
    })
}

/// Runs one execution through the controller and returns what it wrote for it; its completion
/// is then forgotten, so the measured run counts only its own.
async fn warm_up(
    wfes: &Api<WorkflowExecution>,
    template: &WorkflowExecution,
    completed: &Mutex<HashMap<String, (Instant, String)>>,
    running: &Mutex<Option<(String, WorkflowExecutionStatus)>>,
    client: &Client,
    ns: &str,
) -> anyhow::Result<ceiling::Bodies> {
    let mut w = template.clone();
    w.metadata.name = Some("warm-up".into());
    w.spec.target_resource = "ns/deployment/warm-up".into();
    wfes.create(&PostParams::default(), &w).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !completed.lock().unwrap().contains_key("warm-up") {
        if Instant::now() > deadline {
            bail!("the warm-up execution did not complete in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    completed.lock().unwrap().remove("warm-up");
    let Some((name, status)) = running.lock().unwrap().clone() else {
        bail!("the watch saw the warm-up execution Completed but never Running");
    };
    // The Events land after the status write the watch saw.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ceiling::Bodies::of(client, ns, &name, status).await
}

/// Starts the release controller as its own process.
fn spawn_controller(
    binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &Args,
    ns: &str,
    exec_ns: &str,
    health: std::net::SocketAddr,
    audit_url: Option<&str>,
) -> anyhow::Result<Controller> {
    Ok(Controller(
        Command::new(binary)
            .env("KUBECONFIG", kubeconfig)
            .args(audit_url.map(|u| format!("--audit-url={u}")))
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("MALLOC_")))
            .args([
                format!("--execution-namespace={exec_ns}"),
                format!("--watch-namespace={ns}"),
                format!("--health-addr={health}"),
                format!("--concurrency={}", args.concurrency),
                format!("--cooldown={}", args.cooldown),
                "--identity=bench".into(),
                "--log-level=warn".into(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    ))
}

/// The controller's own metrics text.
async fn controller_metrics(health: std::net::SocketAddr) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(health) else {
            return String::new();
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        t
    })
    .await
    .unwrap_or_default()
}

/// Count, mean and the bucket bound holding the 99th percentile of one labelled series of a
/// Prometheus histogram in `text`.
fn histogram_summary(text: &str, name: &str, label: &str) -> Option<(f64, f64, String)> {
    let value = |line: &str| line.rsplit(' ').next()?.parse::<f64>().ok();
    let series = |suffix: &'static str| {
        let start = format!("{name}{suffix}{{");
        text.lines()
            .filter(move |l| l.starts_with(&start) && l.contains(label))
    };
    let count = series("_count").find_map(value)?;
    let sum = series("_sum").find_map(value)?;
    let p99 = series("_bucket")
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            Some((le, value(l)?))
        })
        .find(|(_, n)| *n >= 0.99 * count)
        .map(|(le, _)| le)
        .unwrap_or_default();
    Some((count, if count > 0.0 { sum / count } else { 0.0 }, p99))
}

/// Waits until the controller leads (its caches are then syncing or synced).
async fn wait_leader(health: std::net::SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let Ok(mut s) = std::net::TcpStream::connect(health) else {
                return false;
            };
            let _ = write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut t = String::new();
            let _ = s.read_to_string(&mut t);
            t.contains("wfe_controller_leader 1")
        })
        .await?;
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the controller did not become leader");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.controller.clone() {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("wfe-controller"),
    };
    // `shared()` starts it from a thread that lives as long as the process (see its docs).
    let cp = tokio::task::spawn_blocking(wfe_tools::shared).await?;
    let client = cp.client().await;
    let ns = cp.namespace(&client, "bench").await;
    let exec_ns = cp.namespace(&client, "bench-exec").await;
    let webhook = match args.webhook {
        true => {
            let w = wfe_tools::webhook::LocalWebhook::start().await?;
            w.register(&client, &ns).await?;
            Some(w)
        }
        false => None,
    };
    let receiver = match args.receiver {
        true => Some(wfe_tools::audit::receiver::Receiver::start().await?),
        false => None,
    };
    let audit_url = receiver.as_ref().map(|r| r.url());
    let health = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let tekton = TektonStandIn::start_instant(client.clone(), &exec_ns);
    let wfes: Api<WorkflowExecution> = Api::namespaced(client.clone(), &ns);

    // Completion times as the watch sees them.
    let completed: Arc<Mutex<HashMap<String, (Instant, String)>>> = Arc::default();
    // One execution's Running status as the controller wrote it (for `--ceiling`).
    let running: Arc<Mutex<Option<(String, WorkflowExecutionStatus)>>> = Arc::default();
    {
        let (completed, running, wfes) = (completed.clone(), running.clone(), wfes.clone());
        tokio::spawn(async move {
            let mut stream = watcher(wfes, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(w)) = stream.next().await {
                let s = w.status.as_ref();
                if let Some(s) = s.filter(|s| s.phase == Phase::Running) {
                    running
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| (w.name_any(), s.clone()));
                }
                if s.map(|s| s.phase) == Some(Phase::Completed) {
                    let run = s
                        .and_then(|s| s.pipeline_run_ref.as_ref())
                        .map(|r| r.name.clone())
                        .unwrap_or_default();
                    completed
                        .lock()
                        .unwrap()
                        .entry(w.name_any())
                        .or_insert((Instant::now(), run));
                }
            }
        });
    }
    // Normally the controller runs while the executions are created; with `--backlog` it starts
    // only once they all exist, so its drain rate is measured without the creates competing.
    let mut controller = None;
    if !args.backlog {
        let c = spawn_controller(
            &binary,
            &cp.kubeconfig,
            &args,
            &ns,
            &exec_ns,
            health,
            audit_url.as_deref(),
        )?;
        wait_leader(health).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        controller = Some(c);
    }

    let template: WorkflowExecution = execution("x")
        .remove("metadata.namespace")
        .remediation_request("rr")
        .target("ns/deployment/x")
        .param("REPLICAS", "3")
        .timeout("30m")
        .service_account("runner")
        .build();
    if args.ceiling && (args.backlog || args.soak_minutes > 0) {
        bail!(
            "--ceiling compares with a run that creates while the controller runs: drop --backlog and --soak-minutes"
        );
    }
    if args.soak_minutes > 0 {
        let Some(controller) = controller else {
            bail!("--soak-minutes runs the controller while it creates: drop --backlog");
        };
        let result = soak::run(soak::Soak {
            wfes,
            template,
            pid: controller.0.id(),
            health,
            rate: if args.rate > 0 { args.rate } else { 10 },
            minutes: args.soak_minutes,
            keep: Duration::from_secs(args.soak_keep_seconds),
            finished_at: tekton.finished_at.clone(),
        })
        .await;
        drop(tekton);
        drop(controller);
        return result;
    }
    // `--ceiling`: one execution through the controller shows the bodies it writes; then the
    // minimal client's first run, before the controller's (a second follows it).
    let mut ceilings = Vec::new();
    let mut bodies = None;
    if args.ceiling {
        let b = warm_up(&wfes, &template, &completed, &running, &client, &ns).await?;
        for watches in [false, true] {
            let phase = ceiling_phase(&client, cp, &args, &template, &b, webhook.as_ref(), watches);
            ceilings.push(phase.await?);
        }
        bodies = Some(b);
    }
    let before = writes(&client).await?;
    let reads_before = reads(&client).await?;
    let run_before = before.clone();
    let api_cpu_before = apiserver_cpu(&client).await?;
    let mut started = Instant::now();
    // The controller's CPU from here on (in backlog mode: from its start, initial list included).
    let cpu_before = controller
        .as_ref()
        .map(|c| cpu_seconds(c.0.id()))
        .unwrap_or(0.0);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..args.creators {
        let (wfes, template, next, n, rate) = (
            wfes.clone(),
            template.clone(),
            next.clone(),
            args.executions,
            args.rate,
        );
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                if rate > 0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut w = template.clone();
                w.metadata.name = Some(format!("wfe-{i}"));
                w.spec.target_resource = format!("ns/deployment/app-{i}");
                wfes.create(&PostParams::default(), &w).await?;
            }
        }));
    }
    for c in creators {
        c.await??;
    }
    let created_in = started.elapsed();
    let controller = match controller {
        Some(c) => c,
        None => {
            started = Instant::now();
            let c = spawn_controller(
                &binary,
                &cp.kubeconfig,
                &args,
                &ns,
                &exec_ns,
                health,
                audit_url.as_deref(),
            )?;
            wait_leader(health).await?;
            c
        }
    };
    let pid = controller.0.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    while completed.lock().unwrap().len() < args.executions {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} completed in time",
                completed.lock().unwrap().len(),
                args.executions
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let api_cpu = apiserver_cpu(&client).await? - api_cpu_before;
    // Let the last writes land in the metrics, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = writes(&client).await?;
    let run_reads = summary(&delta(&reads_before, &reads(&client).await?));
    let (rss, hwm) = rss_kib(pid);
    let own_metrics = controller_metrics(health).await;
    let (anon, file) = rss_parts_kib(pid);

    // Idle: nothing changes, so the controller must write nothing (leases aside).
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_after = writes(&client).await?;

    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    {
        let finished = tekton.finished_at.lock().unwrap();
        for (at, run) in completed.lock().unwrap().values() {
            if let Some(f) = finished.get(run) {
                let us = at.saturating_duration_since(*f).as_micros().max(1) as u64;
                latency.record(us)?;
            }
        }
    }
    let n = args.executions as f64;
    println!(
        "controller: {} (concurrency {}), admission webhook: {}, audit receiver: {}, backlog: {}, {} executions, {} creators, rate {}\n",
        binary.display(),
        args.concurrency,
        if webhook.is_some() { "yes" } else { "no" },
        if receiver.is_some() {
            "yes"
        } else {
            "no (JSON lines)"
        },
        if args.backlog {
            "yes (times the drain from the controller's start)"
        } else {
            "no"
        },
        args.executions,
        args.creators,
        if args.rate > 0 {
            format!("{}/s", args.rate)
        } else {
            "unpaced".into()
        }
    );
    println!(
        "| executions | created in | all Completed after | executions/s | PipelineRun success → Completed p50 | p99 | max | controller RSS (now / peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1}s | {:.1}s | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} / {:.1} MiB |\n",
        args.executions,
        created_in.as_secs_f64(),
        total.as_secs_f64(),
        n / total.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "controller RSS now: {:.1} MiB private (heap, stacks), {:.1} MiB mapped files (its binary)\n",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    for urgency in ["under_way", "new"] {
        if let Some((count, mean, p99)) = histogram_summary(
            &own_metrics,
            "wfe_controller_reconcile_wait_seconds",
            &format!("urgency=\"{urgency}\""),
        ) {
            println!(
                "reconciles waiting for a slot ({urgency}): {count} reconciles, mean {:.0} ms, p99 ≤ {p99} s",
                mean * 1000.0
            );
        }
    }
    println!();
    println!("API writes during the run, as counted by the API server (per execution):\n");
    println!("| verb | resource | subresource | code | total | per execution | who |");
    println!("|---|---|---|---|---|---|---|");
    let mut controller_writes = 0.0;
    for ((verb, resource, sub, code), v) in delta(&before, &after) {
        let who = match (verb.as_str(), resource.as_str(), sub.as_str()) {
            ("POST", "workflowexecutions", "") => "benchmark (creates)",
            (_, "taskruns", _) | (_, "pipelineruns", "status") => "Tekton stand-in",
            (_, "leases", _) => "leader election",
            _ => {
                controller_writes += v;
                "controller"
            }
        };
        println!(
            "| {verb} | {resource} | {sub} | {code} | {v} | {:.2} | {who} |",
            v / n
        );
    }
    println!(
        "\ncontroller writes per execution: {:.2}",
        controller_writes / n
    );
    println!(
        "controller CPU during the run: {cpu:.1}s ({:.0}% of one core; {:.2} ms per execution)",
        cpu / total.as_secs_f64() * 100.0,
        cpu * 1000.0 / n
    );
    println!(
        "kube-apiserver CPU during the run: {api_cpu:.1}s ({:.0}% of one core; {:.2} ms per execution)",
        api_cpu / total.as_secs_f64() * 100.0,
        api_cpu * 1000.0 / n
    );
    let idle: Vec<_> = delta(&after, &idle_after)
        .into_iter()
        .filter(|((_, r, _, _), _)| r != "leases")
        .collect();
    println!(
        "writes in {}s of idle (leases excluded): {:?}",
        args.idle_seconds, idle
    );
    if let Some(r) = &receiver {
        let events = r.events();
        let unique: std::collections::HashSet<&str> = events
            .iter()
            .filter_map(|e| e["event_data"]["idempotency_key"].as_str())
            .collect();
        println!(
            "audit: {} events accepted by the receiver in {} requests ({:.2} per execution), {} distinct identities, {} repeats",
            events.len(),
            r.requests(),
            events.len() as f64 / n,
            unique.len(),
            events.len() - unique.len()
        );
    }
    if let Some(bodies) = &bodies {
        // In the reverse order: the minimal client alone is then first and last.
        for watches in [true, false] {
            let phase = ceiling_phase(
                &client,
                cp,
                &args,
                &template,
                bodies,
                webhook.as_ref(),
                watches,
            );
            ceilings.push(phase.await?);
        }
        let run_writes: f64 = delta(&run_before, &after)
            .into_iter()
            .filter(|((_, r, _, _), _)| r != "leases")
            .map(|(_, v)| v)
            .sum();
        let rate = n / total.as_secs_f64();
        println!(
            "\nceiling: the same requests from a minimal client ({} creators + {} workers), alone and with a controller's and Tekton's watches, before and after the controller's run, same control plane:\n",
            args.creators, args.concurrency
        );
        println!(
            "| | executions/s | API writes per execution | kube-apiserver CPU per execution | read requests (a watch counts when it ends) |"
        );
        println!("|---|---|---|---|---|");
        let row = |label: &str, c: &CeilingRun| {
            println!(
                "| {label} | {:.1} | {:.2} | {:.2} ms | {} |",
                c.rate,
                c.writes_per_execution,
                c.api_cpu_per_execution * 1000.0,
                c.reads
            )
        };
        row("minimal client, before", &ceilings[0]);
        row("minimal client + watches, before", &ceilings[1]);
        println!(
            "| **controller** | {rate:.1} | {:.2} | {:.2} ms | {run_reads} |",
            run_writes / n,
            api_cpu * 1000.0 / n
        );
        row("minimal client + watches, after", &ceilings[2]);
        row("minimal client, after", &ceilings[3]);
        let mean = |a: &CeilingRun, b: &CeilingRun| {
            (
                (a.rate + b.rate) / 2.0,
                (a.api_cpu_per_execution + b.api_cpu_per_execution) / 2.0,
            )
        };
        let (alone, alone_cpu) = mean(&ceilings[0], &ceilings[3]);
        let (watched, watched_cpu) = mean(&ceilings[1], &ceilings[2]);
        println!(
            "\ncontroller / ceiling (mean of before and after): **{:.0}%** of the executions/s (API server CPU per execution {:.2}×); against the minimal client with the same watches: **{:.0}%** ({:.2}×)",
            rate / alone * 100.0,
            api_cpu / n / alone_cpu,
            rate / watched * 100.0,
            api_cpu / n / watched_cpu
        );
    }
    drop(tekton);
    drop(controller);
    Ok(())
}
