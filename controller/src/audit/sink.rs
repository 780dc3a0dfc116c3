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
    /// Unreachable, 5xx, 401, 403, 408 or 429: try again later.
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
        metrics.audit_capacity.set(config.buffer.max(1) as i64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use wfe_shared::api::AuditEventType as T;
    use wfe_shared::audit::build;
    use wfe_shared::fixtures::execution;

    /// A transport that answers from a script and records every batch it was given; while
    /// `gate` is closed each request waits for a permit, so tests can let work queue up.
    #[derive(Clone, Default)]
    struct Scripted {
        answers: Arc<Mutex<Vec<Result<(), TransportError>>>>,
        batches: Arc<Mutex<Vec<usize>>>,
        gate: Option<Arc<tokio::sync::Semaphore>>,
        entered: Arc<AtomicUsize>,
    }

    impl Transport for Scripted {
        async fn send(&self, events: &[AuditEvent]) -> Result<(), TransportError> {
            self.entered.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate").forget();
            }
            self.batches.lock().unwrap().push(events.len());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        }
    }

    /// Waits (at most 5 s) until `done` holds: no fixed sleeps racing the sender task.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never: {what}");
    }

    /// A sink over a transport whose requests wait for `gate` permits.
    fn gated(
        buffer: usize,
    ) -> (
        Scripted,
        Arc<tokio::sync::Semaphore>,
        Metrics,
        Arc<AuditSink>,
    ) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let t = Scripted {
            gate: Some(gate.clone()),
            ..Scripted::default()
        };
        let metrics = Metrics::new().unwrap();
        let sink = AuditSink::start(t.clone(), &config(buffer), metrics.clone());
        (t, gate, metrics, sink)
    }

    /// Delivers `n` events of execution `name` in the background.
    fn deliver(sink: &Arc<AuditSink>, name: &str, n: usize) -> tokio::task::JoinHandle<Done> {
        let (sink, events) = (sink.clone(), events(name, n));
        tokio::spawn(async move { sink.deliver(events).await })
    }

    fn config(buffer: usize) -> AuditConfig {
        AuditConfig {
            url: None,
            ca_file: None,
            token_file: None,
            timeout: Duration::from_secs(5),
            file: None,
            buffer,
            batch_max: 500,
        }
    }

    fn events(name: &str, n: usize) -> Vec<AuditEvent> {
        let wfe = execution(name).build();
        [
            T::SelectionCompleted,
            T::ExecutionStarted,
            T::WorkflowCompleted,
        ][..n]
            .iter()
            .map(|t| build(&wfe, *t))
            .collect()
    }

    #[tokio::test]
    async fn what_queues_during_a_request_goes_out_together_in_the_next() {
        let (t, gate, metrics, sink) = gated(100);
        let first = deliver(&sink, "a", 1);
        until("the first request", || {
            t.entered.load(Ordering::SeqCst) == 1
        })
        .await;
        let (second, third) = (deliver(&sink, "b", 2), deliver(&sink, "c", 3));
        until("all queued or in flight", || metrics.audit_depth.get() == 6).await;
        gate.add_permits(2);
        assert!(matches!(first.await.unwrap(), Done::Delivered(t) if t.len() == 1));
        assert!(matches!(second.await.unwrap(), Done::Delivered(t) if t.len() == 2));
        assert!(matches!(third.await.unwrap(), Done::Delivered(t) if t.len() == 3));
        assert_eq!(
            *t.batches.lock().unwrap(),
            [1, 5],
            "one request, then one batch"
        );
        assert_eq!(metrics.audit_depth.get(), 0);
        assert_eq!(
            metrics.audit_events.with_label_values(&["delivered"]).get(),
            6
        );
    }

    #[tokio::test]
    async fn a_full_buffer_defers_at_once_and_counts_the_drop() {
        let (t, gate, metrics, sink) = gated(3);
        let held = deliver(&sink, "a", 2);
        until("the first request", || {
            t.entered.load(Ordering::SeqCst) == 1
        })
        .await;
        // Two in flight, capacity three: two more do not fit, one does.
        let full = sink.deliver(events("b", 2)).await;
        assert!(
            matches!(&full, Done::AuditDeferred { reason, .. } if reason == "the audit buffer is full (3 events)"),
            "{full:?}"
        );
        assert_eq!(metrics.audit_dropped.get(), 2);
        let fits = deliver(&sink, "c", 1);
        gate.add_permits(2);
        assert!(matches!(held.await.unwrap(), Done::Delivered(_)));
        assert!(matches!(fits.await.unwrap(), Done::Delivered(_)));
        assert_eq!(metrics.audit_dropped.get(), 2);
    }

    #[tokio::test]
    async fn a_retryable_failure_backs_off_and_nothing_is_sent_until_it_is_over() {
        let t = Scripted::default();
        t.answers
            .lock()
            .unwrap()
            .push(Err(TransportError::Retryable(
                "503 Service Unavailable".into(),
            )));
        let metrics = Metrics::new().unwrap();
        let sink = AuditSink::start(t.clone(), &config(100), metrics.clone());
        let failed = sink.deliver(events("a", 3)).await;
        assert!(
            matches!(&failed, Done::AuditDeferred { retry_after, reason } if *retry_after == BACKOFF_FIRST && reason.contains("503")),
            "{failed:?}"
        );
        // While backing off: deferred at once, no request.
        let waiting = sink.deliver(events("b", 1)).await;
        assert!(matches!(waiting, Done::AuditDeferred { .. }), "{waiting:?}");
        assert_eq!(t.batches.lock().unwrap().len(), 1);
        tokio::time::sleep(BACKOFF_FIRST + Duration::from_millis(50)).await;
        assert!(matches!(
            sink.deliver(events("b", 1)).await,
            Done::Delivered(_)
        ));
        assert_eq!(
            metrics.audit_events.with_label_values(&["deferred"]).get(),
            4
        );
    }

    #[test]
    fn the_backoff_doubles_from_half_a_second_to_thirty() {
        let b = Mutex::new(Backoff::default());
        let waits: Vec<u64> = (0..9)
            .map(|_| back_off(&b, "down").as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        reset(&b);
        assert_eq!(back_off(&b, "down"), BACKOFF_FIRST);
    }

    #[tokio::test]
    async fn one_refused_submission_does_not_cost_the_others_their_delivery() {
        let (t, gate, metrics, sink) = gated(100);
        {
            let mut a = t.answers.lock().unwrap();
            a.push(Ok(())); // the first request
            a.push(Err(TransportError::Rejected("400 Bad Request: bad".into()))); // the batch
            a.push(Err(TransportError::Rejected("400 Bad Request: bad".into()))); // b alone
            a.push(Ok(())); // c alone
        }
        let first = deliver(&sink, "a", 1);
        until("the first request", || {
            t.entered.load(Ordering::SeqCst) == 1
        })
        .await;
        let (b, c) = (deliver(&sink, "b", 1), deliver(&sink, "c", 2));
        until("b and c queued", || metrics.audit_depth.get() == 4).await;
        gate.add_permits(4);
        assert!(matches!(first.await.unwrap(), Done::Delivered(_)));
        let refused = b.await.unwrap();
        assert!(
            matches!(&refused, Done::AuditRejected { detail, .. } if detail == "400 Bad Request: bad"),
            "{refused:?}"
        );
        assert!(matches!(c.await.unwrap(), Done::Delivered(t) if t.len() == 2));
        assert_eq!(*t.batches.lock().unwrap(), [1, 3, 1, 2]);
    }
}
