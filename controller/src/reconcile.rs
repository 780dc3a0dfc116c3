//! One reconcile of a WorkflowExecution: observe, decide (pure, in `wfe_shared::desired`), and write
//! the complete status in one request — or nothing when nothing changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use wfe_shared::api::{FailureReason, Phase};
use wfe_shared::desired::{self, Observation, desired_status};
use wfe_shared::duration::format_duration;
use wfe_shared::pipelinerun::{FINALIZER, build, is_owned_by};
use wfe_shared::tekton::{PipelineRun, TaskRun};
use wfe_shared::validation::validate;
use wfe_shared::{WorkflowExecution, WorkflowExecutionStatus};

use crate::cache::{CachedRun, PIPELINE_RUN_LABEL};
use crate::context::Context;

/// Status writes are retried this many times on 409 before giving up until the next event.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("WorkflowExecution {0} has no namespace")]
    NoNamespace(String),
    #[error("not the leader: write refused")]
    NotLeader,
    #[error("status write still conflicting after {0} attempts")]
    Conflicts(u32),
}

/// Who the API server records in `managedFields` for our writes.
pub const FIELD_MANAGER: &str = "workflowexecution-controller";

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(k) if is_kube_conflict(k))
}

fn is_kube_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Completed => "Completed",
        Phase::Failed => "Failed",
        Phase::Skipped => "Skipped",
    }
}

/// The controller's entry point for one object.
pub async fn reconcile(wfe: Arc<WorkflowExecution>, ctx: Arc<Context>) -> Result<Action, Error> {
    let wfe = ctx.own_writes.freshest(wfe);
    let phase = wfe.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[phase_name(phase)])
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
    // A PipelineRun this reconcile created: a retry after a conflict must not even try again.
    let mut created: Option<String> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        if current.metadata.deletion_timestamp.is_some() {
            return cleanup(&api, &current, ctx).await;
        }
        let before = current.status.clone().unwrap_or_default();
        // A stale cached object makes the finalizer patch conflict too: re-read, like a status conflict.
        let (desired, action) = match decide(&api, &mut current, &mut created, ctx).await {
            Ok(decided) => decided,
            Err(e) if is_conflict(&e) => {
                ctx.metrics
                    .status_writes
                    .with_label_values(&["conflict"])
                    .inc();
                tracing::debug!(name = %current.name_any(), attempt, "metadata write conflicted; re-reading");
                current = api.get(&current.name_any()).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        // A terminal status is final (and the cached copy of a terminal execution is trimmed): never
        // written again.
        if desired == before || before.phase.is_terminal() {
            return Ok(match desired.phase {
                Phase::Running => action_after(&current, &desired, ctx),
                _ => action,
            });
        }
        match write_status(&api, &current, &desired, ctx).await {
            Ok(written) => {
                let mut superseded = vec![wfe.resource_version().unwrap_or_default()];
                superseded.extend(current.resource_version());
                superseded.dedup();
                ctx.own_writes.record(superseded, written);
                on_transition(&current, &before, &desired, ctx).await;
                return Ok(action_after(&current, &desired, ctx));
            }
            Err(e) if is_conflict(&e) => {
                ctx.metrics
                    .status_writes
                    .with_label_values(&["conflict"])
                    .inc();
                tracing::debug!(name = %current.name_any(), attempt, "status write conflicted; re-reading");
                current = api.get(&current.name_any()).await?;
            }
            Err(e) => {
                ctx.metrics
                    .status_writes
                    .with_label_values(&["error"])
                    .inc();
                return Err(e);
            }
        }
    }
    Err(Error::Conflicts(MAX_ATTEMPTS))
}

/// Observes and decides. May create (or adopt) the PipelineRun and add the finalizer — both
/// idempotent, so a retry after a conflict never repeats them in effect.
async fn decide(
    api: &Api<WorkflowExecution>,
    current: &mut WorkflowExecution,
    created: &mut Option<String>,
    ctx: &Context,
) -> Result<(WorkflowExecutionStatus, Action), Error> {
    let status = current.status.clone().unwrap_or_default();
    let clock = desired::Context {
        now: ctx.now(),
        deadline_grace: ctx.settings.deadline_grace,
        start_timeout: ctx.settings.pipeline_start_timeout,
    };
    match status.phase {
        Phase::Pending => {
            let report = validate(current);
            if !report.is_valid() {
                let d = desired_status(current, Observation::InvalidSpec(&report), &clock);
                return Ok((d, Action::await_change()));
            }
            let outcome = match created.clone() {
                Some(name) => Created::New(name),
                None => ensure_pipeline_run(api, current, ctx).await?,
            };
            if let Created::New(name) = &outcome {
                *created = Some(name.clone());
            }
            let observation = match &outcome {
                Created::New(name) => Observation::PipelineRunCreated {
                    name,
                    adopted: false,
                },
                Created::Adopted(name) => Observation::PipelineRunCreated {
                    name,
                    adopted: true,
                },
                Created::LockedBy {
                    run,
                    namespace,
                    name,
                } => Observation::LockedBy {
                    pipeline_run: run,
                    holder_namespace: namespace,
                    holder_name: name,
                },
                Created::Unowned(name) => Observation::UnownedPipelineRun { name },
            };
            Ok((
                desired_status(current, observation, &clock),
                Action::await_change(),
            ))
        }
        Phase::Running => {
            let Some(name) = status.pipeline_run_ref.as_ref().map(|r| r.name.clone()) else {
                // Running without a PipelineRun reference cannot be followed.
                let d = desired_status(current, Observation::PipelineRunMissing, &clock);
                return Ok((d, Action::await_change()));
            };
            let d = match find_run(&name, ctx).await? {
                Some(run) => {
                    let task_runs = task_runs_of(&run, ctx).await?;
                    desired_status(
                        current,
                        Observation::PipelineRun {
                            run: &run,
                            task_runs: &task_runs,
                        },
                        &clock,
                    )
                }
                None => desired_status(current, Observation::PipelineRunMissing, &clock),
            };
            Ok((d, Action::await_change()))
        }
        Phase::Completed | Phase::Failed => {
            Ok((status.clone(), release_lock(current, &status, ctx).await?))
        }
        Phase::Skipped => Ok((status, Action::await_change())),
    }
}

/// The outcome of trying to create the PipelineRun.
enum Created {
    New(String),
    Adopted(String),
    LockedBy {
        run: String,
        namespace: String,
        name: String,
    },
    Unowned(String),
}

async fn ensure_pipeline_run(
    api: &Api<WorkflowExecution>,
    current: &mut WorkflowExecution,
    ctx: &Context,
) -> Result<Created, Error> {
    if !current.finalizers().iter().any(|f| f == FINALIZER) {
        if !ctx.is_leading() {
            return Err(Error::NotLeader);
        }
        let mut finalizers = current.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": current.resource_version()}});
        // The returned object carries the new resourceVersion the status write must use.
        *current = api
            .patch(&current.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    let exec_ns = &ctx.settings.execution_namespace;
    let desired = build(current, exec_ns);
    let name = desired.name_any();
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), exec_ns);
    // Here the name is taken (in the cache, or `AlreadyExists`): whose PipelineRun is it?
    // A cached run of ours is adopted at once. Any other cached answer (another execution's run,
    // possibly already deleted) is confirmed by the API server: the create either succeeds or says
    // who holds the name now.
    let ns = current.namespace().unwrap_or_default();
    let me = current.name_any();
    let cached = ctx
        .runs
        .get(&ObjectRef::new(&name).within(exec_ns))
        .filter(|run| run.is_owned_by(&ns, &me));
    let run = match cached {
        Some(run) => run,
        None => {
            if !ctx.is_leading() {
                return Err(Error::NotLeader);
            }
            match runs.create(&post_params(), &desired).await {
                Ok(_) => {
                    ctx.metrics
                        .pipeline_runs
                        .with_label_values(&["created"])
                        .inc();
                    return Ok(Created::New(name));
                }
                // The deterministic name is the lock: someone holds it. Who?
                Err(kube::Error::Api(s)) if s.code == 409 => Arc::new(
                    Api::<CachedRun>::namespaced(ctx.client.clone(), exec_ns)
                        .get(&name)
                        .await?,
                ),
                Err(e) => {
                    ctx.metrics
                        .pipeline_runs
                        .with_label_values(&["error"])
                        .inc();
                    return Err(e.into());
                }
            }
        }
    };
    let outcome = if run.is_owned_by(&ns, &me) {
        Created::Adopted(name)
    } else {
        match &run.owner {
            Some(owner) => Created::LockedBy {
                run: name,
                namespace: owner.namespace.clone(),
                name: owner.name.clone(),
            },
            None => Created::Unowned(name),
        }
    };
    let label = match outcome {
        Created::Adopted(_) => "adopted",
        Created::LockedBy { .. } => "locked",
        _ => "unowned",
    };
    ctx.metrics.pipeline_runs.with_label_values(&[label]).inc();
    Ok(outcome)
}

/// The PipelineRun from the cache, confirmed with a read when the cache does not have it (it may
/// simply not have seen it yet).
async fn find_run(name: &str, ctx: &Context) -> Result<Option<PipelineRun>, Error> {
    let exec_ns = &ctx.settings.execution_namespace;
    if let Some(run) = ctx.runs.get(&ObjectRef::new(name).within(exec_ns)) {
        return Ok(Some(run.to_pipeline_run()));
    }
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), exec_ns);
    Ok(runs.get_opt(name).await?)
}

/// The TaskRuns that explain a failed PipelineRun. From the cache when it already holds every
/// child of the run in a settled state; otherwise read fresh (a TaskRun's last update may reach the
/// cache after its PipelineRun's). Nothing is read for a PipelineRun that has not failed.
async fn task_runs_of(run: &PipelineRun, ctx: &Context) -> Result<Vec<TaskRun>, Error> {
    let Some(status) = run.status.as_ref() else {
        return Ok(Vec::new());
    };
    let failed =
        wfe_shared::failure::succeeded(&status.conditions).is_some_and(|c| c.status == "False");
    if !failed {
        return Ok(Vec::new());
    }
    let exec_ns = &ctx.settings.execution_namespace;
    let cached: Option<Vec<TaskRun>> = status
        .child_references
        .iter()
        .filter(|c| c.kind.as_deref().is_none_or(|k| k == "TaskRun"))
        .map(|c| {
            ctx.task_runs
                .get(&ObjectRef::new(&c.name).within(exec_ns))
                .filter(|tr| tr.is_finished())
                .map(|tr| tr.to_task_run())
        })
        .collect();
    if let Some(task_runs) = cached {
        return Ok(task_runs);
    }
    tracing::debug!(run = %run.name_any(), "TaskRuns not all settled in the cache; reading them");
    let api: Api<TaskRun> = Api::namespaced(ctx.client.clone(), exec_ns);
    let selector = format!("{PIPELINE_RUN_LABEL}={}", run.name_any());
    Ok(api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items)
}

/// One status write: the complete status replaces the old one (a PUT of the status subresource,
/// which the API server applies without the patch machinery), with the resourceVersion as
/// precondition (409 if stale). Returns the object as written.
async fn write_status(
    api: &Api<WorkflowExecution>,
    current: &WorkflowExecution,
    desired: &WorkflowExecutionStatus,
    ctx: &Context,
) -> Result<WorkflowExecution, Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeader);
    }
    // Only status is read from a status write; the rest of the object is kept as stored.
    let body = json!({
        "apiVersion": WorkflowExecution::api_version(&()),
        "kind": WorkflowExecution::kind(&()),
        "metadata": {
            "name": current.name_any(),
            "namespace": current.namespace(),
            "resourceVersion": current.resource_version(),
        },
        "status": desired,
    });
    let written = api
        .replace_subresource("status", &current.name_any(), &post_params(), &body)
        .await?;
    ctx.metrics
        .status_writes
        .with_label_values(&["written"])
        .inc();
    Ok(written)
}

/// Requeue for what no watch event announces: a Running execution's start timeout and deadline.
/// Returned by every reconcile of a Running execution, written or not: a trigger that merely
/// re-runs the reconcile replaces the scheduled requeue, so each reconcile must schedule it again.
fn action_after(
    wfe: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
    ctx: &Context,
) -> Action {
    let now = ctx.now();
    let until = |t: &Time, plus: Duration| -> Duration {
        let due = t.0.as_second() as f64 + plus.as_secs_f64();
        Duration::from_secs_f64((due - now.as_second() as f64).max(1.0))
    };
    let (Phase::Running, Some(start)) = (status.phase, &status.start_time) else {
        return Action::await_change();
    };
    let deadline = until(
        start,
        desired::execution_timeout(wfe) + ctx.settings.deadline_grace,
    );
    // While the start timeout lies ahead it comes first (a no-op if the run has started by then).
    let since_start = (now.as_second() - start.0.as_second()) as f64;
    let start_check = (since_start < ctx.settings.pipeline_start_timeout.as_secs_f64())
        .then(|| until(start, ctx.settings.pipeline_start_timeout));
    Action::requeue(start_check.map_or(deadline, |check| check.min(deadline)))
}

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

/// Completed/Failed hold the target's lock until the cooldown has passed; then the PipelineRun is
/// deleted (Event `LockReleased`, once: only a successful delete emits it).
async fn release_lock(
    wfe: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    let Some(run) = &status.pipeline_run_ref else {
        return Ok(Action::await_change());
    };
    let exec_ns = &ctx.settings.execution_namespace;
    let Some(cached) = ctx.runs.get(&ObjectRef::new(&run.name).within(exec_ns)) else {
        return Ok(Action::await_change());
    };
    // Someone else's run under this name (a later execution's), or already being deleted (another
    // finalizer holds it): nothing to release, and nothing to announce again.
    if !cached.is_lock_of(&wfe.namespace().unwrap_or_default(), &wfe.name_any()) {
        return Ok(Action::await_change());
    }
    // Not yet: the lock sweep (`run::expired_locks`) asks again once the cooldown is over.
    if !lock_expired(wfe, ctx.now(), ctx.settings.cooldown) {
        return Ok(Action::await_change());
    }
    if !ctx.is_leading() {
        return Err(Error::NotLeader);
    }
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), exec_ns);
    let delete = this_one(cached.metadata.uid.clone());
    match runs.delete(&run.name, &delete).await {
        Ok(_) => {
            publish(
                wfe,
                ctx,
                EventType::Normal,
                "LockReleased",
                format!(
                    "cooldown of {} over: deleted PipelineRun {exec_ns}/{}, target {} is free",
                    format_duration(ctx.settings.cooldown),
                    run.name,
                    wfe.spec.target_resource
                ),
            )
            .await;
        }
        // Gone, or replaced by another run of the same name (uid precondition): not ours to release.
        Err(e) if is_not_found(&e) || is_kube_conflict(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// A background delete of exactly the object with `uid`: a newer object of the same name is a 409.
fn this_one(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    }
}

/// Deletion: remove our PipelineRun (cancelling it if running), then release the finalizer.
async fn cleanup(
    api: &Api<WorkflowExecution>,
    wfe: &WorkflowExecution,
    ctx: &Context,
) -> Result<Action, Error> {
    if !wfe.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if !ctx.is_leading() {
        return Err(Error::NotLeader);
    }
    let exec_ns = &ctx.settings.execution_namespace;
    let name = wfe
        .status
        .as_ref()
        .and_then(|s| s.pipeline_run_ref.as_ref())
        .map(|r| r.name.clone());
    let name = name
        .unwrap_or_else(|| wfe_shared::pipelinerun::pipeline_run_name(&wfe.spec.target_resource));
    let runs: Api<PipelineRun> = Api::namespaced(ctx.client.clone(), exec_ns);
    let mut deleted = false;
    if let Some(run) = runs.get_opt(&name).await?
        && is_owned_by(&run, &wfe.namespace().unwrap_or_default(), &wfe.name_any())
    {
        match runs
            .delete(&name, &this_one(run.metadata.uid.clone()))
            .await
        {
            Ok(_) => deleted = true,
            Err(e) if is_not_found(&e) || is_kube_conflict(&e) => {}
            Err(e) => {
                publish(
                    wfe,
                    ctx,
                    EventType::Warning,
                    "CleanupFailed",
                    format!("cannot delete PipelineRun {exec_ns}/{name}: {e}"),
                )
                .await;
                return Err(e.into());
            }
        }
    }
    let note = if deleted {
        format!("deleted; PipelineRun {exec_ns}/{name} removed (cancelled if it was running)")
    } else {
        "deleted; no PipelineRun of this execution to remove".to_owned()
    };
    publish(
        wfe,
        ctx,
        EventType::Normal,
        "WorkflowExecutionDeleted",
        note,
    )
    .await;
    let finalizers: Vec<String> = wfe
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": wfe.resource_version()}});
    match api
        .patch(&wfe.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// One Event per real phase transition, plus the outcome metrics.
async fn on_transition(
    wfe: &WorkflowExecution,
    before: &WorkflowExecutionStatus,
    after: &WorkflowExecutionStatus,
    ctx: &Context,
) {
    if before.phase == after.phase {
        return;
    }
    let run = after
        .pipeline_run_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .unwrap_or("");
    let exec_ns = &ctx.settings.execution_namespace;
    let (kind, reason, note) = match after.phase {
        Phase::Running => {
            let adopted = after
                .conditions
                .iter()
                .any(|c| c.message.starts_with("adopted"));
            let verb = if adopted { "Adopted" } else { "Created" };
            (
                EventType::Normal,
                "PipelineRunCreated",
                format!("{verb} PipelineRun {exec_ns}/{run}; Pending -> Running"),
            )
        }
        Phase::Completed => (
            EventType::Normal,
            "WorkflowCompleted",
            format!(
                "workflow {} completed in {}",
                wfe.spec.workflow_ref.workflow_id,
                after.duration.as_deref().unwrap_or("?")
            ),
        ),
        Phase::Failed => {
            let details = after.failure_details.as_ref();
            let reason = details.map(|d| d.reason).unwrap_or(FailureReason::Unknown);
            let message = details.map(|d| d.message.clone()).unwrap_or_default();
            if reason == FailureReason::ConfigurationError && after.pipeline_run_ref.is_none() {
                (EventType::Warning, "WorkflowValidationFailed", message)
            } else {
                (
                    EventType::Warning,
                    "WorkflowFailed",
                    format!("{reason:?}: {message}"),
                )
            }
        }
        Phase::Skipped => (
            EventType::Normal,
            "Skipped",
            after
                .skip_details
                .as_ref()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        ),
        Phase::Pending => (
            EventType::Normal,
            "PhaseTransition",
            format!("{:?} -> Pending", before.phase),
        ),
    };
    publish(wfe, ctx, kind, reason, note).await;
    if after.phase.is_terminal() {
        let outcome = phase_name(after.phase);
        ctx.metrics.executions.with_label_values(&[outcome]).inc();
        if let (Some(start), Some(end)) = (&after.start_time, &after.completion_time) {
            let secs = end.0.duration_since(start.0).as_secs_f64().max(0.0);
            ctx.metrics
                .execution_duration
                .with_label_values(&[outcome])
                .observe(secs);
        }
    }
}

async fn publish(
    wfe: &WorkflowExecution,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    };
    let recorder = kube::runtime::events::Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    match recorder.publish(&event, &wfe.object_ref(&())).await {
        Ok(()) => ctx.metrics.events.inc(),
        Err(e) => {
            tracing::warn!(name = %wfe.name_any(), reason, error = %e, "cannot publish event")
        }
    }
}
