//! A fault-injecting proxy between a client under test and the real kube-apiserver: plain HTTP on
//! 127.0.0.1 in front, the API server's TLS and credentials behind (the upstream `kube::Client`).
//! The test sets which faults apply, and may change them at any time:
//! - answer a fraction of matching writes with an error status (409, 500, 503: the write does not
//!   happen), or forward the write and then lose its answer (it happens; the client sees an error);
//! - delay every answer;
//! - reset a fraction of connections (no answer at all);
//! - end every watch stream after a while (the client re-watches), or answer a fraction of new
//!   watches with `410 Gone` (the client re-lists, as after an etcd compaction);
//! - pause watch streams (events held back, the client's cache goes stale while writes still go
//!   through), then let them flow again.
//!
//! Knows nothing of the product: rules match on method and path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Writes (`POST`, `PUT`, `PATCH`, `DELETE`) whose path matches, and what happens to a fraction of
/// them.
#[derive(Clone, Debug)]
pub struct WriteFault {
    /// Matches when the request path (without query) contains this.
    pub path_contains: String,
    /// And, when set, only this method.
    pub method: Option<Method>,
    pub fraction: f64,
    pub effect: WriteEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteEffect {
    /// Answered with this status without forwarding: the write does not happen.
    Refuse(u16),
    /// Forwarded, and then answered with this status: the write happened, the client cannot know.
    /// (kube-rs retries a 503 or 504 itself — its retry then meets the write that landed — and
    /// passes a 500 on.)
    LoseAnswer(u16),
}

/// What the proxy does now.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub writes: Vec<WriteFault>,
    /// Added before every answer.
    pub delay: Option<Duration>,
    /// Fraction of requests whose connection is dropped without an answer.
    pub reset_fraction: f64,
    /// Every watch stream ends after this long.
    pub cut_watches_after: Option<Duration>,
    /// Fraction of new watches (with a `resourceVersion`) answered with a `410 Gone` event.
    pub expire_watches_fraction: f64,
    /// Until then, watch events are held back (and then delivered).
    pub pause_watches_until: Option<Instant>,
}

/// What the proxy did, for the test's report.
#[derive(Debug, Default)]
pub struct Stats {
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub answers_lost: AtomicU64,
    pub resets: AtomicU64,
    pub watches_cut: AtomicU64,
    pub watches_expired: AtomicU64,
}

/// The counts of [`Stats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub forwarded: u64,
    pub refused: u64,
    pub answers_lost: u64,
    pub resets: u64,
    pub watches_cut: u64,
    pub watches_expired: u64,
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            forwarded: get(&self.forwarded),
            refused: get(&self.refused),
            answers_lost: get(&self.answers_lost),
            resets: get(&self.resets),
            watches_cut: get(&self.watches_cut),
            watches_expired: get(&self.watches_expired),
        }
    }

    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "forwarded {}, refused {}, answers lost {}, resets {}, watches cut {}, watches expired {}",
            get(&self.forwarded),
            get(&self.refused),
            get(&self.answers_lost),
            get(&self.resets),
            get(&self.watches_cut),
            get(&self.watches_expired)
        )
    }
}

struct Shared {
    upstream: kube::Client,
    faults: Mutex<Faults>,
    stats: Stats,
    /// xorshift state: the same seed gives the same fault sequence for the same request order.
    rng: Mutex<u64>,
}

impl Shared {
    fn chance(&self, fraction: f64) -> bool {
        if fraction <= 0.0 {
            return false;
        }
        let mut state = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64 <= fraction
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (a client of the real API server), with no faults, on the
    /// caller's runtime. `seed` fixes the fault sequence.
    pub async fn start(upstream: kube::Client, seed: u64) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(Faults::default()),
            stats: Stats::default(),
            rng: Mutex::new(seed | 1),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { handle(shared, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// A client of the API server through this proxy.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let url = format!("http://{}", self.addr).parse()?;
        let mut config = kube::Config::new(url);
        // Watches are long requests; a cut or paused one must not look like a dead server.
        config.read_timeout = Some(Duration::from_secs(300));
        Ok(kube::Client::try_from(config)?)
    }

    /// Changes the faults in effect.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = self.shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut faults);
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn is_watch(req: &Request<Incoming>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A Kubernetes `Status` answer.
fn status(code: u16, reason: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn reason_of(code: u16) -> &'static str {
    match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The injected connection reset: a service error makes hyper close the connection unanswered.
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for InjectedReset {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, InjectedReset> {
    let faults = shared.faults();
    if let Some(delay) = faults.delay {
        tokio::time::sleep(delay).await;
    }
    if shared.chance(faults.reset_fraction) {
        shared.stats.resets.fetch_add(1, Ordering::Relaxed);
        return Err(InjectedReset);
    }
    Ok(answer(shared, req, faults).await)
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    faults: Faults,
) -> Response<ProxyBody> {
    let watch = is_watch(&req);
    if watch
        && req
            .uri()
            .query()
            .is_some_and(|q| q.contains("resourceVersion="))
        && shared.chance(faults.expire_watches_fraction)
    {
        shared.stats.watches_expired.fetch_add(1, Ordering::Relaxed);
        let gone = serde_json::json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version (injected)", "reason": "Expired", "code": 410}});
        let mut response = Response::new(full(format!("{gone}\n")));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let mut lose_answer = None;
    if is_write(req.method()) {
        let path = req.uri().path().to_owned();
        for fault in &faults.writes {
            let matches = path.contains(&fault.path_contains)
                && fault.method.as_ref().is_none_or(|m| m == req.method());
            if matches && shared.chance(fault.fraction) {
                match fault.effect {
                    WriteEffect::Refuse(code) => {
                        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                        return status(code, reason_of(code), "injected by the fault proxy");
                    }
                    WriteEffect::LoseAnswer(code) => lose_answer = Some(code),
                }
                break;
            }
        }
    }
    let response = match forward(&shared, req).await {
        Ok(r) => r,
        Err(e) => {
            return status(
                502,
                "InternalError",
                &format!("proxy: upstream failed: {e}"),
            );
        }
    };
    shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    if let Some(code) = lose_answer {
        shared.stats.answers_lost.fetch_add(1, Ordering::Relaxed);
        return status(code, reason_of(code), "injected: the answer was lost");
    }
    if watch {
        return watch_with_faults(shared, response, faults.cut_watches_after);
    }
    response.map(|b| b.map_err(|e| Box::new(e) as _).boxed_unsync())
}

async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
) -> anyhow::Result<Response<kube::client::Body>> {
    let (mut parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    // The upstream client sets its own host, authorization and framing.
    for header in [
        http::header::HOST,
        http::header::AUTHORIZATION,
        http::header::CONNECTION,
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
    ] {
        parts.headers.remove(header);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = path.parse()?;
    let request = Request::from_parts(parts, kube::client::Body::from(bytes));
    Ok(shared.upstream.send(request).await?)
}

/// A watch's body, paused while `pause_watches_until` is ahead and ended after `cut_after`.
fn watch_with_faults(
    shared: Arc<Shared>,
    response: Response<kube::client::Body>,
    cut_after: Option<Duration>,
) -> Response<ProxyBody> {
    let (parts, body) = response.into_parts();
    let frames = body.into_data_stream();
    let deadline = cut_after.map(|d| tokio::time::Instant::now() + d);
    let stream = futures::stream::unfold(
        (frames, shared, deadline),
        move |(mut frames, shared, deadline)| async move {
            let next = match deadline {
                Some(at) => match tokio::time::timeout_at(at, frames.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        shared.stats.watches_cut.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                },
                None => frames.next().await,
            };
            let chunk = next?;
            // Hold the event back while watches are paused.
            while let Some(until) = shared.faults().pause_watches_until {
                if Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some((
                chunk
                    .map(Frame::data)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                (frames, shared, deadline),
            ))
        },
    );
    Response::from_parts(parts, BodyExt::boxed_unsync(StreamBody::new(stream)))
}
