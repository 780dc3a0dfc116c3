//! What the controller keeps in memory: slim copies of the objects it watches.
//!
//! With 10,000 executions and their PipelineRuns cached the controller must stay within tens of MiB
//! (docs/benchmarks.md), so the caches hold only what a reconcile reads:
//! - PipelineRuns are parsed into [`CachedRun`] — identity, the two owner labels and the status
//!   fields the desired status is computed from. Their spec and managed fields are never even parsed.
//! - WorkflowExecutions keep their spec and status while they are Pending or Running (a reconcile
//!   builds the PipelineRun from the spec and recomputes the whole status) and lose only metadata no
//!   reconcile reads; once terminal, [`trim_execution`] trims them further: a terminal status is
//!   never rewritten, so only what lock release, deletion and messages need remains.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::Deserialize;
use wfe_shared::WorkflowExecution;
use wfe_shared::labels;
use wfe_shared::pipelinerun::owner_labels_match;
use wfe_shared::tekton::{
    ChildStatusReference, KnativeCondition, PipelineRun, PipelineRunStatus, StepState, TaskRun,
    TaskRunStatus,
};

/// A PipelineRun as the controller caches it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "RawRun")]
pub struct CachedRun {
    /// Name, namespace, uid, resourceVersion and deletionTimestamp only.
    pub metadata: ObjectMeta,
    /// The WorkflowExecution its labels name.
    pub owner: Option<Owner>,
    pub status: Option<PipelineRunStatus>,
}

/// The values of a PipelineRun's owner labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `kubernaut.ai/source-namespace` (empty when the label is missing).
    pub namespace: String,
    /// `kubernaut.ai/workflow-execution`.
    pub name: String,
}

/// A slim cached type watched as the Tekton kind it stands for.
macro_rules! watched_as {
    ($cached:ty, $kind:ty) => {
        impl Resource for $cached {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                <$kind>::kind(&())
            }
            fn group(_: &()) -> Cow<'_, str> {
                <$kind>::group(&())
            }
            fn version(_: &()) -> Cow<'_, str> {
                <$kind>::version(&())
            }
            fn plural(_: &()) -> Cow<'_, str> {
                <$kind>::plural(&())
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

watched_as!(CachedRun, PipelineRun);
watched_as!(CachedTaskRun, TaskRun);

impl CachedRun {
    /// The PipelineRun as the pure core reads it (no spec, no labels: nothing downstream reads them).
    pub fn to_pipeline_run(&self) -> PipelineRun {
        PipelineRun {
            metadata: self.metadata.clone(),
            spec: Default::default(),
            status: self.status.clone(),
        }
    }

    /// The lock this run represents is still held by `namespace/name`: the run is that execution's
    /// and is not already being deleted.
    pub fn is_lock_of(&self, namespace: &str, name: &str) -> bool {
        self.is_owned_by(namespace, name) && self.metadata.deletion_timestamp.is_none()
    }

    /// True when its labels name the WorkflowExecution `namespace/name`.
    pub fn is_owned_by(&self, namespace: &str, name: &str) -> bool {
        let owner = self.owner.as_ref();
        owner_labels_match(
            owner.map(|o| o.name.as_str()),
            owner
                .map(|o| o.namespace.as_str())
                .filter(|ns| !ns.is_empty()),
            namespace,
            name,
        )
    }
}

/// What is parsed of a PipelineRun: everything else (spec, managed fields, Tekton's copy of the
/// pipeline spec) is skipped by the parser rather than allocated and dropped.
#[derive(Deserialize)]
struct RawRun {
    metadata: SlimMeta,
    #[serde(default)]
    status: Option<SlimStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl SlimMeta {
    /// Identity only, and the owner from the labels. The execution label alone makes a run someone's
    /// (a lock holder); the namespace label completes the name.
    fn split(mut self) -> (ObjectMeta, Option<Owner>, BTreeMap<String, String>) {
        let owner = self
            .labels
            .remove(labels::WORKFLOW_EXECUTION)
            .map(|name| Owner {
                namespace: self
                    .labels
                    .remove(labels::SOURCE_NAMESPACE)
                    .unwrap_or_default(),
                name,
            });
        let meta = ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            resource_version: self.resource_version,
            deletion_timestamp: self.deletion_timestamp,
            ..ObjectMeta::default()
        };
        (meta, owner, self.labels)
    }
}

impl From<RawRun> for CachedRun {
    fn from(raw: RawRun) -> Self {
        let (metadata, owner, _) = raw.metadata.split();
        CachedRun {
            metadata,
            owner,
            status: raw.status.map(PipelineRunStatus::from),
        }
    }
}

/// Tekton's label on TaskRuns naming their PipelineRun.
pub const PIPELINE_RUN_LABEL: &str = "tekton.dev/pipelineRun";

/// A TaskRun as the controller caches it: identity, owner, its PipelineRun, its condition — and its
/// steps' states only once it has failed (they are read only to classify a failure).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "RawTaskRun")]
pub struct CachedTaskRun {
    pub metadata: ObjectMeta,
    pub owner: Option<Owner>,
    /// `tekton.dev/pipelineRun`.
    pub pipeline_run: Option<String>,
    pub status: Option<TaskRunStatus>,
}

impl CachedTaskRun {
    /// The TaskRun as the failure classification reads it.
    pub fn to_task_run(&self) -> TaskRun {
        TaskRun {
            metadata: self.metadata.clone(),
            spec: Default::default(),
            status: self.status.clone(),
        }
    }

    /// Its `Succeeded` condition has settled (True or False): nothing about it changes any more.
    pub fn is_finished(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| wfe_shared::failure::succeeded(&s.conditions))
            .is_some_and(|c| c.status == "True" || c.status == "False")
    }
}

#[derive(Deserialize)]
struct RawTaskRun {
    metadata: SlimMeta,
    #[serde(default)]
    status: Option<SlimTaskRunStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimTaskRunStatus {
    #[serde(default)]
    conditions: Vec<KnativeCondition>,
    start_time: Option<Time>,
    completion_time: Option<Time>,
    #[serde(default)]
    steps: Vec<SlimStep>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimStep {
    name: Option<String>,
    container: Option<String>,
    waiting: Option<ContainerStateWaiting>,
    terminated: Option<ContainerStateTerminated>,
    termination_reason: Option<String>,
}

impl From<RawTaskRun> for CachedTaskRun {
    fn from(raw: RawTaskRun) -> Self {
        let (metadata, owner, mut rest) = raw.metadata.split();
        let status = raw.status.map(|s| {
            let conditions = succeeded_only(s.conditions);
            let failed = conditions.iter().any(|c| c.status == "False");
            let steps = match failed {
                true => s.steps.into_iter().map(StepState::from).collect(),
                false => Vec::new(),
            };
            TaskRunStatus {
                conditions,
                pod_name: None,
                start_time: s.start_time,
                completion_time: s.completion_time,
                steps,
                extra: Default::default(),
            }
        });
        CachedTaskRun {
            metadata,
            owner,
            pipeline_run: rest.remove(PIPELINE_RUN_LABEL),
            status,
        }
    }
}

/// The `Succeeded` condition, without the fields nothing reads.
fn succeeded_only(conditions: Vec<KnativeCondition>) -> Vec<KnativeCondition> {
    conditions
        .into_iter()
        .filter(|c| c.type_ == "Succeeded")
        .map(|c| KnativeCondition {
            last_transition_time: None,
            severity: None,
            ..c
        })
        .collect()
}

impl From<SlimStep> for StepState {
    fn from(st: SlimStep) -> Self {
        StepState {
            name: st.name,
            container: st.container,
            waiting: st.waiting,
            running: None,
            terminated: st.terminated,
            termination_reason: st.termination_reason,
            extra: Default::default(),
        }
    }
}

/// The status fields the desired status and failure classification read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimStatus {
    #[serde(default)]
    conditions: Vec<KnativeCondition>,
    start_time: Option<Time>,
    completion_time: Option<Time>,
    #[serde(default)]
    child_references: Vec<SlimChild>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimChild {
    kind: Option<String>,
    name: String,
    pipeline_task_name: Option<String>,
}

impl From<SlimStatus> for PipelineRunStatus {
    fn from(s: SlimStatus) -> Self {
        PipelineRunStatus {
            conditions: succeeded_only(s.conditions),
            start_time: s.start_time,
            completion_time: s.completion_time,
            child_references: s
                .child_references
                .into_iter()
                .map(|c| ChildStatusReference {
                    kind: c.kind,
                    name: c.name,
                    pipeline_task_name: c.pipeline_task_name,
                    ..ChildStatusReference::default()
                })
                .collect(),
            extra: Default::default(),
        }
    }
}

/// Drops what a terminal (Completed, Failed, Skipped) execution's reconcile never reads; keeps
/// identity, finalizers, deletion, the target and workflow, and the status fields that lock release
/// and the per-target history (phase, times, PipelineRun, failure class, counters) are made of.
/// Executions still in flight lose only the metadata no reconcile reads (managed fields, labels,
/// annotations — `kubectl apply`'s last-applied copy of the object among them).
pub fn trim_execution(wfe: &mut WorkflowExecution) {
    let m = &mut wfe.metadata;
    m.managed_fields = None;
    m.annotations = None;
    m.labels = None;
    m.owner_references = None;
    let terminal = wfe.status.as_ref().is_some_and(|s| s.phase.is_terminal());
    if !terminal {
        return;
    }
    let spec = &mut wfe.spec;
    spec.parameters = BTreeMap::new();
    spec.rationale = None;
    spec.confidence = None;
    spec.execution_config = None;
    spec.workflow_ref.container_image = String::new();
    spec.workflow_ref.container_digest = None;
    spec.remediation_request_ref = Default::default();
    if let Some(s) = wfe.status.as_mut() {
        s.conditions = Vec::new();
        s.pipeline_run_status = None;
        if let Some(d) = s.failure_details.as_mut() {
            d.message = String::new();
            d.natural_language_summary = String::new();
            d.failed_task_name = String::new();
            d.failed_step_name = None;
        }
        if let Some(d) = s.skip_details.as_mut() {
            d.message = String::new();
            d.conflicting_workflow = None;
            d.recent_remediation = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wfe_shared::Phase;

    fn run_json() -> serde_json::Value {
        json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {
                "name": "wfe-0123456789abcdef", "namespace": "exec", "uid": "u-1", "resourceVersion": "7",
                "labels": {labels::WORKFLOW_EXECUTION: "w", labels::SOURCE_NAMESPACE: "team",
                           "tekton.dev/pipeline": "workflow"},
                "annotations": {labels::TARGET_RESOURCE: "ns/deployment/x"},
                "managedFields": [{"manager": "tekton", "operation": "Update", "fieldsV1": {"f:status": {}}}]
            },
            "spec": {"params": [{"name": "A", "value": "b"}], "pipelineRef": {"resolver": "bundles"}},
            "status": {
                "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:00Z",
                "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed",
                                "message": "boom", "lastTransitionTime": "2026-01-01T00:01:00Z"}],
                "childReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
                                     "name": "wfe-0123456789abcdef-t", "pipelineTaskName": "t"}],
                "pipelineSpec": {"tasks": [{"name": "t", "taskSpec": {"steps": [{"name": "s", "script": "x"}]}}]},
                "provenance": {"featureFlags": {"enableAPIFields": "beta"}}
            }
        })
    }

    #[test]
    fn a_cached_run_keeps_identity_owner_and_the_status_the_core_reads() {
        let run: CachedRun = serde_json::from_value(run_json()).unwrap();
        let m = &run.metadata;
        assert_eq!(m.name.as_deref(), Some("wfe-0123456789abcdef"));
        assert_eq!(m.namespace.as_deref(), Some("exec"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert_eq!(
            run.owner,
            Some(Owner {
                namespace: "team".into(),
                name: "w".into()
            })
        );
        assert!(m.labels.is_none() && m.annotations.is_none() && m.managed_fields.is_none());
        let s = run.status.as_ref().unwrap();
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].message.as_deref(), Some("boom"));
        assert!(s.start_time.is_some() && s.completion_time.is_some());
        assert_eq!(s.child_references.len(), 1);
        assert_eq!(
            s.child_references[0].pipeline_task_name.as_deref(),
            Some("t")
        );
        assert!(s.extra.is_empty(), "pipelineSpec/provenance are not kept");
        assert!(run.is_owned_by("team", "w"));
        assert!(!run.is_owned_by("team", "v"));
        assert!(!run.is_owned_by("other", "w"));
    }

    #[test]
    fn a_run_without_status_is_cached_without_status() {
        let mut v = run_json();
        v.as_object_mut().unwrap().remove("status");
        let run: CachedRun = serde_json::from_value(v).unwrap();
        assert!(run.status.is_none());
        assert!(run.to_pipeline_run().status.is_none());
    }

    fn task_run_json(status: &str) -> serde_json::Value {
        json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "wfe-0123456789abcdef-t", "namespace": "exec", "resourceVersion": "3",
                         "labels": {labels::WORKFLOW_EXECUTION: "w", labels::SOURCE_NAMESPACE: "team",
                                    PIPELINE_RUN_LABEL: "wfe-0123456789abcdef"}},
            "spec": {"taskSpec": {"steps": [{"name": "apply", "image": "x", "script": "long"}]}},
            "status": {
                "podName": "p",
                "conditions": [{"type": "Succeeded", "status": status, "reason": "Failed"}],
                "steps": [{"name": "apply", "container": "step-apply",
                           "terminated": {"exitCode": 137, "reason": "OOMKilled"}}],
                "taskSpec": {"steps": [{"name": "apply"}]}
            }
        })
    }

    #[test]
    fn a_failed_task_run_keeps_its_steps_for_classification() {
        let tr: CachedTaskRun = serde_json::from_value(task_run_json("False")).unwrap();
        assert_eq!(tr.pipeline_run.as_deref(), Some("wfe-0123456789abcdef"));
        assert_eq!(tr.owner.as_ref().map(|o| o.name.as_str()), Some("w"));
        assert!(tr.is_finished());
        let s = tr.status.as_ref().unwrap();
        assert_eq!(s.steps.len(), 1);
        let t = s.steps[0].terminated.as_ref().unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
        assert!(s.extra.is_empty() && s.pod_name.is_none());
    }

    #[test]
    fn other_task_runs_keep_only_their_condition() {
        for (status, finished) in [("True", true), ("Unknown", false)] {
            let tr: CachedTaskRun = serde_json::from_value(task_run_json(status)).unwrap();
            assert!(tr.status.as_ref().unwrap().steps.is_empty());
            assert_eq!(tr.is_finished(), finished);
        }
    }

    fn execution(phase: &str) -> WorkflowExecution {
        serde_json::from_value(json!({
            "apiVersion": "kubernaut.ai/v1alpha1", "kind": "WorkflowExecution",
            "metadata": {"name": "w", "namespace": "team", "resourceVersion": "9", "uid": "u",
                         "finalizers": [wfe_shared::pipelinerun::FINALIZER],
                         "labels": {"a": "b"}, "managedFields": [{"manager": "m"}]},
            "spec": {"remediationRequestRef": {"name": "rr"},
                     "workflowRef": {"workflowId": "restart", "version": "1", "containerImage": "quay.io/x/y:v1"},
                     "targetResource": "ns/deployment/x", "parameters": {"A": "b"},
                     "executionConfig": {"timeout": "30m"}},
            "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z",
                       "completionTime": "2026-01-01T00:01:00Z",
                       "pipelineRunRef": {"name": "wfe-0123456789abcdef"},
                       "conditions": [{"type": "TektonPipelineCreated", "status": "True", "reason": "PipelineCreated",
                                       "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn executions_in_flight_lose_only_metadata_no_reconcile_reads() {
        for phase in ["Pending", "Running"] {
            let original = execution(phase);
            let mut w = original.clone();
            trim_execution(&mut w);
            assert!(w.metadata.managed_fields.is_none() && w.metadata.labels.is_none());
            w.metadata.managed_fields = original.metadata.managed_fields.clone();
            w.metadata.labels = original.metadata.labels.clone();
            assert_eq!(w, original, "{phase}");
        }
    }

    #[test]
    fn terminal_executions_keep_what_lock_release_and_deletion_read() {
        let mut w = execution("Completed");
        trim_execution(&mut w);
        assert_eq!(w.metadata.name.as_deref(), Some("w"));
        assert_eq!(w.metadata.resource_version.as_deref(), Some("9"));
        assert_eq!(
            w.metadata.finalizers.as_deref(),
            Some(&[wfe_shared::pipelinerun::FINALIZER.to_owned()][..])
        );
        assert_eq!(w.spec.target_resource, "ns/deployment/x");
        assert_eq!(w.spec.workflow_ref.workflow_id, "restart");
        assert!(w.spec.parameters.is_empty() && w.spec.execution_config.is_none());
        let s = w.status.as_ref().unwrap();
        assert_eq!(s.phase, Phase::Completed);
        assert!(s.completion_time.is_some() && s.start_time.is_some());
        assert_eq!(
            s.pipeline_run_ref.as_ref().map(|r| r.name.as_str()),
            Some("wfe-0123456789abcdef")
        );
        assert!(s.conditions.is_empty());
    }
}
