//! Watches and caches: WorkflowExecutions, and our PipelineRuns and TaskRuns in the execution
//! namespace (slim, see `wfe_shared::tekton::observed`), wired into the controller loop with the
//! lock sweep; plus the housekeeping that keeps the lock gauge current and gives memory back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names;
use wfe_shared::tekton::observed::{ObservedRun, ObservedTaskRun};
use wfe_shared::tekton::ownership::Owner;

use crate::cache::trim_execution;
use crate::context::{Clock, Context, Settings};
use crate::health::Health;
use crate::lock::expired_locks;
use crate::memory::release_free_memory;
use crate::reconcile::{error_policy, reconcile};

/// The WorkflowExecution a PipelineRun or TaskRun belongs to, from its labels.
fn owner_of(owner: Option<&Owner>) -> Option<ObjectRef<WorkflowExecution>> {
    let owner = owner.filter(|o| !o.namespace.is_empty())?;
    Some(ObjectRef::new(&owner.name).within(&owner.namespace))
}

pub async fn run_controller(
    client: Client,
    settings: Settings,
    clock: Clock,
    health: Health,
    leading: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let exec_ns = settings.execution_namespace.clone();
    // Only our PipelineRuns and TaskRuns (Tekton copies the PipelineRun's labels onto its TaskRuns),
    // parsed into slim cached forms.
    let ours = watcher::Config::default().labels(names::WORKFLOW_EXECUTION);
    let (task_runs, task_runs_writer) = reflector::store();
    let task_run_events = reflector::reflector(
        task_runs_writer,
        watcher(
            Api::<ObservedTaskRun>::namespaced(client.clone(), &exec_ns),
            ours.clone(),
        )
        .default_backoff(),
    )
    .touched_objects();
    let (runs, runs_writer) = reflector::store();
    let run_events = reflector::reflector(
        runs_writer,
        watcher(
            Api::<ObservedRun>::namespaced(client.clone(), &exec_ns),
            ours,
        )
        .default_backoff(),
    )
    .touched_objects();
    let (wfes, wfe_writer) = reflector::store();
    let wfe_events = reflector::reflector(
        wfe_writer,
        watcher(
            match &settings.watch_namespace {
                Some(ns) => Api::<WorkflowExecution>::namespaced(client.clone(), ns),
                None => Api::<WorkflowExecution>::all(client.clone()),
            },
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(trim_execution),
    )
    .touched_objects();

    let reporter = Reporter {
        controller: "workflowexecution-controller".into(),
        instance: Some(settings.identity.clone()),
    };
    let ctx = Arc::new(Context {
        client,
        settings: settings.clone(),
        runs: runs.clone(),
        task_runs: task_runs.clone(),
        reporter,
        metrics: health.metrics.clone(),
        clock,
        leading,
        own_writes: Default::default(),
    });
    {
        let (runs, task_runs, wfes, ready, metrics) = (
            runs.clone(),
            task_runs.clone(),
            wfes.clone(),
            health.ready.clone(),
            health.metrics.clone(),
        );
        let stop = stop.clone();
        tokio::spawn(async move {
            let synced = async {
                let _ = runs.wait_until_ready().await;
                let _ = task_runs.wait_until_ready().await;
                let _ = wfes.wait_until_ready().await;
            };
            tokio::select! {
                _ = synced => {
                    ready.store(true, Ordering::SeqCst);
                    tracing::info!("caches synced; ready");
                }
                _ = stop.cancelled() => return,
            }
            // Keep the lock-holder gauge current, and give memory back every 10 s.
            let mut tick: u64 = 0;
            while !stop.is_cancelled() {
                metrics.lock_holders.set(runs.len() as i64);
                if tick.is_multiple_of(5) {
                    let _ = tokio::task::spawn_blocking(release_free_memory).await;
                }
                tick += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    let stop_signal = stop.clone();
    let expired = expired_locks(wfes.clone(), runs, ctx.clone());
    Controller::for_stream(wfe_events, wfes)
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .watches_stream(run_events, |run| owner_of(run.owner.as_ref()))
        .watches_stream(task_run_events, |tr| owner_of(tr.owner.as_ref()))
        .reconcile_on(expired)
        .graceful_shutdown_on(async move { stop_signal.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    Ok(())
}
