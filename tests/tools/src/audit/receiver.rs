//! A DataStorage-compatible audit receiver for tests and the local environment:
//! `POST /api/v1/audit/events/batch` validates every event of a batch against DataStorage's
//! published document (and, for event types it does not know, this project's schema), stores what
//! it accepted and answers like DataStorage — 201 `BatchAuditEventResponse`, RFC 7807 problems —
//! and can be told to fail: a status of choice, slowness, or not listening at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use wfe_shared::api::AuditEventType;

use super::contract::Contract;

/// How the receiver answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Accept,
    /// Every batch refused with this status (and an RFC 7807 problem).
    Fail(u16),
    /// Accept, after this long.
    Slow(Duration),
}

struct Shared {
    contract: Contract,
    accepted: Mutex<Vec<Value>>,
    mode: Mutex<Mode>,
    token: Mutex<Option<String>>,
    requests: AtomicU64,
    ids: AtomicU64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on 127.0.0.1 (a free port), accepting.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            contract: Contract::load()?,
            accepted: Mutex::default(),
            mode: Mutex::new(Mode::Accept),
            token: Mutex::default(),
            requests: AtomicU64::new(0),
            ids: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut receiver = Receiver {
            addr,
            shared,
            task: None,
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    /// The base URL (the controller's `--audit-url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/api/v1/audit/events/batch", post(batch))
            .with_state(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    pub fn set(&self, mode: Mode) {
        if let Ok(mut m) = self.shared.mode.lock() {
            *m = mode;
        }
    }

    /// Requires `Authorization: Bearer <token>` from now on (401 otherwise).
    pub fn require_token(&self, token: Option<&str>) {
        if let Ok(mut t) = self.shared.token.lock() {
            *t = token.map(str::to_owned);
        }
    }

    /// Stops listening, dropping open connections: the next delivery is refused.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// Every event accepted so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.shared
            .accepted
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// The accepted events of one execution (by name), as (event type, identity), in order.
    pub fn trail(&self, execution: &str) -> Vec<(String, String)> {
        self.events()
            .iter()
            .filter(|e| e["resource_id"] == execution)
            .map(|e| {
                (
                    e["event_type"].as_str().unwrap_or_default().to_owned(),
                    e["event_data"]["idempotency_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Batch requests answered so far (any answer).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn problem(status: StatusCode, kind: &str, detail: String, fields: Option<Value>) -> Response {
    let mut body = json!({
        "type": format!("https://kubernaut.ai/problems/{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "instance": "/api/v1/audit/events/batch",
    });
    if let Some(fields) = fields {
        body["field_errors"] = fields;
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn batch(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let token = s.token.lock().map(|t| t.clone()).unwrap_or_default();
    if let Some(token) = token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(&format!("Bearer {token}")) {
            let detail = "a valid bearer token is required".to_owned();
            return problem(StatusCode::UNAUTHORIZED, "unauthorized", detail, None);
        }
    }
    let mode = s.mode.lock().map(|m| m.clone()).unwrap_or(Mode::Accept);
    match mode {
        Mode::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if status.is_server_error() {
                "service-unavailable"
            } else {
                "bad-request"
            };
            let detail = format!("the test receiver was told to answer {code}");
            return problem(status, kind, detail, None);
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Accept => {}
    }
    let events: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(Value::Array(events)) => events,
        Ok(_) => {
            let detail = "the body must be a JSON array of AuditEventRequest".to_owned();
            return problem(StatusCode::BAD_REQUEST, "validation-error", detail, None);
        }
        Err(e) => {
            let detail = format!("the body is not JSON: {e}");
            return problem(StatusCode::BAD_REQUEST, "bad-request", detail, None);
        }
    };
    let mut fields = serde_json::Map::new();
    for (i, e) in events.iter().enumerate() {
        if let Err(why) = s.contract.check_received(e) {
            fields.insert(format!("[{i}]"), Value::String(why));
        }
    }
    if !fields.is_empty() {
        let detail = format!("{} of {} events are invalid", fields.len(), events.len());
        return problem(
            StatusCode::BAD_REQUEST,
            "validation-error",
            detail,
            Some(Value::Object(fields)),
        );
    }
    let ids: Vec<String> = events
        .iter()
        .map(|_| {
            let n = s.ids.fetch_add(1, Ordering::SeqCst);
            wfe_shared::audit::idempotency_key(
                &format!("receiver-{n}"),
                AuditEventType::BlockCleared,
            )
        })
        .collect();
    let n = events.len();
    if let Ok(mut accepted) = s.accepted.lock() {
        accepted.extend(events);
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"event_ids": ids, "message": format!("{n} audit events created")}).to_string(),
    )
        .into_response()
}
