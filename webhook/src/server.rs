//! Serving: the TLS admission port and the plain health/metrics port, certificate reloading, and
//! graceful shutdown. Used by `main.rs`, the tests and the benchmark alike.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;
use wfe_shared::admission::defaulting::Defaults;

use crate::metrics::Metrics;
use crate::router::{AppState, admission_router, health_router};
use crate::tls::{CertPaths, CertStore, server_config, watch};

/// Everything the server needs; listeners are bound by the caller (so tests can use port 0).
pub struct ServerConfig {
    pub admission: TcpListener,
    pub health: Option<TcpListener>,
    pub certs: CertPaths,
    pub reload_interval: Duration,
    pub defaults: Defaults,
    pub max_request_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// How long a client has to send a request's header, and how long a keep-alive connection
    /// may sit idle between requests: slow or idle clients are disconnected after it.
    pub read_timeout: Duration,
    /// How long a request's body may take to arrive and be answered (408 after it).
    pub request_timeout: Duration,
    /// Where the server records its metrics (the caller may read them).
    pub metrics: Metrics,
}

/// Serves until `shutdown` is cancelled, then drains and returns.
pub async fn serve(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = config.metrics.clone();
    let certs = Arc::new(CertStore::new());
    let state = AppState {
        defaults: Arc::new(config.defaults),
        metrics: metrics.clone(),
        certs: certs.clone(),
        shutting_down: Arc::new(AtomicBool::new(false)),
        max_request_bytes: config.max_request_bytes,
        request_timeout: config.request_timeout,
    };
    let background = shutdown.child_token();

    let mut health_task = None;
    if let Some(listener) = config.health {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let app = health_router(state.clone());
        let stop = background.clone();
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics over HTTP");
        health_task = Some(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }));
    }

    // Readiness waits for the first certificate; until then the admission port is not served.
    let watcher = tokio::spawn(watch(
        certs.clone(),
        config.certs.clone(),
        config.reload_interval,
        metrics.clone(),
        background.clone(),
    ));
    while !certs.is_loaded() {
        tokio::select! {
            _ = shutdown.cancelled() => {
                background.cancel();
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }

    let addr: SocketAddr = config.admission.local_addr()?;
    // tokio requires non-blocking sockets (and asserts it in debug builds).
    config.admission.set_nonblocking(true)?;
    let tls = RustlsConfig::from_config(server_config(certs.clone())?);
    let handle = axum_server::Handle::new();
    // HTTP/1.1 only: the API server calls webhooks over HTTP/1.1 as well, and HTTP/2 would expose
    // the webhook to stream-reset floods (CVE-2023-44487) for no gain (docs/reliability.md).
    let mut server = axum_server::from_tcp_rustls(config.admission, tls)?
        .handle(handle.clone())
        .http1_only();
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(config.read_timeout);
    let server = server.serve(admission_router(state.clone()).into_make_service());
    tracing::info!(%addr, "serving /mutate and /validate over TLS");

    let drain = {
        let state = state.clone();
        let grace = config.shutdown_grace;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            state.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!(grace = ?grace, "draining in-flight admission requests");
            handle.graceful_shutdown(Some(grace));
        })
    };
    let result = server.await.context("serving admission over TLS");
    drain.abort();
    background.cancel();
    let _ = watcher.await;
    if let Some(task) = health_task {
        let _ = task.await;
    }
    result
}
