//! Publishes the Events a plan decided on, after the write they report.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType, Recorder};
use wfe_shared::WorkflowExecution;
use wfe_shared::plan;

use crate::context::Context;

/// Publishes each Event about `wfe`. An Event reports a write already made, so it is published
/// even if leadership was lost since; a failure to publish is logged, never retried (a retry could
/// only repeat it).
pub async fn publish(events: &[plan::Event], wfe: &WorkflowExecution, ctx: &Context) {
    if events.is_empty() {
        return;
    }
    // Each Event is published once, so no recorder — and no recorder cache, which would only
    // grow — is kept between reconciles.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reference = wfe.object_ref(&());
    for e in events {
        let reason = e.reason.as_str();
        let event = Event {
            type_: match e.type_ {
                plan::EventType::Normal => EventType::Normal,
                plan::EventType::Warning => EventType::Warning,
            },
            reason: reason.to_owned(),
            note: Some(e.note.clone()),
            action: reason.to_owned(),
            secondary: None,
        };
        let about = e.regarding.as_ref().unwrap_or(&reference);
        match recorder.publish(&event, about).await {
            Ok(()) => ctx.metrics.events.inc(),
            Err(err) => {
                tracing::warn!(name = %wfe.name_any(), reason, error = %err, "cannot publish event")
            }
        }
    }
}
