//! Load benchmark of the admission webhook (a benchmark, not a test).
//!
//! Runs the release `wfe-webhook` binary as its own process, sends a typical AdmissionReview over TLS
//! keep-alive connections at fixed rates (open loop: when a connection is still busy at a request's
//! scheduled time, latency is measured from that scheduled time, so a slow server cannot hide
//! queueing), then as fast as possible to find
//! the maximum sustained rate, reading the webhook's CPU and RSS from /proc. Finally it registers the
//! webhook with a real kube-apiserver and reports the webhook's share of a WorkflowExecution create.
//!
//! `cargo build --release -p wfe-webhook -p wfe-tools && target/release/webhook-bench`

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::TlsConnector;
use wfe_tools::procfs::{cpu_seconds, rss_kib};

#[derive(Parser, Debug)]
#[command(about = "Load benchmark of wfe-webhook")]
struct Args {
    /// Fixed request rates (reviews/s) to measure latency at.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2500,5000,7500,10000"
    )]
    rates: Vec<u64>,
    /// Duration of each fixed-rate step and of the max-rate step, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive TLS connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Creates through the API server for the admission-share measurement (0 to skip).
    #[arg(long, default_value_t = 300)]
    creates: usize,
    /// The webhook binary (default: `wfe-webhook` next to this binary).
    #[arg(long)]
    webhook: Option<PathBuf>,
}

struct Webhook {
    child: Child,
    addr: SocketAddr,
    health: SocketAddr,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn start_webhook(binary: &PathBuf) -> anyhow::Result<Webhook> {
    let dir = tempfile::tempdir()?;
    let ca = wfe_certs::CertificateAuthority::generate("bench-ca")?;
    let pair = ca.issue_server("wfe-webhook", &["localhost".into(), "127.0.0.1".into()])?;
    std::fs::write(dir.path().join("tls.crt"), pair.cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), pair.key_pem)?;
    let (addr, health) = (free_addr()?, free_addr()?);
    let child = Command::new(binary)
        .args([
            format!("--listen-addr={addr}"),
            format!("--health-addr={health}"),
            format!("--tls-cert-file={}", dir.path().join("tls.crt").display()),
            format!("--tls-key-file={}", dir.path().join("tls.key").display()),
            "--log-level=warn".into(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("webhook did not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Webhook {
        child,
        addr,
        health,
        ca_pem: ca.cert_pem(),
        _dir: dir,
    })
}

/// utime+stime in seconds and (VmRSS, VmHWM) in KiB of a process.
fn proc_usage(pid: u32) -> (f64, u64, u64) {
    let (rss, hwm) = rss_kib(pid);
    (cpu_seconds(pid), rss, hwm)
}

fn review() -> Bytes {
    // A typical create as the API server sends it (~2 KB with managedFields).
    Bytes::from(
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "2d7c2a9e-3f6a-4c39-9f0e-3c1f0a8e5b11",
                "kind": {"group": "kubernaut.ai", "version": "v1alpha1", "kind": "WorkflowExecution"},
                "resource": {"group": "kubernaut.ai", "version": "v1alpha1", "resource": "workflowexecutions"},
                "requestKind": {"group": "kubernaut.ai", "version": "v1alpha1", "kind": "WorkflowExecution"},
                "requestResource": {"group": "kubernaut.ai", "version": "v1alpha1", "resource": "workflowexecutions"},
                "name": "restart-payment-api", "namespace": "kubernaut-system", "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kubernaut-system:remediationorchestrator",
                    "uid": "b7c1", "groups": ["system:serviceaccounts", "system:authenticated"]},
                "object": {
                    "apiVersion": "kubernaut.ai/v1alpha1", "kind": "WorkflowExecution",
                    "metadata": {"name": "restart-payment-api", "namespace": "kubernaut-system",
                        "labels": {"app.kubernetes.io/managed-by": "kubernaut"},
                        "managedFields": [{"manager": "remediationorchestrator", "operation": "Update",
                            "apiVersion": "kubernaut.ai/v1alpha1", "time": "2026-11-21T10:00:00Z",
                            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {".": {}, "f:workflowRef": {}}}}]},
                    "spec": {
                        "remediationRequestRef": {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
                            "name": "rr-payment-api-oom-7f3c", "namespace": "kubernaut-system"},
                        "workflowRef": {"workflowId": "restart-deployment", "version": "1.2.0",
                            "containerImage": "quay.io/kubernaut/workflows/restart-deployment:v1.2.0"},
                        "targetResource": "payments/deployment/payment-api",
                        "parameters": {"GRACE_PERIOD_SECONDS": "30", "REASON": "memory leak suspected", "MAX_SURGE": "1"},
                        "confidence": 0.92,
                        "rationale": "Pod restarts cleared the same OOM pattern three times this week."
                    }
                },
                "oldObject": null, "dryRun": false,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
            }
        })
        .to_string(),
    )
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(tls: &TlsConnector, addr: SocketAddr) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tls
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(sender: &mut Sender, path: &'static str, body: Bytes) -> anyhow::Result<()> {
    sender.ready().await?;
    let request = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != 200 || !body.windows(14).any(|w| w == br#""allowed":true"#) {
        bail!(
            "unexpected answer {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

struct Step {
    label: String,
    sent: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    cpu_seconds: f64,
    rss_kib: u64,
}

/// `rate = None`: closed loop, as fast as the connections go.
async fn run_step(
    hook: &Webhook,
    tls: &TlsConnector,
    connections: usize,
    rate: Option<u64>,
    seconds: u64,
) -> anyhow::Result<Step> {
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(tls, hook.addr).await?);
    }
    let body = review();
    let (cpu0, _, _) = proc_usage(hook.child.id());
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, mut sender) in senders.into_iter().enumerate() {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let (mut sent, mut errors) = (0u64, 0u64);
            let mut previous_done = start;
            // Each connection owns every `connections`-th slot of the global schedule.
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r as f64));
            let mut next = start
                + interval
                    .map(|iv| iv.mul_f64(i as f64 / connections as f64))
                    .unwrap_or_default();
            loop {
                if interval.is_some() {
                    if next >= end {
                        break;
                    }
                    tokio::time::sleep_until(next).await;
                } else if tokio::time::Instant::now() >= end {
                    break;
                }
                // Latency origin: the scheduled time when the previous request on this connection
                // was still running then (queueing the server caused counts: no coordinated
                // omission); otherwise the actual send, since tokio's 1 ms timer granularity alone
                // makes a paced send late and that is not the server's doing.
                let now = tokio::time::Instant::now();
                let origin = match interval {
                    Some(_) if previous_done > next => next,
                    _ => now,
                };
                let path = if sent % 2 == 0 {
                    "/validate"
                } else {
                    "/mutate"
                };
                match send(&mut sender, path, body.clone()).await {
                    Ok(()) => {
                        let us = origin.elapsed().as_micros().max(1) as u64;
                        let _ = hist.record(us);
                    }
                    Err(_) => errors += 1,
                }
                previous_done = tokio::time::Instant::now();
                sent += 1;
                if let Some(iv) = interval {
                    next += iv;
                }
            }
            (hist, sent, errors)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut sent, mut errors) = (0, 0);
    for t in tasks {
        let (h, s, e) = t.await?;
        latency.add(h)?;
        sent += s;
        errors += e;
    }
    let elapsed = start.elapsed();
    let (cpu1, rss, _) = proc_usage(hook.child.id());
    Ok(Step {
        label: rate
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "max (closed loop)".into()),
        sent,
        errors,
        elapsed,
        latency,
        cpu_seconds: cpu1 - cpu0,
        rss_kib: rss,
    })
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

async fn admission_share(hook: &Webhook, creates: usize) -> anyhow::Result<String> {
    use kube::api::{Api, PostParams};
    // `shared()` starts it from a thread that lives as long as the process (see its docs).
    let cp = tokio::task::spawn_blocking(wfe_tools::shared).await?;
    let client = cp.client().await;
    let ns = cp.namespace(&client, "bench").await;
    wfe_tools::webhook::register(&client, &ns, hook.addr, &hook.ca_pem).await?;
    let api: Api<wfe_shared::WorkflowExecution> = Api::namespaced(client.clone(), &ns);
    let metrics_before = scrape(&client).await?;
    let own_before = scrape_webhook(hook)?;
    let started = Instant::now();
    for i in 0..creates {
        let mut obj: wfe_shared::WorkflowExecution = serde_json::from_value(
            serde_json::from_slice::<serde_json::Value>(&review())?["request"]["object"].clone(),
        )?;
        obj.metadata = kube::api::ObjectMeta {
            name: Some(format!("bench-{i}")),
            ..Default::default()
        };
        api.create(&PostParams::default(), &obj).await?;
    }
    let wall = started.elapsed();
    let after = scrape(&client).await?;
    let own_after = scrape_webhook(hook)?;
    let own = |filters: &[&str]| {
        let name = "wfe_webhook_admission_duration_seconds";
        sample(&own_after, name, filters) - sample(&own_before, name, filters)
    };
    let own_n = own(&["_count"]);
    let own_fast = own(&["_bucket", r#"le="0.0001""#]);
    let own_mean_us = own(&["_sum"]) / own_n * 1e6;
    let delta = |prefix: &str, filter: &[&str]| -> (f64, f64) {
        let pick = |text: &str, suffix: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.starts_with(&format!("{prefix}{suffix}{{"))
                        && filter.iter().all(|f| l.contains(f))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            pick(&after, "_sum") - pick(&metrics_before, "_sum"),
            pick(&after, "_count") - pick(&metrics_before, "_count"),
        )
    };
    let (create_sum, create_n) = delta(
        "apiserver_request_duration_seconds",
        &[r#"verb="POST""#, r#"resource="workflowexecutions""#],
    );
    let (mut_sum, mut_n) = delta(
        "apiserver_admission_webhook_admission_duration_seconds",
        &[
            r#"name="mutate.workflowexecution.kubernaut.ai""#,
            r#"operation="CREATE""#,
        ],
    );
    let (val_sum, val_n) = delta(
        "apiserver_admission_webhook_admission_duration_seconds",
        &[
            r#"name="validate.workflowexecution.kubernaut.ai""#,
            r#"operation="CREATE""#,
        ],
    );
    if create_n == 0.0 || mut_n == 0.0 || val_n == 0.0 {
        bail!(
            "API server metrics missing: creates {create_n}, mutating {mut_n}, validating {val_n}"
        );
    }
    let create_ms = create_sum / create_n * 1000.0;
    let (mut_ms, val_ms) = (mut_sum / mut_n * 1000.0, val_sum / val_n * 1000.0);
    Ok(format!(
        "The webhook's own handling time in that phase (wfe_webhook_admission_duration_seconds): {own_n} requests, mean {own_mean_us:.0} µs, {:.1}% ≤ 0.1 ms.\n\n| creates | wall time | mean create (API server) | mean mutating webhook call | mean validating webhook call | webhook share of a create |\n|---|---|---|---|---|---|\n| {creates} | {:.2}s | {create_ms:.3} ms | {mut_ms:.3} ms | {val_ms:.3} ms | {:.1}% |\n",
        own_fast / own_n * 100.0,
        wall.as_secs_f64(),
        (mut_ms + val_ms) / create_ms * 100.0
    ))
}

/// The webhook's own `/metrics` (plain HTTP health port).
fn scrape_webhook(hook: &Webhook) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(hook.health)?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Sum of a metric's samples whose line contains every filter.
fn sample(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(client: &kube::Client) -> anyhow::Result<String> {
    Ok(client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = match args.webhook.clone() {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("wfe-webhook"),
    };
    let hook = start_webhook(&binary)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(hook.ca_pem.as_bytes())?)?;
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = TlsConnector::from(Arc::new(config));

    // Warm-up.
    run_step(&hook, &tls, args.connections, Some(1000), 2).await?;
    println!(
        "webhook: {} ({} keep-alive TLS connections, {}s per step, alternating /validate and /mutate)\n",
        binary.display(),
        args.connections,
        args.seconds
    );
    println!(
        "| load | sent | errors | achieved rate | p50 ms | p99 ms | p99.9 ms | max ms | webhook CPU | webhook RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut steps: Vec<Option<u64>> = args.rates.iter().map(|r| Some(*r)).collect();
    steps.push(None);
    for rate in steps {
        let s = run_step(&hook, &tls, args.connections, rate, args.seconds).await?;
        let h = &s.latency;
        println!(
            "| {} | {} | {} | {:.0}/s | {} | {} | {} | {} | {:.0}% | {:.1} MiB |",
            s.label,
            s.sent,
            s.errors,
            (s.sent - s.errors) as f64 / s.elapsed.as_secs_f64(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            s.cpu_seconds / s.elapsed.as_secs_f64() * 100.0,
            s.rss_kib as f64 / 1024.0
        );
    }
    let (_, rss, hwm) = proc_usage(hook.child.id());
    println!(
        "\nwebhook RSS after the run: {:.1} MiB (peak {:.1} MiB)\n",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    if args.creates > 0 {
        println!("{}", admission_share(&hook, args.creates).await?);
    }
    Ok(())
}
