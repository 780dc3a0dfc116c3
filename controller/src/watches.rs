//! Watches and caches: WorkflowExecutions, and our PipelineRuns and TaskRuns in the execution
//! namespace (slim, see `crate::cache::Cached`), wired into the controller loop with the
//! lock sweep; plus the housekeeping that keeps the lock gauge current and gives memory back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names;
use wfe_shared::plan::Urgency;
use wfe_shared::status::overdue::count_past_deadline;
use wfe_shared::tekton::observed::{Observed, ObservedRun, ObservedTaskRun, Watched};
use wfe_shared::tekton::ownership::Owner;

use crate::cache::{Cached, cached, trim_execution};
use crate::context::{Context, Services, Settings};
use crate::gate::Gate;
use crate::lock::expired_locks;
use crate::memory::release_free_memory;
use crate::reconcile::{error_policy, when_due};
use crate::targets::Targets;
use crate::watch_backoff::{WatchBackoff, relist_at_once_when_gone};

/// The WorkflowExecution a PipelineRun or TaskRun belongs to, from its labels.
fn owner_of(owner: Option<&Owner>) -> Option<ObjectRef<WorkflowExecution>> {
    let owner = owner.filter(|o| !o.namespace.is_empty())?;
    Some(ObjectRef::new(&owner.name).within(&owner.namespace))
}

/// Our runs of one Tekton kind in the execution namespace, cached slim; the stream yields each
/// changed one.
fn cache_of<T>(
    client: &Client,
    namespace: &str,
) -> (
    reflector::Store<Cached<T>>,
    impl Stream<Item = Result<Cached<T>, watcher::Error>> + Send + 'static,
)
where
    T: Observed + serde::de::DeserializeOwned,
{
    // Only our PipelineRuns and TaskRuns (Tekton copies the PipelineRun's labels onto its TaskRuns).
    let ours = watcher::Config::default().labels(names::WORKFLOW_EXECUTION);
    let (store, writer) = reflector::store();
    let events = relist_at_once_when_gone(watcher(
        Api::<Watched<T>>::namespaced(client.clone(), namespace),
        ours,
    ))
    .backoff(WatchBackoff::default())
    .map_ok(cached);
    (
        store,
        reflector::reflector(writer, events).touched_objects(),
    )
}

/// Reconciles the execution each changed run belongs to. A watch error is logged; the watcher
/// retries with backoff.
fn owners_of<T: Observed>(
    changed: impl Stream<Item = Result<Cached<T>, watcher::Error>> + Send + 'static,
    owner: fn(&T) -> Option<&Owner>,
) -> impl Stream<Item = ObjectRef<WorkflowExecution>> + Send + 'static {
    changed.filter_map(move |changed| {
        futures::future::ready(match changed {
            Ok(run) => owner_of(owner(&run)),
            Err(e) => {
                tracing::warn!(kind = %<T::Kind as kube::Resource>::kind(&()), error = %e, "watch failed; retrying");
                None
            }
        })
    })
}

pub async fn run_controller(
    client: Client,
    settings: Settings,
    services: Services,
    leading: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Services {
        clock,
        health,
        audit,
        hook,
    } = services;
    let exec_ns = settings.execution_namespace.clone();
    let (task_runs, task_run_events) = cache_of::<ObservedTaskRun>(&client, &exec_ns);
    let (runs, run_events) = cache_of::<ObservedRun>(&client, &exec_ns);
    let (wfes, wfe_writer) = reflector::store();
    let targets = Arc::new(Targets::new(wfes.clone()));
    let indexed = targets.clone();
    let wfe_events = reflector::reflector(
        wfe_writer,
        relist_at_once_when_gone(watcher(
            match &settings.watch_namespace {
                Some(ns) => Api::<WorkflowExecution>::namespaced(client.clone(), ns),
                None => Api::<WorkflowExecution>::all(client.clone()),
            },
            watcher::Config::default(),
        ))
        .backoff(WatchBackoff::default())
        .modify(trim_execution),
    )
    // After the store applied it: the index shares the store's object.
    .inspect_ok(move |event| indexed.on_event(event))
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
        targets: targets.clone(),
        reporter,
        metrics: health.metrics.clone(),
        audit,
        clock,
        hook,
        leading,
        own_writes: Default::default(),
    });
    // The controller loop itself is unlimited: the gate holds reconciles to --concurrency, work
    // under way first.
    let gate = Gate::new(settings.concurrency.into());
    {
        let (targets, gate) = (targets.clone(), gate.clone());
        let (runs, task_runs, wfes, ready, metrics) = (
            runs.clone(),
            task_runs.clone(),
            wfes.clone(),
            health.ready.clone(),
            health.metrics.clone(),
        );
        let (clock, grace) = (ctx.clock.clone(), settings.deadline_grace);
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
            // Keep the gauges current, and give memory back (a few milliseconds of one thread
            // for a heap of tens of MiB) every 2 s.
            while !stop.is_cancelled() {
                metrics.lock_holders.set(runs.len() as i64);
                for (urgency, n) in Urgency::ALL.into_iter().zip(gate.waiting()) {
                    metrics
                        .reconciles_waiting
                        .with_label_values(&[urgency.as_str()])
                        .set(n as i64);
                }
                metrics.runtime_tasks.set(
                    tokio::runtime::Handle::current()
                        .metrics()
                        .num_alive_tasks() as i64,
                );
                let state = wfes.state();
                metrics.set_past_deadline(count_past_deadline(
                    state.iter().map(|w| w.as_ref()),
                    clock(),
                    grace,
                ));
                targets.prune();
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    let stop_signal = stop.clone();
    let expired = expired_locks(wfes.clone(), runs, ctx.clone());
    Controller::for_stream(wfe_events, wfes)
        .with_config(controller::Config::default().concurrency(0))
        .reconcile_on(owners_of(run_events, |run| run.owner.as_ref()))
        .reconcile_on(owners_of(task_run_events, |tr| tr.owner.as_ref()))
        .reconcile_on(expired)
        .graceful_shutdown_on(async move { stop_signal.cancelled().await })
        .run(
            move |wfe, ctx| when_due(wfe, ctx, gate.clone()),
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    Ok(())
}
