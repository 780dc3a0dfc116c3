//! Running: follow the PipelineRun and write one status per transition; and the transition itself,
//! which Pending's plan ends with too.

use std::time::Duration;

use crate::api::{Phase, WorkflowExecution, WorkflowExecutionStatus};
use crate::audit;
use crate::safety::Carried;
use crate::status::desired::{self, Observation, desired_status};
use crate::status::phase;

use super::outcome::{CreateResult, Metric};
use super::transition::{event, seconds, start_condition, transition_line};
use super::{Context, Plan, Seen, Step, current};

pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let observation = match seen.run {
        Some(run) => Observation::PipelineRun {
            run,
            task_runs: seen.task_runs,
        },
        // Running without a PipelineRun (reference), or it is gone.
        None => Observation::PipelineRunMissing,
    };
    Step::Finish(transition(wfe, observation, None, None, ctx))
}

/// The plan for the status `observation` leads to: one write when it changed, the Event, log line
/// and metrics of a phase transition, and the requeue for what no watch event announces.
/// `carried` is the target's backoff bookkeeping, for a Pending execution.
pub(super) fn transition(
    wfe: &WorkflowExecution,
    observation: Observation<'_>,
    created: Option<CreateResult>,
    carried: Option<Carried>,
    ctx: &Context<'_>,
) -> Plan {
    let before = current(wfe);
    let mut after = desired_status(wfe, observation, &ctx.desired(carried));
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
        let audited = audit::transition_events(before.phase, after.phase, !invalid);
        super::audit::add_transition_events(&mut after, audited);
        let event = event(wfe, &after, adopted, invalid, ctx);
        plan.log.push(transition_line(before.phase, &after, &event));
        plan.events.push(event);
        if after.phase.is_terminal() {
            plan.metrics.push(Metric::Finished {
                outcome: after.phase,
                seconds: seconds(&after),
            });
        }
        if let (Phase::Failed, Some(d)) = (after.phase, after.failure_details.as_ref()) {
            plan.metrics.push(Metric::Failed(d.reason));
        }
        if let Some(d) = after.skip_details.as_ref() {
            plan.metrics.push(Metric::Skipped(d.reason));
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
