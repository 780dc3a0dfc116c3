//! The entry point of one reconcile: observe, ask the plan for the next step, carry it out, and on
//! a conflict re-read and plan again (keeping what the effects already did, so none is repeated).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use wfe_shared::WorkflowExecution;
use wfe_shared::plan::{self, Done, Plan, Step, Urgency};

use crate::context::Context;
use crate::effects::carry_out;
use crate::error::Error;
use crate::gate::Gate;
use crate::hooks::Point;
use crate::observe::observe;
use crate::writer::Writer;
use crate::{events, report};

/// A reconcile re-reads and plans again this many times on 409 before giving up until the next
/// event.
const MAX_ATTEMPTS: u32 = 5;
/// No plan needs more side effects than this in one reconcile. The longest: a Pending execution
/// without its finalizer whose create finds a finished execution's run (add the finalizer, create,
/// release the lock, create again, deliver the audit events) — five; cleanup takes three.
const MAX_EFFECTS: usize = 6;

/// The controller loop's entry point for one due object: waits for a slot (work under way before
/// new work), then reconciles the object as the cache holds it by then.
pub async fn when_due(
    wfe: Arc<WorkflowExecution>,
    ctx: Arc<Context>,
    gate: Gate,
) -> Result<Action, Error> {
    // As this controller last wrote it: a PipelineRun that finished right after the Running write
    // makes the execution due while the cache may still read Pending.
    let urgency = Urgency::of(&ctx.own_writes.freshest(wfe.clone()));
    let waiting = Instant::now();
    let _slot = gate.enter(urgency).await;
    ctx.metrics
        .reconcile_wait
        .with_label_values(&[urgency.as_str()])
        .observe(waiting.elapsed().as_secs_f64());
    // It may have changed, or gone, while it waited.
    let Some(wfe) = ctx.targets.latest(&wfe) else {
        return Ok(Action::await_change());
    };
    // Boxed: a waiting reconcile stays small (a backlog of 10,000 waits here).
    Box::pin(reconcile(wfe, ctx)).await
}

/// One reconcile of one object.
pub async fn reconcile(wfe: Arc<WorkflowExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    let wfe = ctx.own_writes.freshest(wfe);
    let phase = wfe.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[phase.as_str()])
        .start_timer();
    let result = reconcile_object(&wfe, &ctx).await;
    timer.observe_duration();
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[label]).inc();
    result
}

/// Requeue policy after an error: conflicts and leadership loss are normal and quiet.
pub fn error_policy(wfe: Arc<WorkflowExecution>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::NotLeader => {
            tracing::debug!(name = %wfe.name_any(), "not leading; dropping reconcile")
        }
        e => {
            tracing::warn!(namespace = ?wfe.namespace(), name = %wfe.name_any(), error = %e, "reconcile failed; retrying")
        }
    }
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_object(wfe: &WorkflowExecution, ctx: &Context) -> Result<Action, Error> {
    let ns = wfe
        .namespace()
        .ok_or_else(|| Error::NoNamespace(wfe.name_any()))?;
    let api: Api<WorkflowExecution> = Api::namespaced(ctx.client.clone(), &ns);
    let mut current = wfe.clone();
    // What the effects did, across conflict retries: a retry never repeats one.
    let mut done: Vec<Done> = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        match attempt_once(&api, wfe, &mut current, &mut done, ctx).await {
            Err(e) if e.is_conflict() => {
                ctx.metrics
                    .status_writes
                    .with_label_values(&["conflict"])
                    .inc();
                tracing::debug!(name = %current.name_any(), attempt, "write conflicted; re-reading");
                let fresh = match e {
                    Error::StatusConflict(fresh) => *fresh,
                    _ => api.get(&current.name_any()).await?,
                };
                // What the effects did speaks for the re-read object only in the same part of
                // the plan (e.g. not once it is being deleted).
                if !plan::same_branch(&current, &fresh) {
                    done.clear();
                }
                current = fresh;
            }
            result => return result,
        }
    }
    Err(Error::Conflicts(MAX_ATTEMPTS))
}

/// Observes, then walks the plan: each effect is carried out and its result planned with, until the
/// plan is finished and carried out.
async fn attempt_once(
    api: &Api<WorkflowExecution>,
    cached: &WorkflowExecution,
    current: &mut WorkflowExecution,
    done: &mut Vec<Done>,
    ctx: &Context,
) -> Result<Action, Error> {
    let observed = observe(current, ctx).await?;
    loop {
        match plan::plan(current, &observed.seen(done), &ctx.plan_context()) {
            Step::Act(effect) => {
                if done.len() >= MAX_EFFECTS {
                    return Err(Error::Runaway(MAX_EFFECTS));
                }
                let result = carry_out(effect, api, current, ctx).await?;
                let delivered = matches!(result, Done::Delivered(_));
                done.push(result);
                if delivered {
                    ctx.at(Point::AfterDelivery).await;
                }
            }
            Step::Finish(plan) => return finish(plan, api, cached, current, done, ctx).await,
        }
    }
}

/// The status write (a conflict goes back to the retry), then — only after it succeeded — the log
/// lines, metrics and Events, so a retry never repeats them.
async fn finish(
    plan: Plan,
    api: &Api<WorkflowExecution>,
    cached: &WorkflowExecution,
    current: &WorkflowExecution,
    done: &[Done],
    ctx: &Context,
) -> Result<Action, Error> {
    if let Some(status) = &plan.status {
        let written = match Writer::new(ctx).status(api, current, status).await {
            Ok(written) => written,
            Err(e) if e.is_conflict() => return Err(e),
            Err(e) => {
                ctx.metrics
                    .status_writes
                    .with_label_values(&["error"])
                    .inc();
                return Err(e);
            }
        };
        ctx.metrics
            .status_writes
            .with_label_values(&["written"])
            .inc();
        ctx.at(Point::AfterStatusWrite).await;
        let mut superseded = vec![cached.resource_version().unwrap_or_default()];
        superseded.extend(current.resource_version());
        superseded.dedup();
        ctx.own_writes.record(superseded, written);
    }
    report::log(&plan.log, current);
    report::count(&plan.metrics, &ctx.metrics);
    events::publish(&plan.events, current, ctx).await;
    if plan.failed {
        let refused = done.iter().rev().find_map(|d| match d {
            Done::Failed(e) => Some(e.clone()),
            _ => None,
        });
        return Err(Error::Refused(refused.unwrap_or_default()));
    }
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}
