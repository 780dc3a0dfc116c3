//! Observation: what the plan asked to look at ([`wfe_shared::plan::look`]), read from the watch
//! caches, or fresh from the API server where the plan says so.

use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use wfe_shared::WorkflowExecution;
use wfe_shared::plan::{self, Done, Seen, Source};
use wfe_shared::tekton::observed::{ObservedRun, ObservedTaskRun, PIPELINE_RUN_LABEL, Watched};

use crate::cache::Cached;
use crate::context::Context;
use crate::error::Error;

/// What one reconcile observed.
#[derive(Default)]
pub struct Observed {
    pub run: Option<Arc<Cached<ObservedRun>>>,
    pub task_runs: Vec<ObservedTaskRun>,
    /// The executions on the same target.
    pub history: Vec<Arc<WorkflowExecution>>,
}

impl Observed {
    /// As the plan reads it, with the effects carried out so far.
    pub fn seen<'a>(&'a self, done: &'a [Done]) -> Seen<'a> {
        Seen {
            run: self.run.as_deref().map(|r| &r.0),
            task_runs: &self.task_runs,
            history: &self.history,
            done,
        }
    }
}

pub async fn observe(wfe: &WorkflowExecution, ctx: &Context) -> Result<Observed, Error> {
    let Some(look) = plan::look(wfe) else {
        return Ok(Observed::default());
    };
    let run = match look.source {
        Source::Cache => cached(&look.name, ctx),
        Source::CacheThenRead => match cached(&look.name, ctx) {
            Some(run) => Some(run),
            None => read(&look.name, ctx).await?,
        },
        Source::Read => read(&look.name, ctx).await?,
    };
    let task_runs = match &run {
        Some(run) if look.task_runs && run.has_failed() => task_runs_of(run, ctx).await?,
        _ => Vec::new(),
    };
    let history = if look.history {
        history(wfe, ctx)
    } else {
        Vec::new()
    };
    Ok(Observed {
        run,
        task_runs,
        history,
    })
}

/// The executions on `wfe`'s target, from the index and the cache (our own newer writes first).
fn history(wfe: &WorkflowExecution, ctx: &Context) -> Vec<Arc<WorkflowExecution>> {
    ctx.targets
        .on(&wfe.spec.target_resource)
        .into_iter()
        .map(|w| ctx.own_writes.freshest(w))
        .collect()
}

fn cached(name: &str, ctx: &Context) -> Option<Arc<Cached<ObservedRun>>> {
    ctx.runs
        .get(&ObjectRef::new(name).within(&ctx.settings.execution_namespace))
}

async fn read(name: &str, ctx: &Context) -> Result<Option<Arc<Cached<ObservedRun>>>, Error> {
    let api: Api<Watched<ObservedRun>> =
        Api::namespaced(ctx.client.clone(), &ctx.settings.execution_namespace);
    Ok(api
        .get_opt(name)
        .await?
        .map(|w| Arc::new(Cached(w.observed))))
}

/// The TaskRuns that explain a failed PipelineRun. From the cache when it already holds every
/// child of the run in a settled state; otherwise read fresh (a TaskRun's last update may reach the
/// cache after its PipelineRun's).
async fn task_runs_of(run: &ObservedRun, ctx: &Context) -> Result<Vec<ObservedTaskRun>, Error> {
    let exec_ns = &ctx.settings.execution_namespace;
    let children = run.status.iter().flat_map(|s| s.task_run_children());
    let cached: Option<Vec<ObservedTaskRun>> = children
        .map(|c| {
            ctx.task_runs
                .get(&ObjectRef::new(&c.name).within(exec_ns))
                .filter(|tr| tr.is_settled())
                .map(|tr| tr.0.clone())
        })
        .collect();
    if let Some(task_runs) = cached {
        return Ok(task_runs);
    }
    tracing::debug!(run = %run.name(), "TaskRuns not all settled in the cache; reading them");
    let api: Api<Watched<ObservedTaskRun>> = Api::namespaced(ctx.client.clone(), exec_ns);
    let selector = format!("{PIPELINE_RUN_LABEL}={}", run.name());
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .map(|w| w.observed)
        .collect())
}
