//! `wfe-webhook`: the admission webhook for WorkflowExecution.
//!
//! This is the serving shell: flags, logging, health endpoints and graceful shutdown. Admission
//! (`/mutate`, `/validate`) over TLS lands with the webhook issue.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use clap::Parser;
use tokio::net::TcpListener;

/// Admission webhook for kubernaut.ai WorkflowExecutions.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address for the health endpoints.
    #[arg(
        long,
        env = "WFE_WEBHOOK_HEALTH_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    health_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "WFE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let listener = TcpListener::bind(args.health_addr)
        .await
        .with_context(|| format!("binding {}", args.health_addr))?;
    tracing::info!(addr = %args.health_addr, "wfe-webhook serving health endpoints");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("wfe-webhook stopped");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}
