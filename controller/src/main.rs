//! `wfe-controller`: runs kubernaut.ai WorkflowExecutions as Tekton PipelineRuns.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use wfe_controller::audit::{AuditConfig, AuditSink};
use wfe_controller::context::{Services, Settings, system_clock};
use wfe_controller::health::{Health, serve_health};
use wfe_controller::leader::run;
use wfe_controller::metrics::Metrics;
use wfe_ops::flags;
use wfe_ops::logging::LogArgs;
use wfe_ops::signal::shutdown_signal;
use wfe_shared::api::names::DEFAULT_EXECUTION_NAMESPACE;
use wfe_shared::safety::Rules;

/// Controller that runs kubernaut.ai WorkflowExecutions as Tekton PipelineRuns.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "WFE_CONTROLLER_HEALTH_ADDR",
        default_value = "0.0.0.0:8082"
    )]
    health_addr: SocketAddr,
    /// Namespace PipelineRuns are created in.
    #[arg(long, env = "WFE_EXECUTION_NAMESPACE", default_value = DEFAULT_EXECUTION_NAMESPACE)]
    execution_namespace: String,
    /// Only reconcile WorkflowExecutions in this namespace (default: all namespaces).
    #[arg(long, env = "WFE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// How long a finished execution keeps the target's lock, and how long the same workflow may
    /// not run again on a target after it completed there (Go duration).
    #[arg(long, env = "WFE_COOLDOWN", default_value = "5m", value_parser = flags::duration)]
    cooldown: Duration,
    /// Backoff after the first failure before execution on a target (Go duration); it doubles
    /// with each further consecutive one.
    #[arg(long, env = "WFE_BACKOFF_BASE", default_value = "1m", value_parser = flags::duration)]
    backoff_base: Duration,
    /// Longest backoff (Go duration).
    #[arg(long, env = "WFE_BACKOFF_MAX", default_value = "10m", value_parser = flags::duration)]
    backoff_max: Duration,
    /// The backoff doubles at most this many times.
    #[arg(long, env = "WFE_BACKOFF_MAX_EXPONENT", default_value_t = 4)]
    backoff_max_exponent: u32,
    /// Consecutive failures before execution on a target after which new executions there are
    /// Skipped (ExhaustedRetries) until an operator clears the last one.
    #[arg(long, env = "WFE_MAX_CONSECUTIVE_FAILURES", default_value_t = 5)]
    max_consecutive_failures: u32,
    /// Grace added to executionConfig.timeout before the controller's own deadline fails an execution.
    #[arg(long, env = "WFE_DEADLINE_GRACE", default_value = "1m", value_parser = flags::duration)]
    deadline_grace: Duration,
    /// DataStorage's URL: audit events go to <url>/api/v1/audit/events/batch. Without it they are
    /// written as JSON lines to --audit-file (stdout by default).
    #[arg(long, env = "WFE_AUDIT_URL")]
    audit_url: Option<String>,
    /// CA certificates (PEM) to trust for --audit-url (default: the system's).
    #[arg(long, env = "WFE_AUDIT_CA_FILE")]
    audit_ca_file: Option<PathBuf>,
    /// A bearer token for --audit-url, read from this file and read again when it changes (e.g.
    /// the pod's projected service-account token).
    #[arg(long, env = "WFE_AUDIT_TOKEN_FILE")]
    audit_token_file: Option<PathBuf>,
    /// Time limit of one delivery request (Go duration).
    #[arg(long, env = "WFE_AUDIT_TIMEOUT", default_value = "5s", value_parser = flags::duration)]
    audit_timeout: Duration,
    /// Without --audit-url: append JSON lines to this file instead of stdout.
    #[arg(long, env = "WFE_AUDIT_FILE")]
    audit_file: Option<PathBuf>,
    /// Most audit events queued or in flight; more wait in their executions' status.
    #[arg(long, env = "WFE_AUDIT_BUFFER", default_value_t = 10_000)]
    audit_buffer: usize,
    /// Most audit events in one request.
    #[arg(long, env = "WFE_AUDIT_BATCH_MAX", default_value_t = 500)]
    audit_batch_max: usize,
    /// How long a deleted execution waits for its audit events to be delivered before it goes
    /// without them (Go duration).
    #[arg(long, env = "WFE_AUDIT_DELETION_GRACE", default_value = "10m", value_parser = flags::duration)]
    audit_deletion_grace: Duration,
    /// How long a created PipelineRun may stay unstarted before TektonPipelineRunning turns False
    /// (PipelineFailedToStart); the execution still runs until its deadline.
    #[arg(long, env = "WFE_PIPELINE_START_TIMEOUT", default_value = "5m", value_parser = flags::duration)]
    pipeline_start_timeout: Duration,
    /// Reconciles running at once; when more are due, work under way goes before new executions.
    #[arg(long, env = "WFE_CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// Leader-election Lease name.
    #[arg(long, env = "WFE_LEASE_NAME", default_value = "wfe-controller-leader")]
    lease_name: String,
    /// Namespace of the Lease (defaults to the execution namespace).
    #[arg(long, env = "WFE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Lease duration in seconds: failover happens within it.
    #[arg(long, env = "WFE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Renew this many seconds before the lease expires.
    #[arg(long, env = "WFE_LEASE_GRACE_SECONDS", default_value_t = 5)]
    lease_grace_seconds: u64,
    /// This replica's identity in the Lease (defaults to $HOSTNAME).
    #[arg(long, env = "WFE_IDENTITY")]
    identity: Option<String>,
    /// Most API requests per second this controller sends (client-side rate limit, refilled every
    /// 100 ms). The default leaves room for 100 executions/s at six writes each.
    #[arg(long, env = "WFE_KUBE_API_QPS", default_value_t = 1000)]
    kube_api_qps: u64,
    /// Most API requests in flight at once.
    #[arg(long, env = "WFE_KUBE_API_MAX_IN_FLIGHT", default_value_t = 64)]
    kube_api_max_in_flight: usize,
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts its threads.
    wfe_controller::memory::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_controller())
}

async fn run_controller() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init()?;
    let rules = Rules {
        cooldown: args.cooldown,
        backoff_base: args.backoff_base,
        backoff_max: args.backoff_max,
        backoff_max_exponent: args.backoff_max_exponent,
        max_consecutive_failures: args.max_consecutive_failures,
    };
    if let Err(errors) = rules.check() {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::bail!("invalid safety-rule settings:\n{}", lines.join("\n"));
    }
    if args.lease_grace_seconds >= args.lease_duration_seconds {
        anyhow::bail!(
            "--lease-grace-seconds ({}) must be less than --lease-duration-seconds ({}): the leader renews that long before the lease expires",
            args.lease_grace_seconds,
            args.lease_duration_seconds
        );
    }
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("wfe-controller-{}", std::process::id()));
    let settings = Settings {
        lease_namespace: args
            .lease_namespace
            .unwrap_or_else(|| args.execution_namespace.clone()),
        execution_namespace: args.execution_namespace,
        watch_namespace: args.watch_namespace,
        rules,
        deadline_grace: args.deadline_grace,
        pipeline_start_timeout: args.pipeline_start_timeout,
        audit_deletion_grace: args.audit_deletion_grace,
        concurrency: args.concurrency,
        lease_name: args.lease_name,
        lease_duration_seconds: args.lease_duration_seconds,
        lease_grace_seconds: args.lease_grace_seconds,
        identity,
    };
    let health = Health {
        metrics: Metrics::new().context("registering metrics")?,
        ready: Arc::new(AtomicBool::new(false)),
    };
    let audit = AuditSink::from_config(
        &AuditConfig {
            url: args.audit_url,
            ca_file: args.audit_ca_file,
            token_file: args.audit_token_file,
            timeout: args.audit_timeout,
            file: args.audit_file,
            buffer: args.audit_buffer,
            batch_max: args.audit_batch_max,
        },
        health.metrics.clone(),
    )
    .context("setting up audit delivery")?;
    let listener = TcpListener::bind(args.health_addr)
        .with_context(|| format!("binding {}", args.health_addr))?;
    let shutdown = CancellationToken::new();
    let health_task = tokio::spawn(serve_health(listener, health.clone(), shutdown.clone()));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        ?settings,
        "wfe-controller starting"
    );
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    let result = match client(args.kube_api_qps, args.kube_api_max_in_flight).await {
        Ok(client) => {
            let services = Services {
                clock: system_clock(),
                health,
                audit,
                hook: wfe_controller::hooks::kill_point_from_env().map_err(anyhow::Error::msg)?,
            };
            run(client, settings, services, shutdown.clone()).await
        }
        Err(e) => {
            // Stay up for the health endpoints until told to stop, so the failure is visible.
            tracing::error!(error = %e, "cannot build a Kubernetes client");
            shutdown.cancelled().await;
            Err(e)
        }
    };
    shutdown.cancel();
    let _ = health_task.await;
    tracing::info!("wfe-controller stopped");
    result
}

/// `qps` as requests per 100 ms where it divides so: tower's limiter admits a window's requests at
/// once and then holds every request until the window ends, so a one-second window stalled even a
/// finished execution's report for up to a second once the budget ran out (docs/benchmarks.md,
/// "Overload tail").
fn rate_window(qps: u64) -> (u64, Duration) {
    match qps {
        0 => (1, Duration::from_secs(1)),
        q if q >= 10 => (q / 10, Duration::from_millis(100)),
        q => (q, Duration::from_secs(1)),
    }
}

/// A client from the kubeconfig or the in-cluster environment, with a request rate limit and a
/// cap on requests in flight, so a burst of reconciles cannot flood the API server.
async fn client(qps: u64, max_in_flight: usize) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await?;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
            max_in_flight.max(1),
        ))
        .with_layer(&{
            let (requests, per) = rate_window(qps);
            tower::limit::RateLimitLayer::new(requests, per)
        })
        .build())
}
