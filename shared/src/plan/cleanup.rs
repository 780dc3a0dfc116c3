//! Deletion: remove our PipelineRun (cancelling it if it runs), then release the finalizer.

use crate::api::WorkflowExecution;
use crate::api::names::FINALIZER;
use crate::tekton::ownership::{Holder, Owner};

use super::outcome::{Event, EventReason, EventType};
use super::{Context, Done, Effect, Plan, Seen, Step};

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
    Plan {
        events: vec![Event::about(
            EventType::Normal,
            EventReason::WorkflowExecutionDeleted,
            note,
        )],
        ..Plan::default()
    }
}
