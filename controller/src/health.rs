//! `/healthz`, `/readyz` and `/metrics` of the controller (the router is `wfe_ops::health`).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wfe_ops::health::{Probe, Readiness, router};

use crate::metrics::Metrics;

/// Health state shared with the HTTP endpoints.
#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    /// True once the leader's caches are synced, or while standing by (not leading).
    pub ready: Arc<AtomicBool>,
}

impl Probe for Health {
    fn readiness(&self) -> Readiness {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("caches not synced yet")
        }
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `stop`.
pub async fn serve_health(
    listener: TcpListener,
    health: Health,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, router(Arc::new(health)))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("serving health endpoints")
}
