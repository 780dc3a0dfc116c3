//! Delivery of audit events (SPEC 6). The plan says what to deliver; [`AuditSink::deliver`] sends
//! it — batched with whatever else queued while the previous request was in flight — and answers
//! with the result the plan records in the status (the outbox): delivered, deferred (the receiver
//! is unreachable or answered 5xx, 401 or 403: retried later, with backoff), or rejected (another
//! 4xx: not retried). Sinks: DataStorage's batch endpoint ([`http`]), or JSON lines on stdout or a
//! file ([`lines`]) when no URL is configured.

pub mod http;
pub mod lines;
mod sink;
mod token;

pub use sink::{AuditConfig, AuditSink, Transport, TransportError};
