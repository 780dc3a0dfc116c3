//! A test's own corner of the shared control plane: a namespace of WorkflowExecutions and one of
//! PipelineRuns, with the controller, the Tekton stand-in, and the waits and counts the suites
//! assert on.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use wfe_shared::WorkflowExecution;
use wfe_shared::api::Phase;
use wfe_shared::api::names::pipeline_run_name;
use wfe_shared::fixtures::{ExecutionBuilder, execution};
use wfe_shared::tekton::PipelineRun;

use crate::controller::{ControllerReplica, settings};
use crate::tekton::TektonStandIn;
use crate::{eventually, shared};

pub struct Env {
    pub client: Client,
    /// Where the WorkflowExecutions live.
    pub ns: String,
    /// Where their PipelineRuns run.
    pub exec_ns: String,
    pub wfes: Api<WorkflowExecution>,
    pub runs: Api<PipelineRun>,
}

/// Two fresh namespaces named after `prefix`.
pub async fn env(prefix: &str) -> Env {
    let cp = shared();
    let client = cp.client().await;
    let ns = cp.namespace(&client, prefix).await;
    let exec_ns = cp.namespace(&client, &format!("{prefix}-exec")).await;
    Env {
        wfes: Api::namespaced(client.clone(), &ns),
        runs: Api::namespaced(client.clone(), &exec_ns),
        client,
        ns,
        exec_ns,
    }
}

impl Env {
    pub fn controller(&self, identity: &str) -> ControllerReplica {
        ControllerReplica::start(
            self.client.clone(),
            settings(&self.ns, &self.exec_ns, identity),
        )
    }

    pub fn tekton(&self, delay_ms: u64) -> TektonStandIn {
        TektonStandIn::start(
            self.client.clone(),
            &self.exec_ns,
            Duration::from_millis(delay_ms),
        )
    }

    /// Creates `name` on `target`; `outcome` is what the Tekton stand-in makes of its run.
    pub async fn create(
        &self,
        name: &str,
        target: &str,
        outcome: Option<&str>,
    ) -> WorkflowExecution {
        self.create_from(name, spec(name, target, outcome)).await
    }

    /// Creates `name` from a builder (a spec of [`spec`], changed).
    pub async fn create_from(&self, name: &str, builder: ExecutionBuilder) -> WorkflowExecution {
        let spec = builder.build().spec;
        self.wfes
            .create(&PostParams::default(), &WorkflowExecution::new(name, spec))
            .await
            .expect("create WorkflowExecution")
    }

    /// Waits until the PipelineRun holding `target`'s lock is gone.
    pub async fn wait_run_deleted(&self, target: &str) {
        let runs = self.runs.clone();
        let name = pipeline_run_name(target);
        eventually(
            "the PipelineRun to be deleted",
            Duration::from_secs(30),
            || {
                let (runs, name) = (runs.clone(), name.clone());
                async move { runs.get_opt(&name).await.ok()?.is_none().then_some(()) }
            },
        )
        .await;
    }

    pub async fn wait_phase(&self, name: &str, phase: Phase) -> WorkflowExecution {
        let api = self.wfes.clone();
        eventually(
            &format!("{name} to be {phase:?}"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                async move {
                    let w = api.get(name).await.ok()?;
                    (w.status.as_ref().map(|s| s.phase) == Some(phase)).then_some(w)
                }
            },
        )
        .await
    }

    /// Event reasons recorded for a WorkflowExecution, with their series counts.
    pub async fn events(&self, name: &str) -> BTreeMap<String, i32> {
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &self.ns);
        let mut out = BTreeMap::new();
        for e in events.list(&ListParams::default()).await.unwrap().items {
            if e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) {
                let count = e.series.as_ref().map(|s| s.count).unwrap_or(1);
                *out.entry(e.reason.unwrap_or_default()).or_insert(0) += count;
            }
        }
        out
    }

    /// How many times `reason` was recorded for `name`: waits for the first one (Events follow the
    /// status write that caused them), then lets a moment pass so that a duplicate would show.
    pub async fn settled_event_count(&self, name: &str, reason: &str) -> i32 {
        let what = format!("Event {reason} for {name}");
        eventually(&what, Duration::from_secs(15), || async {
            self.events(name).await.get(reason).copied()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.events(name).await.get(reason).copied().unwrap_or(0)
    }

    pub async fn run_count(&self) -> usize {
        self.runs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
    }
}

/// The spec the tests create: request `rr-<name>`, `target`, one parameter, a 10m timeout, and
/// `SIMULATE_OUTCOME` when given.
pub fn spec(name: &str, target: &str, outcome: Option<&str>) -> ExecutionBuilder {
    let w = execution(name)
        .remediation_request(&format!("rr-{name}"))
        .target(target)
        .param("REPLICAS", "3")
        .timeout("10m")
        .service_account("runner");
    match outcome {
        Some(o) => w.param("SIMULATE_OUTCOME", o),
        None => w,
    }
}

/// A controller counter once it has reached `at_least` and a moment has passed (counters follow the
/// writes they count, which a test can observe first).
pub async fn settled_counter(c: &ControllerReplica, name: &str, label: &str, at_least: u64) -> u64 {
    let what = format!("{name}{{{label}}} to reach {at_least}");
    eventually(&what, Duration::from_secs(15), || async {
        (c.counter(name, label) >= at_least).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.counter(name, label)
}
