//! A Tekton stand-in for tests and the local environment: drives our PipelineRuns from creation
//! through Running to an outcome by patching their status, creating TaskRuns with step states the
//! way Tekton does, so the whole flow runs without a Tekton controller.
//!
//! The outcome comes from the PipelineRun's `SIMULATE_OUTCOME` parameter (i.e. the
//! WorkflowExecution's `spec.parameters.SIMULATE_OUTCOME`): `succeed` (default), `oom`, `fail`
//! (exit code 3), `timeout`, `imagepull`, or `hang` (stays Running).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wfe_controller::watch_backoff::{WatchBackoff, relist_at_once_when_gone};
use wfe_shared::tekton::{ParamValue, PipelineRun, TaskRun, TaskRunSpec};

/// The pipeline task every simulated PipelineRun has.
pub const TASK: &str = "remediate";
/// Its only step.
pub const STEP: &str = "apply";

/// When each PipelineRun was marked finished (by name), for latency measurements.
pub type FinishedAt = Arc<Mutex<std::collections::HashMap<String, std::time::Instant>>>;

/// A running stand-in; stops when dropped.
pub struct TektonStandIn {
    stop: CancellationToken,
    /// When the stand-in's final status patch of each PipelineRun returned.
    pub finished_at: FinishedAt,
}

impl Drop for TektonStandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TektonStandIn {
    /// Watches PipelineRuns in `namespace`; each new one runs for `delay`, then ends.
    pub fn start(client: Client, namespace: &str, delay: Duration) -> Self {
        Self::start_with(client, namespace, Some(delay))
    }

    /// Completes every new PipelineRun at once with a single status write (Succeeded), creating no
    /// TaskRuns: the cheapest Tekton possible, for benchmarks.
    pub fn start_instant(client: Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, None)
    }

    fn start_with(client: Client, namespace: &str, delay: Option<Duration>) -> Self {
        let stop = CancellationToken::new();
        let runs: Api<PipelineRun> = Api::namespaced(client.clone(), namespace);
        let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
        let finished_at: FinishedAt = Arc::default();
        let finished = finished_at.clone();
        let token = stop.clone();
        let namespace = namespace.to_owned();
        tokio::spawn(async move {
            // Retried as the controller retries its watches (at most 5 s apart; real Tekton's
            // client-go backs off to 30 s), so an outage's convergence times measure the
            // controller, not the stand-in (docs/reliability.md).
            let mut events =
                relist_at_once_when_gone(watcher(runs.clone(), watcher::Config::default()))
                    .backoff(WatchBackoff::default())
                    .applied_objects()
                    .boxed();
            loop {
                let next = tokio::select! {
                    _ = token.cancelled() => return,
                    next = events.next() => next,
                };
                let Some(Ok(run)) = next else { continue };
                let untouched = run.status.as_ref().is_none_or(|s| s.conditions.is_empty());
                // By uid: a target's runs share one name, one after another.
                let fresh = seen
                    .lock()
                    .map(|mut s| s.insert(run.uid().unwrap_or_else(|| run.name_any())))
                    .unwrap_or(false);
                if untouched && fresh {
                    let (client, namespace, token) =
                        (client.clone(), namespace.clone(), token.clone());
                    let finished = finished.clone();
                    tokio::spawn(async move {
                        let name = run.name_any();
                        tokio::select! {
                            _ = token.cancelled() => {}
                            r = async {
                                // Like Tekton, which requeues a run it could not update: an API
                                // server that cannot be reached (an outage test) is retried.
                                let deadline = std::time::Instant::now() + Duration::from_secs(90);
                                loop {
                                    let r = match delay {
                                        Some(delay) => {
                                            drive(client.clone(), &namespace, run.clone(), delay).await
                                        }
                                        None => succeed_at_once(client.clone(), &namespace, &run).await,
                                    };
                                    match r {
                                        Err(e) if unreachable(&e) && std::time::Instant::now() < deadline => {
                                            tokio::time::sleep(Duration::from_millis(500)).await;
                                        }
                                        other => break other,
                                    }
                                }
                            } => match r {
                                Ok(()) => {
                                    if let Ok(mut f) = finished.lock() {
                                        f.insert(name, std::time::Instant::now());
                                    }
                                }
                                Err(e) => eprintln!("[tekton stand-in] {e:#}"),
                            },
                        }
                    });
                }
            }
        });
        Self { stop, finished_at }
    }
}

/// The API server could not be reached or answered 5xx/429: worth trying again.
fn unreachable(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(s)) => s.code >= 500 || s.code == 429,
        Some(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
        _ => false,
    }
}

fn outcome(run: &PipelineRun) -> String {
    run.spec
        .params
        .iter()
        .find(|p| p.name == "SIMULATE_OUTCOME")
        .and_then(|p| match &p.value {
            ParamValue::String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "succeed".into())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn succeeded(status: &str, reason: &str, message: &str) -> Value {
    json!([{"type": "Succeeded", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now()}])
}

/// The instant stand-in's one write: `run` succeeded (start and completion now).
pub async fn succeed_at_once(
    client: Client,
    namespace: &str,
    run: &PipelineRun,
) -> anyhow::Result<()> {
    let runs: Api<PipelineRun> = Api::namespaced(client, namespace);
    let t = now();
    runs.patch_status(&run.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": {
            "startTime": t, "completionTime": t,
            "conditions": succeeded("True", "Succeeded", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0")}})))
        .await?;
    Ok(())
}

async fn drive(
    client: Client,
    namespace: &str,
    run: PipelineRun,
    delay: Duration,
) -> anyhow::Result<()> {
    let runs: Api<PipelineRun> = Api::namespaced(client.clone(), namespace);
    let task_runs: Api<TaskRun> = Api::namespaced(client, namespace);
    let name = run.name_any();
    let tr_name = format!("{name}-{TASK}");
    let pp = PatchParams::default();
    let outcome = outcome(&run);

    // Running: like Tekton, a TaskRun carrying the PipelineRun's labels plus Tekton's own.
    let mut labels: BTreeMap<String, String> = run.labels().clone();
    labels.insert("tekton.dev/pipelineRun".into(), name.clone());
    labels.insert("tekton.dev/pipelineTask".into(), TASK.into());
    let mut tr = TaskRun::new(&tr_name, TaskRunSpec::default());
    tr.metadata.labels = Some(labels);
    tr.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "tekton.dev/v1".into(),
        kind: "PipelineRun".into(),
        name: name.clone(),
        uid: run.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    match task_runs.create(&PostParams::default(), &tr).await {
        // The TaskRun of an earlier run of this name (a target's runs share it): the garbage
        // collector, which the test control plane does not run, would have removed it.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            task_runs.delete(&tr_name, &DeleteParams::default()).await?;
            task_runs.create(&PostParams::default(), &tr).await?;
        }
        other => {
            other?;
        }
    }
    task_runs
        .patch_status(&tr_name, &pp, &Patch::Merge(json!({"status": {
            "startTime": now(), "podName": format!("{tr_name}-pod"),
            "conditions": succeeded("Unknown", "Running", "Not all Steps in the Task have finished executing"),
            "steps": [{"name": STEP, "container": format!("step-{STEP}"), "running": {"startedAt": now()}}]}})))
        .await?;
    runs.patch_status(&name, &pp, &Patch::Merge(json!({"status": {
            "startTime": now(),
            "conditions": succeeded("Unknown", "Running", "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 1, Skipped: 0"),
            "childReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": tr_name, "pipelineTaskName": TASK}]}})))
        .await?;
    if outcome == "hang" {
        return Ok(());
    }
    tokio::time::sleep(delay).await;

    // The shapes the real Tekton v1.15 writes (see docs/tekton-differences.md).
    let terminated = |code: i32, reason: &str| {
        json!([{"name": STEP, "container": format!("step-{STEP}"),
        "terminated": {"exitCode": code, "reason": reason, "startedAt": now(), "finishedAt": now()}}])
    };
    // How Tekton marks the steps of a TaskRun it stops: exit 1 with the TaskRun's reason.
    let stopped = |reason: &str| {
        json!([{"name": STEP, "container": format!("step-{STEP}"), "terminationReason": reason,
        "terminated": {"exitCode": 1, "reason": reason, "startedAt": now(), "finishedAt": now(),
                       "message": format!("Step {STEP} terminated as pod {tr_name}-pod is terminated")}}])
    };
    let one_failed = "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 0";
    let (tr_status, pr_status) = match outcome.as_str() {
        "oom" => (
            json!({"conditions": succeeded("False", "StepOOM", &format!("\"step-{STEP}\" exited with code 137: OOMKilled")), "steps": terminated(137, "OOMKilled")}),
            json!({"conditions": succeeded("False", "Failed", one_failed)}),
        ),
        "fail" => (
            json!({"conditions": succeeded("False", "StepFailed", &format!("\"step-{STEP}\" exited with code 3: Error")), "steps": terminated(3, "Error")}),
            json!({"conditions": succeeded("False", "Failed", one_failed)}),
        ),
        "timeout" => (
            json!({"conditions": succeeded("False", "TaskRunCancelled", &format!("TaskRun \"{tr_name}\" was cancelled. TaskRun cancelled as the PipelineRun it belongs to has timed out.")),
                   "steps": stopped("TaskRunCancelled")}),
            json!({"conditions": succeeded("False", "PipelineRunTimeout", &format!("PipelineRun \"{name}\" failed to finish within \"30m0s\""))}),
        ),
        "imagepull" => (
            json!({"conditions": succeeded("False", "TaskRunImagePullFailed", &format!("the step \"{STEP}\" in TaskRun \"{tr_name}\" failed to pull the image \"\". The pod errored with the message: \"Back-off pulling image \"registry/step\".\"")),
                   "steps": stopped("TaskRunImagePullFailed")}),
            json!({"conditions": succeeded("False", "Failed", one_failed)}),
        ),
        _ => (
            json!({"conditions": succeeded("True", "Succeeded", "All Steps have completed executing"), "steps": terminated(0, "Completed")}),
            json!({"conditions": succeeded("True", "Succeeded", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0")}),
        ),
    };
    let mut tr_status = tr_status;
    tr_status["completionTime"] = json!(now());
    task_runs
        .patch_status(&tr_name, &pp, &Patch::Merge(json!({"status": tr_status})))
        .await?;
    let mut pr_status = pr_status;
    pr_status["completionTime"] = json!(now());
    runs.patch_status(&name, &pp, &Patch::Merge(json!({"status": pr_status})))
        .await?;
    Ok(())
}
