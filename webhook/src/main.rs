//! `wfe-webhook`: mutating and validating admission for kubernaut.ai WorkflowExecutions.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use wfe_ops::flags;
use wfe_ops::logging::LogArgs;
use wfe_ops::signal::shutdown_signal;
use wfe_shared::admission::defaulting::Defaults;
use wfe_shared::api::limits::{DEFAULT_SERVICE_ACCOUNT, DEFAULT_TIMEOUT};
use wfe_webhook::server::{ServerConfig, serve};
use wfe_webhook::tls::CertPaths;

/// Admission webhook for kubernaut.ai WorkflowExecutions: fills defaults (/mutate) and rejects
/// malformed objects before they are stored (/validate).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the TLS admission endpoint (/mutate, /validate, /healthz, /readyz, /metrics).
    #[arg(long, env = "WFE_WEBHOOK_LISTEN_ADDR", default_value = "0.0.0.0:9443")]
    listen_addr: SocketAddr,
    /// Address of the plain-HTTP health and metrics endpoint (/healthz, /readyz, /metrics).
    #[arg(long, env = "WFE_WEBHOOK_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// PEM serving certificate (chain); reloaded when it changes.
    #[arg(
        long,
        env = "WFE_WEBHOOK_TLS_CERT_FILE",
        default_value = "/etc/wfe-webhook/tls/tls.crt"
    )]
    tls_cert_file: PathBuf,
    /// PEM private key of the serving certificate.
    #[arg(
        long,
        env = "WFE_WEBHOOK_TLS_KEY_FILE",
        default_value = "/etc/wfe-webhook/tls/tls.key"
    )]
    tls_key_file: PathBuf,
    /// How often the certificate files are checked for changes (Go duration).
    #[arg(long, env = "WFE_WEBHOOK_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = flags::duration)]
    cert_reload_interval: Duration,
    /// Default for spec.executionConfig.timeout (Go duration, > 0, ≤ 24h).
    #[arg(long, env = "WFE_DEFAULT_TIMEOUT", default_value = DEFAULT_TIMEOUT)]
    default_timeout: String,
    /// Default for spec.executionConfig.serviceAccountName.
    #[arg(long, env = "WFE_DEFAULT_SERVICE_ACCOUNT", default_value = DEFAULT_SERVICE_ACCOUNT)]
    default_service_account: String,
    /// Largest AdmissionReview accepted, in bytes.
    #[arg(long, env = "WFE_WEBHOOK_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_request_bytes: usize,
    /// How long in-flight requests may take to finish on shutdown (Go duration).
    #[arg(long, env = "WFE_WEBHOOK_SHUTDOWN_GRACE", default_value = "10s", value_parser = flags::duration)]
    shutdown_grace: Duration,
    /// How long a client has to send a request's header, and how long an idle keep-alive
    /// connection is kept (Go duration); slow and idle clients are disconnected after it. Longer
    /// than the API server's own idle timeout (90s), so that it closes idle connections first.
    #[arg(long, env = "WFE_WEBHOOK_READ_TIMEOUT", default_value = "120s", value_parser = flags::duration)]
    read_timeout: Duration,
    /// How long a request's body may take to arrive and be answered (Go duration); 408 after it.
    #[arg(long, env = "WFE_WEBHOOK_REQUEST_TIMEOUT", default_value = "10s", value_parser = flags::duration)]
    request_timeout: Duration,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init()?;
    let defaults = Defaults {
        timeout: args.default_timeout.clone(),
        service_account_name: args.default_service_account.clone(),
    };
    check_defaults(&defaults)?;
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let admission = TcpListener::bind(args.listen_addr)
        .with_context(|| format!("binding {}", args.listen_addr))?;
    let health = TcpListener::bind(args.health_addr)
        .with_context(|| format!("binding {}", args.health_addr))?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        default_timeout = %defaults.timeout,
        default_service_account = %defaults.service_account_name,
        "wfe-webhook starting"
    );
    serve(
        ServerConfig {
            admission,
            health: Some(health),
            certs: CertPaths {
                cert: args.tls_cert_file,
                key: args.tls_key_file,
            },
            reload_interval: args.cert_reload_interval,
            defaults,
            max_request_bytes: args.max_request_bytes,
            shutdown_grace: args.shutdown_grace,
            read_timeout: args.read_timeout,
            request_timeout: args.request_timeout,
            metrics: wfe_webhook::metrics::Metrics::new().context("registering metrics")?,
        },
        shutdown,
    )
    .await?;
    tracing::info!("wfe-webhook stopped");
    Ok(())
}

/// The configured defaults must themselves pass validation, or every defaulted object would be denied.
fn check_defaults(defaults: &Defaults) -> anyhow::Result<()> {
    if wfe_shared::admission::validation::check_timeout(&defaults.timeout).is_err() {
        bail!(
            "--default-timeout {:?} must be a Go duration greater than 0s and at most 24h",
            defaults.timeout
        );
    }
    if !wfe_shared::admission::target::is_dns1123_subdomain(&defaults.service_account_name) {
        bail!(
            "--default-service-account {:?} must be a DNS-1123 subdomain",
            defaults.service_account_name
        );
    }
    Ok(())
}
