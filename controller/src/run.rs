//! Wiring: leader election, watches and caches, the controller loop, health and metrics.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;
use wfe_shared::WorkflowExecution;
use wfe_shared::labels;

use crate::cache::{CachedRun, CachedTaskRun, Owner, trim_execution};
use crate::context::{Clock, Context, Settings};
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, lock_expired, reconcile};

/// Health state shared with the HTTP endpoints.
#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    /// True once the leader's caches are synced, or while standing by (not leading).
    pub ready: Arc<AtomicBool>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `stop`.
pub async fn serve_health(
    listener: TcpListener,
    health: Health,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("serving health endpoints")
}

async fn readyz(State(h): State<Health>) -> Response {
    if h.ready.load(Ordering::SeqCst) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet").into_response()
    }
}

async fn metrics(State(h): State<Health>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.metrics.render(),
    )
        .into_response()
}

/// Runs until `shutdown`: waits for the leader lease, runs the controller while holding it, stops
/// writing the moment it is lost, and releases the lease on shutdown.
pub async fn run(
    client: Client,
    settings: Settings,
    clock: Clock,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.lease_duration_seconds)
        .with_grace(settings.lease_grace_seconds)
        .build()
        .await
        .context("creating the leader lease manager")?;
    let (mut leader, lease_task) = manager.watch().await;
    let leading = Arc::new(AtomicBool::new(false));
    health.ready.store(true, Ordering::SeqCst); // standing by is healthy
    'outer: loop {
        while !*leader.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break 'outer,
                changed = leader.changed() => if changed.is_err() { break 'outer },
            }
        }
        tracing::info!(identity = %settings.identity, "acquired the leader lease; starting the controller");
        leading.store(true, Ordering::SeqCst);
        health.metrics.leader.set(1);
        health.ready.store(false, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let controller = run_controller(
            client.clone(),
            settings.clone(),
            clock.clone(),
            health.clone(),
            leading.clone(),
            stop.clone(),
        );
        tokio::pin!(controller);
        let mut shutting_down = false;
        loop {
            tokio::select! {
                result = &mut controller => {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "controller stopped");
                    }
                    break;
                }
                _ = shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    stop.cancel();
                }
                changed = leader.changed(), if !stop.is_cancelled() => {
                    if changed.is_err() || !*leader.borrow() {
                        // Stop writing at once; in-flight reconciles see `leading == false`.
                        leading.store(false, Ordering::SeqCst);
                        tracing::warn!(identity = %settings.identity, "lost the leader lease; stopping the controller");
                        stop.cancel();
                    }
                }
            }
        }
        leading.store(false, Ordering::SeqCst);
        health.metrics.leader.set(0);
        health.ready.store(true, Ordering::SeqCst);
        if shutting_down || shutdown.is_cancelled() {
            break;
        }
    }
    // Dropping the receiver makes the lease manager release the lease.
    drop(leader);
    match lease_task.await {
        Ok(Ok(_)) => tracing::info!("leader lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
        Err(e) => tracing::warn!(error = %e, "lease task failed"),
    }
    Ok(())
}

/// The WorkflowExecution a PipelineRun or TaskRun belongs to, from its labels.
fn owner_of(owner: &Option<Owner>) -> Option<ObjectRef<WorkflowExecution>> {
    let owner = owner.as_ref().filter(|o| !o.namespace.is_empty())?;
    Some(ObjectRef::new(&owner.name).within(&owner.namespace))
}

async fn run_controller(
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
    let ours = watcher::Config::default().labels(labels::WORKFLOW_EXECUTION);
    let (task_runs, task_runs_writer) = reflector::store();
    let task_run_events = reflector::reflector(
        task_runs_writer,
        watcher(
            Api::<CachedTaskRun>::namespaced(client.clone(), &exec_ns),
            ours.clone(),
        )
        .default_backoff(),
    )
    .touched_objects();
    let (runs, runs_writer) = reflector::store();
    let run_events = reflector::reflector(
        runs_writer,
        watcher(Api::<CachedRun>::namespaced(client.clone(), &exec_ns), ours).default_backoff(),
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
        .watches_stream(run_events, |run| owner_of(&run.owner))
        .watches_stream(task_run_events, |tr| owner_of(&tr.owner))
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

/// Terminal executions hold their target's lock for the cooldown. Rather than one timer per finished
/// execution (10,000 timers for 10,000 executions), one sweep looks for expired locks every
/// `cooldown / 10` (between 1 s and 10 s) and asks for those executions' reconciles, which delete
/// the PipelineRun. An expired lock whose PipelineRun is gone from the cache is already released.
fn expired_locks(
    wfes: Store<WorkflowExecution>,
    runs: Store<CachedRun>,
    ctx: Arc<Context>,
) -> impl futures::Stream<Item = ObjectRef<WorkflowExecution>> + Send + 'static {
    let every = (ctx.settings.cooldown / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    futures::stream::unfold((), move |()| {
        let (wfes, runs, ctx) = (wfes.clone(), runs.clone(), ctx.clone());
        async move {
            tokio::time::sleep(every).await;
            let now = ctx.now();
            let exec_ns = &ctx.settings.execution_namespace;
            ctx.own_writes
                .retain(|ns, name| wfes.get(&ObjectRef::new(name).within(ns)).is_some());
            let due: Vec<_> = wfes
                .state()
                .into_iter()
                .filter(|w| lock_expired(w, now, ctx.settings.cooldown))
                .filter(|w| {
                    // Only a lock this execution still holds: the run under that name is its own
                    // (not a later execution's on the same target) and not already being deleted.
                    let run = w.status.as_ref().and_then(|s| s.pipeline_run_ref.as_ref());
                    let ns = w.metadata.namespace.as_deref().unwrap_or_default();
                    let name = w.metadata.name.as_deref().unwrap_or_default();
                    run.and_then(|r| runs.get(&ObjectRef::new(&r.name).within(exec_ns)))
                        .is_some_and(|r| r.is_lock_of(ns, name))
                })
                .map(|w| ObjectRef::from_obj(&*w))
                .collect();
            Some((futures::stream::iter(due), ()))
        }
    })
    .flatten()
}

/// Returns freed heap pages to the OS. Watch events are parsed into short-lived buffers between
/// long-lived cache entries, and executions are trimmed once terminal, so glibc's heap keeps many
/// free pages that it would otherwise hold on to (measured: 10,000 executions drained from a
/// backlog, see docs/benchmarks.md).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator has already freed.
    unsafe {
        libc::malloc_trim(0);
    }
}
