//! HTTP routes: admission on the TLS port, health and metrics (`wfe_ops::health`) on both ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::jiff::Timestamp;
use kube::core::admission::AdmissionResponse;
use wfe_ops::health::{Probe, Readiness};
use wfe_shared::admission::defaulting::Defaults;

use crate::admission::{Endpoint, Verdict, admit};
use crate::metrics::Metrics;
use crate::tls::CertStore;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub defaults: Arc<Defaults>,
    pub metrics: Metrics,
    pub certs: Arc<CertStore>,
    /// Set on shutdown so readiness fails first and traffic drains.
    pub shutting_down: Arc<AtomicBool>,
    pub max_request_bytes: usize,
    /// How long a request's body may take to arrive and be answered.
    pub request_timeout: std::time::Duration,
}

/// All routes: `/mutate`, `/validate`, `/healthz`, `/readyz`, `/metrics`.
pub fn admission_router(state: AppState) -> Router {
    let limit = state.max_request_bytes;
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            within_request_timeout,
        ))
        .with_state(state.clone())
        .merge(health_router(state))
}

/// Answers 408 (and closes the connection) when a request's body has not arrived and been answered
/// within the request timeout: a client sending its body byte by byte holds nothing for long.
async fn within_request_timeout(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let endpoint = match request.uri().path() {
        "/mutate" => Endpoint::Mutate,
        _ => Endpoint::Validate,
    };
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!(
                "the AdmissionReview did not arrive within {:?}",
                state.request_timeout
            );
            tracing::warn!(endpoint = endpoint.as_str(), %message, "admission request timed out");
            state
                .metrics
                .requests
                .with_label_values(&[endpoint.as_str(), "unknown", "timeout"])
                .inc();
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                message,
            )
                .into_response()
        }
    }
}

/// Health and metrics only (the plain-HTTP port for probes and scrapers).
pub fn health_router(state: AppState) -> Router {
    wfe_ops::health::router(Arc::new(state))
}

impl Probe for AppState {
    fn readiness(&self) -> Readiness {
        if self.shutting_down.load(Ordering::Relaxed) {
            Err("shutting down")
        } else if !self.certs.is_loaded() {
            Err("no serving certificate loaded yet")
        } else {
            Ok(())
        }
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

async fn mutate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    respond(Endpoint::Mutate, &state, body)
}

async fn validate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    respond(Endpoint::Validate, &state, body)
}

fn respond(endpoint: Endpoint, state: &AppState, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let (status, json, verdict, operation) = match body {
        Ok(body) => {
            let answer = admit(endpoint, &body, &state.defaults, Timestamp::now());
            match answer.verdict {
                Verdict::Denied | Verdict::Malformed => tracing::info!(
                    endpoint = endpoint.as_str(),
                    operation = answer.operation,
                    name = %answer.name,
                    dry_run = answer.dry_run,
                    verdict = answer.verdict.as_str(),
                    message = answer.message.as_deref().unwrap_or(""),
                    "admission denied"
                ),
                _ => tracing::debug!(
                    endpoint = endpoint.as_str(),
                    operation = answer.operation,
                    name = %answer.name,
                    dry_run = answer.dry_run,
                    verdict = answer.verdict.as_str(),
                    "admission allowed"
                ),
            }
            (
                StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::BAD_REQUEST),
                serde_json::to_vec(&answer.review),
                answer.verdict,
                answer.operation,
            )
        }
        Err(rejection) => {
            // Oversized or unreadable body: a JSON answer with the reason, with the rejection's status.
            let message = format!("cannot read the AdmissionReview: {}", rejection.body_text());
            tracing::info!(endpoint = endpoint.as_str(), %message, "admission request refused");
            let review = AdmissionResponse::invalid(&message).into_review();
            (
                rejection.status(),
                serde_json::to_vec(&review),
                Verdict::Malformed,
                "unknown",
            )
        }
    };
    state
        .metrics
        .requests
        .with_label_values(&[endpoint.as_str(), operation, verdict.as_str()])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[endpoint.as_str()])
        .observe(started.elapsed().as_secs_f64());
    match json {
        Ok(json) => (status, [(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            // Serialising our own response types cannot fail in practice; answer 400 rather than 500.
            tracing::error!(error = %e, "cannot serialize an admission response");
            (
                StatusCode::BAD_REQUEST,
                format!("cannot serialize the response: {e}"),
            )
                .into_response()
        }
    }
}
