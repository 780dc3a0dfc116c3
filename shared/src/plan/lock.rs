//! A finished execution's lock: Completed and Failed hold the target's PipelineRun for the
//! cooldown; then it is deleted and the target is free (Event `LockReleased`, once).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::admission::duration::format_duration;
use crate::api::{Phase, WorkflowExecution};
use crate::tekton::observed::ObservedRun;
use crate::tekton::ownership::Owner;

use super::outcome::{Event, EventReason, EventType};
use super::{Context, Done, Effect, Plan, Seen, Step};

/// True when `wfe` finished (Completed/Failed) with a PipelineRun and its cooldown is over.
pub fn lock_expired(wfe: &WorkflowExecution, now: Timestamp, cooldown: Duration) -> bool {
    let Some(s) = wfe.status.as_ref() else {
        return false;
    };
    let (Some(done), true) = (&s.completion_time, s.pipeline_run_ref.is_some()) else {
        return false;
    };
    matches!(s.phase, Phase::Completed | Phase::Failed)
        && now.as_second() >= done.0.as_second().saturating_add(cooldown.as_secs() as i64)
}

/// The lock of `wfe` is due for release: expired, and `run` (the PipelineRun it references) is
/// still its own and not already being deleted — not a later execution's run of the same name.
/// The lock sweep asks this of every cached execution; the plan acts on it.
pub fn lock_due(
    wfe: &WorkflowExecution,
    run: Option<&ObservedRun>,
    now: Timestamp,
    cooldown: Duration,
) -> bool {
    lock_expired(wfe, now, cooldown) && run.is_some_and(|r| r.is_lock_of(&Owner::of(wfe)))
}

pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    if let Some(done) = seen.done.iter().find(|d| !d.is_audit()) {
        return Step::Finish(match done {
            Done::Deleted(name) => Plan {
                events: vec![Event::about(
                    EventType::Normal,
                    EventReason::LockReleased,
                    format!(
                        "cooldown of {} over: deleted PipelineRun {}/{name}, target {} is free",
                        format_duration(ctx.rules.cooldown),
                        ctx.execution_namespace,
                        wfe.spec.target_resource
                    ),
                )],
                ..Plan::default()
            },
            // Gone, or replaced by another run of the same name: not ours to release.
            Done::Failed(_) => Plan {
                failed: true,
                ..Plan::default()
            },
            _ => Plan::default(),
        });
    }
    // Not yet due: the lock sweep asks again once the cooldown is over.
    match seen.run {
        Some(run) if lock_due(wfe, Some(run), ctx.now, ctx.rules.cooldown) => {
            Step::Act(Effect::DeletePipelineRun {
                name: run.name().to_owned(),
                uid: run.identity.uid.clone(),
            })
        }
        _ => Step::Finish(Plan::default()),
    }
}
