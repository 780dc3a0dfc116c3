//! The plain-HTTP `/healthz`, `/readyz` and `/metrics` router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Ready, or why not (the `/readyz` body).
pub type Readiness = Result<(), &'static str>;

/// What the router asks of its binary.
pub trait Probe: Send + Sync + 'static {
    fn readiness(&self) -> Readiness;
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
}

/// `/healthz` (alive), `/readyz` (503 with the reason until ready) and `/metrics`.
pub fn router(probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

async fn readyz(State(p): State<Arc<dyn Probe>>) -> Response {
    match p.readiness() {
        Ok(()) => "ok".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(p): State<Arc<dyn Probe>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        p.metrics(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    struct Fake(AtomicBool);

    impl Probe for Fake {
        fn readiness(&self) -> Readiness {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("not yet")
            }
        }
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let r = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readiness_reports_why_until_ready_and_metrics_are_served() {
        let probe = Arc::new(Fake(AtomicBool::new(false)));
        let app = router(probe.clone());
        assert_eq!(
            get(app.clone(), "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not yet".into())
        );
        probe.0.store(true, Ordering::SeqCst);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(get(app, "/metrics").await, (StatusCode::OK, "m 1\n".into()));
    }
}
