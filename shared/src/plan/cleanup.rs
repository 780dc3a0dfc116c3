//! Deletion: remove our PipelineRun (cancelling it if it runs), deliver the audit events the
//! execution owes — a running one's cancellation among them — then release the finalizer.

use crate::api::names::FINALIZER;
use crate::api::{AuditEventType, Phase, WorkflowExecution};
use crate::audit::{self as events, AuditEvent};
use crate::tekton::ownership::{Holder, Owner};

use super::audit::{Outcome, build, deletion_grace_over};
use super::outcome::{Event, EventReason, EventType};
use super::{Context, Done, Effect, Plan, Seen, Step, current};

pub(super) fn holds_finalizer(wfe: &WorkflowExecution) -> bool {
    wfe.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let exec_ns = ctx.execution_namespace;
    if seen.done.contains(&Done::FinalizerRemoved) {
        return Step::Finish(deleted(seen, ctx));
    }
    if !holds_finalizer(wfe) {
        // Not ours to clean up (or already done by an earlier reconcile).
        return Step::Finish(Plan::default());
    }
    if let Some(Done::Failed(error)) = seen.done.iter().find(|d| matches!(d, Done::Failed(_))) {
        let name = seen.run.map(|r| r.name()).unwrap_or_default();
        return Step::Finish(Plan {
            events: vec![Event::about(
                EventType::Warning,
                EventReason::CleanupFailed,
                format!("cannot delete PipelineRun {exec_ns}/{name}: {error}"),
            )],
            failed: true,
            ..Plan::default()
        });
    }
    let run_handled = seen
        .done
        .iter()
        .any(|d| matches!(d, Done::Deleted(_) | Done::Gone(_)));
    match seen.run {
        Some(run) if !run_handled && run.holder(&Owner::of(wfe)) == Holder::Ours => {
            Step::Act(Effect::DeletePipelineRun {
                name: run.name().to_owned(),
                uid: run.identity.uid.clone(),
            })
        }
        _ => audit_then_release(wfe, seen, ctx),
    }
}

/// The events a deleted execution owes: those its status lists, and the cancellation of a
/// running workflow.
fn owed_on_deletion(wfe: &WorkflowExecution) -> Vec<AuditEvent> {
    let status = current(wfe);
    let mut events = build(wfe, &status, &status.audit_pending);
    if let (Phase::Running, Some(at)) = (status.phase, &wfe.metadata.deletion_timestamp) {
        events.push(events::cancelled(wfe, at.clone()));
    }
    events
}

/// The audit events first (the finalizer keeps the execution, and so what it owes, until they
/// are delivered or the grace is over), then the finalizer.
fn audit_then_release(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let owed = owed_on_deletion(wfe);
    let types: Vec<AuditEventType> = owed.iter().map(|e| e.event_type).collect();
    let o = Outcome::of(seen);
    let send = o.to_send(&types);
    if !send.is_empty() {
        let events = owed
            .into_iter()
            .filter(|e| send.contains(&e.event_type))
            .collect();
        return Step::Act(Effect::Deliver(events));
    }
    match o.deferred {
        Some((retry_after, _))
            if !o.unsettled(&types).is_empty() && !deletion_grace_over(wfe, ctx) =>
        {
            Step::Finish(Plan {
                requeue: Some(retry_after),
                ..Plan::default()
            })
        }
        _ => Step::Act(Effect::RemoveFinalizer),
    }
}

/// The Event once the finalizer is gone.
fn deleted(seen: &Seen<'_>, ctx: &Context<'_>) -> Plan {
    let exec_ns = ctx.execution_namespace;
    let removed = seen.done.iter().find_map(|d| match d {
        Done::Deleted(name) => Some(name),
        _ => None,
    });
    let note = match removed {
        Some(name) => {
            format!("deleted; PipelineRun {exec_ns}/{name} removed (cancelled if it was running)")
        }
        None => "deleted; no PipelineRun of this execution to remove".to_owned(),
    };
    let mut events = vec![Event::about(
        EventType::Normal,
        EventReason::WorkflowExecutionDeleted,
        note,
    )];
    let o = Outcome::of(seen);
    let lost = match (&o.deferred, &o.detail) {
        (Some((_, reason)), _) => Some(format!(
            "not delivered within the grace of {} after the deletion: {reason}",
            crate::admission::duration::format_duration(ctx.audit_deletion_grace)
        )),
        (None, Some(detail)) => Some(format!("refused: {detail}")),
        _ => None,
    };
    if let Some(why) = lost {
        events.push(Event::about(
            EventType::Warning,
            EventReason::AuditDropped,
            format!("audit events of this execution were lost, {why}"),
        ));
    }
    Plan {
        events,
        ..Plan::default()
    }
}
