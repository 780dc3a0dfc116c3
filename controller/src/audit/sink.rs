//! The sink: a bounded queue of submissions and one sender task. The sender takes everything that
//! queued while its previous request was in flight and sends it as one batch (no waiting to fill
//! a batch), then answers every submitter. While the receiver fails it backs off, and submissions
//! are answered "deferred" at once instead of piling up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wfe_shared::api::AuditEventType;
use wfe_shared::audit::AuditEvent;
use wfe_shared::plan::Done;

use crate::metrics::Metrics;

/// Where and how to deliver.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// DataStorage's base URL; `None`: JSON lines to `file` (stdout when that is `None` too).
    pub url: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub timeout: Duration,
    pub file: Option<PathBuf>,
    /// Most events queued or in flight; more are deferred (and counted as dropped).
    pub buffer: usize,
    /// Most events in one request.
    pub batch_max: usize,
}

/// Why a batch was not delivered.
#[derive(Debug)]
pub enum TransportError {
    /// Unreachable, 5xx, 401 or 403: try again later.
    Retryable(String),
    /// Another 4xx: the receiver will not take these events (its problem detail).
    Rejected(String),
}

/// Sends one batch.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
}

struct Submission {
    events: Vec<AuditEvent>,
    reply: oneshot::Sender<Done>,
}

/// The receiver's recent failures: no request before `until`.
#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
    reason: String,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The audit sink of one controller.
pub struct AuditSink {
    queue: mpsc::UnboundedSender<Submission>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    backoff: Arc<Mutex<Backoff>>,
    metrics: Metrics,
}

impl AuditSink {
    /// The sink `config` asks for: DataStorage's batch endpoint when it has a URL, else JSON
    /// lines. Must be called within the runtime (it starts the sender task).
    pub fn from_config(config: &AuditConfig, metrics: Metrics) -> anyhow::Result<Arc<Self>> {
        Ok(match &config.url {
            Some(_) => Self::start(super::http::HttpTransport::new(config)?, config, metrics),
            None => Self::start(
                super::lines::LinesTransport::new(config.file.as_ref())?,
                config,
                metrics,
            ),
        })
    }

    /// Starts the sender task over `transport`.
    pub fn start<T: Transport>(transport: T, config: &AuditConfig, metrics: Metrics) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(AuditSink {
            queue,
            depth: Arc::default(),
            capacity: config.buffer.max(1),
            backoff: Arc::default(),
            metrics,
        });
        tokio::spawn(sender(
            transport,
            rx,
            config.batch_max.max(1),
            sink.depth.clone(),
            sink.backoff.clone(),
            sink.metrics.clone(),
        ));
        sink
    }

    /// Delivers `events` (one batch with whatever else is queued) and says what came of it.
    pub async fn deliver(&self, events: Vec<AuditEvent>) -> Done {
        let n = events.len();
        if let Some(deferred) = self.backing_off() {
            self.metrics
                .audit_events
                .with_label_values(&["deferred"])
                .inc_by(n as u64);
            return deferred;
        }
        let queued = self.depth.fetch_add(n, Ordering::SeqCst);
        if queued + n > self.capacity {
            self.depth.fetch_sub(n, Ordering::SeqCst);
            self.metrics.audit_dropped.inc_by(n as u64);
            return Done::AuditDeferred {
                retry_after: Duration::from_secs(1),
                reason: format!("the audit buffer is full ({} events)", self.capacity),
            };
        }
        self.metrics
            .audit_depth
            .set(self.depth.load(Ordering::SeqCst) as i64);
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Submission { events, reply }).is_err() {
            self.depth.fetch_sub(n, Ordering::SeqCst);
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    fn backing_off(&self) -> Option<Done> {
        let b = self.backoff.lock().ok()?;
        let remaining = b.until?.checked_duration_since(Instant::now())?;
        Some(Done::AuditDeferred {
            retry_after: remaining.max(Duration::from_millis(100)),
            reason: b.reason.clone(),
        })
    }
}

fn stopped() -> Done {
    Done::AuditDeferred {
        retry_after: Duration::from_secs(1),
        reason: "the audit sender stopped".into(),
    }
}

fn types(events: &[AuditEvent]) -> Vec<AuditEventType> {
    events.iter().map(|e| e.event_type).collect()
}

async fn sender<T: Transport>(
    transport: T,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    batch_max: usize,
    depth: Arc<AtomicUsize>,
    backoff: Arc<Mutex<Backoff>>,
    metrics: Metrics,
) {
    while let Some(first) = rx.recv().await {
        // Everything that queued while the previous request was in flight.
        let mut batch = vec![first];
        let mut size = batch[0].events.len();
        while size < batch_max {
            match rx.try_recv() {
                Ok(s) => {
                    size += s.events.len();
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        // Queued while the previous request failed: not sent before the backoff is over.
        let waiting = backoff.lock().ok().and_then(|b| {
            let remaining = b.until?.checked_duration_since(Instant::now())?;
            Some((remaining, b.reason.clone()))
        });
        if let Some((retry_after, reason)) = waiting {
            for s in batch {
                let n = s.events.len();
                metrics
                    .audit_events
                    .with_label_values(&["deferred"])
                    .inc_by(n as u64);
                depth.fetch_sub(n, Ordering::SeqCst);
                let _ = s.reply.send(Done::AuditDeferred {
                    retry_after,
                    reason: reason.clone(),
                });
            }
            metrics.audit_depth.set(depth.load(Ordering::SeqCst) as i64);
            continue;
        }
        let all: Vec<AuditEvent> = batch.iter().flat_map(|s| s.events.clone()).collect();
        let started = Instant::now();
        let result = transport.send(&all).await;
        metrics
            .audit_request_duration
            .observe(started.elapsed().as_secs_f64());
        let answers: Vec<Done> = match result {
            Ok(()) => {
                reset(&backoff);
                batch
                    .iter()
                    .map(|s| Done::Delivered(types(&s.events)))
                    .collect()
            }
            Err(TransportError::Retryable(reason)) => {
                let retry_after = back_off(&backoff, &reason);
                tracing::warn!(%reason, events = all.len(), retry_in = ?retry_after, "audit delivery failed; retrying later");
                batch
                    .iter()
                    .map(|_| Done::AuditDeferred {
                        retry_after,
                        reason: reason.clone(),
                    })
                    .collect()
            }
            // One submission's refusal must not cost the others theirs: each alone, then.
            Err(TransportError::Rejected(detail)) if batch.len() > 1 => {
                let mut answers = Vec::with_capacity(batch.len());
                for s in &batch {
                    answers.push(match transport.send(&s.events).await {
                        Ok(()) => Done::Delivered(types(&s.events)),
                        Err(TransportError::Rejected(d)) => Done::AuditRejected {
                            types: types(&s.events),
                            detail: d,
                        },
                        Err(TransportError::Retryable(reason)) => Done::AuditDeferred {
                            retry_after: back_off(&backoff, &reason),
                            reason,
                        },
                    });
                }
                tracing::debug!(%detail, "a batch was refused; sent each submission alone");
                answers
            }
            Err(TransportError::Rejected(detail)) => {
                tracing::warn!(%detail, events = all.len(), "the audit service refused events");
                vec![Done::AuditRejected {
                    types: types(&all),
                    detail,
                }]
            }
        };
        for (s, answer) in batch.into_iter().zip(answers) {
            let n = s.events.len();
            let label = match &answer {
                Done::Delivered(_) => "delivered",
                Done::AuditRejected { .. } => "rejected",
                _ => "deferred",
            };
            metrics
                .audit_events
                .with_label_values(&[label])
                .inc_by(n as u64);
            depth.fetch_sub(n, Ordering::SeqCst);
            let _ = s.reply.send(answer);
        }
        metrics.audit_depth.set(depth.load(Ordering::SeqCst) as i64);
    }
}

fn reset(backoff: &Mutex<Backoff>) {
    if let Ok(mut b) = backoff.lock() {
        *b = Backoff::default();
    }
}

/// Records a failure and returns how long to wait: 0.5 s, doubling, at most 30 s.
fn back_off(backoff: &Mutex<Backoff>, reason: &str) -> Duration {
    let Ok(mut b) = backoff.lock() else {
        return BACKOFF_FIRST;
    };
    b.failures = b.failures.saturating_add(1);
    let wait = BACKOFF_FIRST
        .saturating_mul(1u32 << (b.failures - 1).min(6))
        .min(BACKOFF_MAX);
    b.until = Some(Instant::now() + wait);
    b.reason = reason.to_owned();
    wait
}
