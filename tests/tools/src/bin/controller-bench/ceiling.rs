//! `--ceiling`: the same executions without the controller. A minimal client issues exactly the API
//! requests one execution costs — the create, the finalizer (unless the webhook adds it), the
//! PipelineRun, the Running status, its Event, Tekton's status write, the Completed status, its
//! Event — with the bodies the controller wrote in the run before, the same creators and as many
//! workers as the controller has reconcile slots, on the same control plane. What it reaches is
//! what this machine's API server can take; the controller's rate is judged as a fraction of it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use wfe_shared::tekton::builder::build;
use wfe_shared::tekton::{PipelineRun, TaskRun};
use wfe_shared::{Phase, WorkflowExecution, WorkflowExecutionStatus};

/// What the controller wrote for one execution, taken from a run of one through the controller.
#[derive(Clone)]
pub struct Bodies {
    pub running: WorkflowExecutionStatus,
    pub completed: WorkflowExecutionStatus,
    /// Its two Events, oldest first.
    pub events: Vec<Event>,
}

impl Bodies {
    /// The bodies the controller wrote for `name` in `namespace` (its Running status as the
    /// benchmark's watch saw it).
    pub async fn of(
        client: &Client,
        namespace: &str,
        name: &str,
        running: WorkflowExecutionStatus,
    ) -> anyhow::Result<Bodies> {
        let wfes: Api<WorkflowExecution> = Api::namespaced(client.clone(), namespace);
        let completed = wfes
            .get(name)
            .await?
            .status
            .context("the controller's execution has no status")?;
        let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        anyhow::ensure!(
            events.len() == 2,
            "expected the controller's 2 Events about {name}, found {}",
            events.len()
        );
        Ok(Bodies {
            running,
            completed,
            events,
        })
    }
}

pub struct Ceiling {
    pub client: Client,
    /// Where the executions go, and their PipelineRuns (no controller or stand-in watches these).
    pub namespace: String,
    pub run_namespace: String,
    pub template: WorkflowExecution,
    pub bodies: Bodies,
    pub executions: usize,
    pub creators: usize,
    pub workers: usize,
    /// The webhook adds the finalizer in the create (as in the controller's run), so no PATCH.
    pub webhook_adds_finalizer: bool,
    /// Also hold the watches a controller and Tekton hold (executions; PipelineRuns twice;
    /// TaskRuns), reading every event and doing nothing with it: what watching costs the API
    /// server, apart from any controller logic.
    pub watches: bool,
}

/// The controller's and the stand-in's watches, on the ceiling's namespaces; aborted when dropped.
struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn drain<K>(api: Api<K>, config: watcher::Config) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        while events.next().await.is_some() {}
    })
}

fn watches(c: &Ceiling) -> Watches {
    let ours = || watcher::Config::default().labels(wfe_shared::api::names::WORKFLOW_EXECUTION);
    let runs = || Api::<PipelineRun>::namespaced(c.client.clone(), &c.run_namespace);
    Watches(vec![
        drain(
            Api::<WorkflowExecution>::namespaced(c.client.clone(), &c.namespace),
            watcher::Config::default(),
        ),
        drain(runs(), ours()),
        drain(runs(), watcher::Config::default()),
        drain(
            Api::<TaskRun>::namespaced(c.client.clone(), &c.run_namespace),
            ours(),
        ),
    ])
}

/// Issues the requests of every execution; returns the time until a watch saw the last one
/// Completed (as the controller's run is timed).
pub async fn run(c: Ceiling) -> anyhow::Result<Duration> {
    let wfes: Api<WorkflowExecution> = Api::namespaced(c.client.clone(), &c.namespace);
    let (done_tx, mut done) = tokio::sync::watch::channel(0usize);
    let watch = {
        let wfes = wfes.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut stream = watcher(wfes, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(w)) = stream.next().await {
                if w.status.as_ref().map(|s| s.phase) == Some(Phase::Completed)
                    && seen.insert(w.name_any())
                {
                    let _ = done_tx.send(seen.len());
                }
            }
        })
    };
    let _watches = c.watches.then(|| watches(&c));
    // The watches are established (their initial lists done) before the first create.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    // Created executions, handed to the workers as the controller's queue hands them on.
    let (created, queue) = mpsc::unbounded_channel::<WorkflowExecution>();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(queue));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..c.creators {
        let (wfes, template, next, created, n) = (
            wfes.clone(),
            c.template.clone(),
            next.clone(),
            created.clone(),
            c.executions,
        );
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let mut w = template.clone();
                w.metadata.name = Some(format!("ceiling-{i}"));
                w.spec.target_resource = format!("ns/deployment/app-{i}");
                let _ = created.send(wfes.create(&PostParams::default(), &w).await?);
            }
        }));
    }
    drop(created);
    let bodies = std::sync::Arc::new(c.bodies);
    let mut workers = Vec::new();
    for _ in 0..c.workers {
        let (client, queue, bodies, run_ns, finalizer) = (
            c.client.clone(),
            queue.clone(),
            bodies.clone(),
            c.run_namespace.clone(),
            !c.webhook_adds_finalizer,
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some(wfe) = queue.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                one_execution(&client, wfe, &bodies, &run_ns, finalizer).await?;
            }
        }));
    }
    for t in creators.into_iter().chain(workers) {
        t.await??;
    }
    let n = c.executions;
    let seen_all = tokio::time::timeout(Duration::from_secs(60), done.wait_for(|d| *d >= n))
        .await
        .is_ok_and(|r| r.is_ok());
    let took = started.elapsed();
    watch.abort();
    anyhow::ensure!(
        seen_all,
        "the ceiling's watch saw {} of {n} executions Completed",
        *done.borrow()
    );
    Ok(took)
}

/// The controller's writes for one execution (and Tekton's), one after the other.
async fn one_execution(
    client: &Client,
    mut wfe: WorkflowExecution,
    bodies: &Bodies,
    run_namespace: &str,
    finalizer: bool,
) -> anyhow::Result<()> {
    let ns = wfe.namespace().unwrap_or_default();
    let wfes: Api<WorkflowExecution> = Api::namespaced(client.clone(), &ns);
    let name = wfe.name_any();
    if finalizer {
        let patch = json!({"metadata": {
            "finalizers": [wfe_shared::api::names::FINALIZER],
            "resourceVersion": wfe.resource_version()}});
        wfe = wfes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let run = Api::namespaced(client.clone(), run_namespace)
        .create(&PostParams::default(), &build(&wfe, run_namespace))
        .await?;
    let mut running = bodies.running.clone();
    if let Some(r) = running.pipeline_run_ref.as_mut() {
        r.name = run.name_any();
    }
    wfe = status(&wfes, &wfe, &running).await?;
    event(client, &wfe, &bodies.events[0]).await?;
    wfe_tools::tekton::succeed_at_once(client.clone(), run_namespace, &run).await?;
    let mut completed = bodies.completed.clone();
    if let Some(r) = completed.pipeline_run_ref.as_mut() {
        r.name = run.name_any();
    }
    wfe = status(&wfes, &wfe, &completed).await?;
    event(client, &wfe, &bodies.events[1]).await?;
    Ok(())
}

/// A status PUT with the resourceVersion as precondition, as the controller writes it.
async fn status(
    wfes: &Api<WorkflowExecution>,
    current: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
) -> anyhow::Result<WorkflowExecution> {
    let body = json!({
        "apiVersion": WorkflowExecution::api_version(&()),
        "kind": WorkflowExecution::kind(&()),
        "metadata": {
            "name": current.name_any(),
            "namespace": current.namespace(),
            "resourceVersion": current.resource_version(),
        },
        "status": status,
    });
    Ok(wfes
        .replace_subresource("status", &current.name_any(), &PostParams::default(), &body)
        .await?)
}

/// The controller's Event `template`, about `wfe`.
async fn event(client: &Client, wfe: &WorkflowExecution, template: &Event) -> anyhow::Result<()> {
    let mut e = template.clone();
    let ns = wfe.namespace().unwrap_or_default();
    let suffix = template
        .metadata
        .name
        .as_deref()
        .and_then(|n| n.rsplit('.').next())
        .unwrap_or("event");
    e.metadata = kube::api::ObjectMeta {
        name: Some(format!("{}.{suffix}", wfe.name_any())),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    e.regarding = Some(ObjectReference {
        namespace: Some(ns.clone()),
        name: Some(wfe.name_any()),
        uid: wfe.uid(),
        ..e.regarding.unwrap_or_default()
    });
    e.event_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &e)
        .await?;
    Ok(())
}
