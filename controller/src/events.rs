//! Publishes the Events a plan decided on, after the write they report.
//!
//! Each Event is named after what it reports — the object's uid, the reason and the note — so that
//! publishing it again is a no-op (`AlreadyExists`): a publish whose answer was lost, or that failed
//! on a transient error, is retried without ever showing twice.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use wfe_shared::WorkflowExecution;
use wfe_shared::plan;

use crate::context::Context;
use crate::error::is_transient;

/// Waits before the second and third attempt of a publish.
const RETRY_AFTER: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// Publishes each Event about `wfe`. An Event reports a write already made, so it is published
/// even if leadership was lost since; a transient failure is retried (the name makes a repeat
/// impossible), anything else is logged.
pub async fn publish(events: &[plan::Event], wfe: &WorkflowExecution, ctx: &Context) {
    let reference = wfe.object_ref(&());
    for e in events {
        let about = e.regarding.as_ref().unwrap_or(&reference);
        let event = k8s_event(e, about, ctx);
        let api: Api<K8sEvent> = Api::namespaced(
            ctx.client.clone(),
            about.namespace.as_deref().unwrap_or("default"),
        );
        let mut attempt = 0;
        let result = loop {
            match api.create(&PostParams::default(), &event).await {
                Err(kube::Error::Api(s)) if s.code == 409 => break Ok(false),
                Err(err) if is_transient(&err) && attempt < RETRY_AFTER.len() => {
                    tokio::time::sleep(RETRY_AFTER[attempt]).await;
                    attempt += 1;
                }
                other => break other.map(|_| true),
            }
        };
        let reason = e.reason.as_str();
        match result {
            Ok(true) => {
                ctx.metrics.events.inc();
                ctx.at(crate::hooks::Point::AfterEvent).await;
            }
            Ok(false) => {
                tracing::debug!(name = %wfe.name_any(), reason, "event already published")
            }
            Err(err) => {
                tracing::warn!(name = %wfe.name_any(), reason, error = %err, "cannot publish event")
            }
        }
    }
}

/// The Event as the API stores it, named `<object>.<hash of uid, reason and note>`.
fn k8s_event(e: &plan::Event, about: &ObjectReference, ctx: &Context) -> K8sEvent {
    let reason = e.reason.as_str();
    let mut hash = Sha256::new();
    for part in [
        about.uid.as_deref().unwrap_or_default(),
        reason,
        e.note.as_str(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let suffix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let object = about.name.as_deref().unwrap_or("workflowexecution");
    // Names are at most 253 characters; ours are far shorter (execution names are DNS labels).
    let object: String = object.chars().take(200).collect();
    K8sEvent {
        action: Some(reason.to_owned()),
        reason: Some(reason.to_owned()),
        event_time: Some(MicroTime(Timestamp::now())),
        regarding: Some(about.clone()),
        note: Some(e.note.clone()),
        metadata: ObjectMeta {
            name: Some(format!("{object}.{suffix}")),
            namespace: about.namespace.clone(),
            ..ObjectMeta::default()
        },
        reporting_controller: Some(ctx.reporter.controller.clone()),
        reporting_instance: Some(
            ctx.reporter
                .instance
                .clone()
                .unwrap_or_else(|| ctx.reporter.controller.clone()),
        ),
        type_: Some(
            match e.type_ {
                plan::EventType::Normal => "Normal",
                plan::EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        ..K8sEvent::default()
    }
}
