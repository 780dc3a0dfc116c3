//! Pending (SPEC 4, in order): validate; apply the safety rules; take the target's lock — first
//! releasing it from a finished execution if one still holds it — by creating the PipelineRun;
//! adopt our own run; and write the one status of the transition.

use std::time::Duration;

use kube::Resource;

use crate::admission::validation::validate;
use crate::api::WorkflowExecution;
use crate::api::names::FINALIZER;
use crate::safety::{self, Decision, History, Verdict};
use crate::status::desired::Observation;
use crate::tekton::builder::build;
use crate::tekton::observed::ObservedRun;
use crate::tekton::ownership::{Holder, Owner};

use super::execution::transition;
use super::outcome::{CreateResult, Event, EventReason, EventType, LogLevel, LogLine, Metric};
use super::{Context, Done, Effect, Plan, Seen, Step};

/// How soon to look again at a target whose finished run is still being deleted.
const DELETION_WAIT: Duration = Duration::from_secs(2);

pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let history = History::of(wfe, seen.history.iter().map(|w| &**w));
    // The last effect's result decides whether to go on.
    match seen.done.last() {
        Some(Done::Created(name)) => {
            let created = Observation::PipelineRunCreated {
                name,
                adopted: false,
            };
            return finish(wfe, created, CreateResult::Created, seen, &history, ctx);
        }
        Some(Done::NameTaken(run)) => return name_taken(wfe, run, seen, &history, ctx),
        Some(Done::Failed(_)) => {
            // Which effect was refused: the one this plan asks for without its result.
            let before = Seen {
                done: &seen.done[..seen.done.len() - 1],
                ..*seen
            };
            let create = matches!(
                plan(wfe, &before, ctx),
                Step::Act(Effect::CreatePipelineRun(_))
            );
            return Step::Finish(Plan {
                metrics: create
                    .then_some(Metric::PipelineRun(CreateResult::Error))
                    .into_iter()
                    .collect(),
                failed: true,
                ..Plan::default()
            });
        }
        _ => {}
    }
    // Validated before the first effect: the spec is immutable, so once an effect was carried
    // out it was valid.
    if seen.done.is_empty() {
        let report = validate(wfe);
        if !report.is_valid() {
            let invalid = Observation::InvalidSpec(&report);
            return Step::Finish(transition(wfe, invalid, None, None, ctx));
        }
    }
    // A cached run of ours is adopted at once, before the rules: it was created after they let
    // this execution through (a crash came between the create and the status write).
    if let Some(run) = seen
        .run
        .filter(|r| r.holder(&Owner::of(wfe)) == Holder::Ours)
    {
        let adopted = Observation::PipelineRunCreated {
            name: run.name(),
            adopted: true,
        };
        return finish(wfe, adopted, CreateResult::Adopted, seen, &history, ctx);
    }
    let Decision { verdict, carried } = safety::decide(wfe, &history, ctx.now, ctx.rules);
    if let Verdict::Skip(details) = &verdict {
        let skipped = Observation::Skipped(details);
        return Step::Finish(transition(wfe, skipped, None, Some(carried), ctx));
    }
    if !wfe
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
    {
        return Step::Act(Effect::AddFinalizer);
    }
    if let Some(run) = seen.run
        && !released(seen)
        && safety::releasable(run, &history).is_some()
    {
        return Step::Act(release(run));
    }
    // Any other cached answer (another execution's run, possibly already deleted) is confirmed
    // by the API server: the create either succeeds or says who holds the name now.
    Step::Act(Effect::CreatePipelineRun(Box::new(build(
        wfe,
        ctx.execution_namespace,
    ))))
}

/// The name is taken: by us (adopt), by a finished execution (release its lock, once), by one
/// that is going away (wait), by another execution (Skipped / ResourceBusy), or by nobody we know
/// (Failed).
fn name_taken(
    wfe: &WorkflowExecution,
    run: &ObservedRun,
    seen: &Seen<'_>,
    history: &History<'_>,
    ctx: &Context<'_>,
) -> Step {
    let name = run.name();
    let owner = match run.holder(&Owner::of(wfe)) {
        Holder::Ours => {
            let adopted = Observation::PipelineRunCreated {
                name,
                adopted: true,
            };
            return finish(wfe, adopted, CreateResult::Adopted, seen, history, ctx);
        }
        Holder::Unowned => {
            let unowned = Observation::UnownedPipelineRun { name };
            return finish(wfe, unowned, CreateResult::Unowned, seen, history, ctx);
        }
        Holder::Another(owner) => owner,
    };
    if run.identity.deletion_timestamp.is_some() {
        return Step::Finish(Plan {
            events: released_event(wfe, seen, history, ctx)
                .into_iter()
                .collect(),
            log: vec![LogLine::Note {
                level: LogLevel::Info,
                message: format!(
                    "PipelineRun {name} of {}/{} is being deleted; waiting for it to go",
                    owner.namespace, owner.name
                ),
            }],
            requeue: Some(DELETION_WAIT),
            ..Plan::default()
        });
    }
    if !released(seen) && safety::releasable(run, history).is_some() {
        return Step::Act(release(run));
    }
    let details = match history.owned_by(&owner) {
        Some(holder) => safety::busy(wfe, holder, Some(name), ctx.now),
        None => safety::locked_by(wfe, &owner, name, ctx.now),
    };
    finish(
        wfe,
        Observation::Skipped(&details),
        CreateResult::Locked,
        seen,
        history,
        ctx,
    )
}

/// The transition after a create (or its `AlreadyExists`), with the Event of a lock this
/// reconcile released first.
fn finish(
    wfe: &WorkflowExecution,
    observation: Observation<'_>,
    result: CreateResult,
    seen: &Seen<'_>,
    history: &History<'_>,
    ctx: &Context<'_>,
) -> Step {
    let carried = history.carried();
    let mut plan = transition(wfe, observation, Some(result), Some(carried), ctx);
    if let Some(event) = released_event(wfe, seen, history, ctx) {
        plan.events.insert(0, event);
    }
    Step::Finish(plan)
}

fn release(run: &ObservedRun) -> Effect {
    Effect::DeletePipelineRun {
        name: run.name().to_owned(),
        uid: run.identity.uid.clone(),
    }
}

/// A finished execution's lock was released (or found gone) in this reconcile: never twice.
fn released(seen: &Seen<'_>) -> bool {
    seen.done
        .iter()
        .any(|d| matches!(d, Done::Deleted(_) | Done::Gone(_)))
}

/// `LockReleased` about the finished execution whose run this reconcile deleted: the run a
/// refused create named, or else the cached one.
fn released_event(
    wfe: &WorkflowExecution,
    seen: &Seen<'_>,
    history: &History<'_>,
    ctx: &Context<'_>,
) -> Option<Event> {
    let i = seen
        .done
        .iter()
        .position(|d| matches!(d, Done::Deleted(_)))?;
    let run = seen.done[..i]
        .iter()
        .rev()
        .find_map(|d| match d {
            Done::NameTaken(run) => Some(&**run),
            _ => None,
        })
        .or(seen.run)?;
    let holder = history.owned_by(run.owner.as_ref()?)?;
    Some(Event {
        type_: EventType::Normal,
        reason: EventReason::LockReleased,
        note: format!(
            "released for WorkflowExecution {}/{} (workflow {}), which the safety rules let run: deleted PipelineRun {}/{}, target {}",
            wfe.metadata.namespace.as_deref().unwrap_or_default(),
            wfe.metadata.name.as_deref().unwrap_or_default(),
            wfe.spec.workflow_ref.workflow_id,
            ctx.execution_namespace,
            run.name(),
            wfe.spec.target_resource
        ),
        regarding: Some(holder.object_ref(&())),
    })
}
