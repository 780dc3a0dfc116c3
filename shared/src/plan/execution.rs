//! Pending and Running: create (or adopt) the PipelineRun, follow it, and write one status per
//! transition.

use std::time::Duration;

use crate::admission::validation::validate;
use crate::api::names::FINALIZER;
use crate::api::{Phase, WorkflowExecution, WorkflowExecutionStatus};
use crate::status::desired::{self, Observation, desired_status};
use crate::status::phase;
use crate::tekton::builder::build;
use crate::tekton::observed::ObservedRun;
use crate::tekton::ownership::{Holder, Owner};

use super::outcome::{CreateResult, Metric};
use super::transition::{event, seconds, start_condition, transition_line};
use super::{Context, Done, Effect, Plan, Seen, Step, current};

pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let before = current(wfe);
    match before.phase {
        Phase::Pending => pending(wfe, seen, ctx),
        _ => running(wfe, seen, ctx),
    }
}

/// What the created (or found) PipelineRun means for a Pending execution.
struct Created<'a> {
    observation: Observation<'a>,
    result: CreateResult,
}

fn pending(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let me = Owner::of(wfe);
    for done in seen.done {
        let created = match done {
            Done::Created(name) => Created {
                observation: Observation::PipelineRunCreated {
                    name,
                    adopted: false,
                },
                result: CreateResult::Created,
            },
            Done::NameTaken(run) => taken(run, &me),
            Done::Failed(_) => {
                return Step::Finish(Plan {
                    metrics: vec![Metric::PipelineRun(CreateResult::Error)],
                    failed: true,
                    ..Plan::default()
                });
            }
            _ => continue,
        };
        return Step::Finish(transition(
            wfe,
            created.observation,
            Some(created.result),
            ctx,
        ));
    }
    // Validated once, before the first effect: the spec is immutable, so once an effect was
    // carried out it was valid.
    let report = validate(wfe);
    if !report.is_valid() {
        return Step::Finish(transition(
            wfe,
            Observation::InvalidSpec(&report),
            None,
            ctx,
        ));
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
    // A cached run of ours is adopted at once. Any other cached answer (another execution's run,
    // possibly already deleted) is confirmed by the API server: the create either succeeds or says
    // who holds the name now.
    if let Some(run) = seen.run.filter(|r| r.holder(&me) == Holder::Ours) {
        let created = taken(run, &me);
        return Step::Finish(transition(
            wfe,
            created.observation,
            Some(created.result),
            ctx,
        ));
    }
    Step::Act(Effect::CreatePipelineRun(Box::new(build(
        wfe,
        ctx.execution_namespace,
    ))))
}

/// The name is taken: by us (adopt), by another execution (its lock), or by nobody we know.
fn taken<'a>(run: &'a ObservedRun, me: &Owner) -> Created<'a> {
    let name = run.name();
    match (run.holder(me), run.owner.as_ref()) {
        (Holder::Ours, _) => Created {
            observation: Observation::PipelineRunCreated {
                name,
                adopted: true,
            },
            result: CreateResult::Adopted,
        },
        (Holder::Another(_), Some(owner)) => Created {
            observation: Observation::LockedBy {
                pipeline_run: name,
                holder_namespace: &owner.namespace,
                holder_name: &owner.name,
            },
            result: CreateResult::Locked,
        },
        _ => Created {
            observation: Observation::UnownedPipelineRun { name },
            result: CreateResult::Unowned,
        },
    }
}

fn running(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let observation = match seen.run {
        Some(run) => Observation::PipelineRun {
            run,
            task_runs: seen.task_runs,
        },
        // Running without a PipelineRun (reference), or it is gone.
        None => Observation::PipelineRunMissing,
    };
    Step::Finish(transition(wfe, observation, None, ctx))
}

/// The plan for the status `observation` leads to: one write when it changed, the Event, log line
/// and metrics of a phase transition, and the requeue for what no watch event announces.
fn transition(
    wfe: &WorkflowExecution,
    observation: Observation<'_>,
    created: Option<CreateResult>,
    ctx: &Context<'_>,
) -> Plan {
    let before = current(wfe);
    let after = desired_status(wfe, observation, &ctx.desired());
    let mut plan = Plan {
        requeue: requeue(wfe, &after, ctx),
        metrics: created.map(Metric::PipelineRun).into_iter().collect(),
        ..Plan::default()
    };
    // The terminal guard is the state machine: a terminal status is final (the cached copy of a
    // terminal execution is trimmed, too) and no write takes a transition it forbids.
    let legal = !before.phase.is_terminal() && phase::transition(before.phase, after.phase).is_ok();
    if after == before || !legal {
        return plan;
    }
    if before.phase != after.phase {
        let adopted = matches!(
            observation,
            Observation::PipelineRunCreated { adopted: true, .. }
        );
        let invalid = matches!(observation, Observation::InvalidSpec(_));
        let event = event(wfe, &after, adopted, invalid, ctx);
        plan.log.push(transition_line(before.phase, &after, &event));
        plan.events.push(event);
        if after.phase.is_terminal() {
            plan.metrics.push(Metric::Finished {
                outcome: after.phase,
                seconds: seconds(&after),
            });
        }
    } else if let Some(c) = start_condition(&after) {
        // Running -> Running: TektonPipelineRunning turned False or recovered.
        plan.log.push(c);
    }
    plan.status = Some(after);
    plan
}

/// Requeue for what no watch event announces: a Running execution's start timeout and deadline.
/// Returned by every reconcile of a Running execution, written or not: a trigger that merely
/// re-runs the reconcile replaces the scheduled requeue, so each reconcile must schedule it again.
fn requeue(
    wfe: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
    ctx: &Context<'_>,
) -> Option<Duration> {
    let (Phase::Running, Some(start)) = (status.phase, &status.start_time) else {
        return None;
    };
    let now = ctx.now.as_second();
    let until = |plus: Duration| -> Duration {
        let due = start.0.as_second() as f64 + plus.as_secs_f64();
        Duration::from_secs_f64((due - now as f64).max(1.0))
    };
    let deadline = until(desired::execution_timeout(wfe) + ctx.deadline_grace);
    // While the start timeout lies ahead it comes first (a no-op if the run has started by then).
    let since_start = (now - start.0.as_second()) as f64;
    let start_check =
        (since_start < ctx.start_timeout.as_secs_f64()).then(|| until(ctx.start_timeout));
    Some(start_check.map_or(deadline, |check| check.min(deadline)))
}
