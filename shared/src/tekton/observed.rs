//! What the controller observes of its PipelineRuns and TaskRuns: identity, owner and the status the
//! plan reads — the shared status types themselves, parsed directly.
//!
//! With 10,000 executions and their PipelineRuns cached the controller must stay within tens of MiB
//! (docs/benchmarks.md), so a watched object keeps only what a reconcile reads. Specs, managed
//! fields and Tekton's copies of the pipeline are skipped by the parser, never allocated; of the
//! conditions only `Succeeded` is kept, and a TaskRun's step states only once it has failed (they
//! are read only to classify a failure).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::Deserialize;

use super::ownership::{Holder, Owner};
use super::{KnativeCondition, PipelineRun, PipelineRunStatus, TaskRun, TaskRunStatus};

/// Tekton's label on TaskRuns naming their PipelineRun.
pub const PIPELINE_RUN_LABEL: &str = "tekton.dev/pipelineRun";

/// Who a watched object is: what a cache keys it by, a delete's precondition, and whether it is
/// already being deleted. (Not an `ObjectMeta`: that is 360 bytes of mostly empty fields, kept once
/// per cached run — see docs/benchmarks.md.)
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub deletion_timestamp: Option<Time>,
}

impl Identity {
    /// The same identity as object metadata, for the watch machinery.
    fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            ..ObjectMeta::default()
        }
    }
}

/// A PipelineRun as the controller observes (and caches) it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawRun")]
pub struct ObservedRun {
    pub identity: Identity,
    /// The WorkflowExecution its labels name.
    pub owner: Option<Owner>,
    pub status: Option<PipelineRunStatus>,
}

/// A TaskRun as the controller observes (and caches) it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawTaskRun")]
pub struct ObservedTaskRun {
    pub identity: Identity,
    pub owner: Option<Owner>,
    /// `tekton.dev/pipelineRun`.
    pub pipeline_run: Option<String>,
    pub status: Option<TaskRunStatus>,
}

impl ObservedRun {
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    pub fn succeeded(&self) -> Option<&KnativeCondition> {
        self.status.as_ref().and_then(PipelineRunStatus::succeeded)
    }

    pub fn has_failed(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(PipelineRunStatus::has_failed)
    }

    pub fn has_started(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(PipelineRunStatus::has_started)
    }

    /// Whose this run is, seen from `me`.
    pub fn holder(&self, me: &Owner) -> Holder {
        me.sees(self.owner.as_ref())
    }

    /// The lock this run represents is still held by `me`: the run is its own and is not already
    /// being deleted.
    pub fn is_lock_of(&self, me: &Owner) -> bool {
        self.holder(me) == Holder::Ours && self.identity.deletion_timestamp.is_none()
    }
}

impl ObservedTaskRun {
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Its `Succeeded` condition has settled (True or False): nothing about it changes any more.
    pub fn is_settled(&self) -> bool {
        self.status.as_ref().is_some_and(TaskRunStatus::is_settled)
    }

    pub fn succeeded(&self) -> Option<&KnativeCondition> {
        self.status.as_ref().and_then(TaskRunStatus::succeeded)
    }
}

/// An observed form with the Tekton kind it stands for: what a cache of it needs to know.
pub trait Observed: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The Tekton kind (its API group, version and plural).
    type Kind: Resource<DynamicType = ()>;
    fn identity(&self) -> &Identity;
}

impl Observed for ObservedRun {
    type Kind = PipelineRun;
    fn identity(&self) -> &Identity {
        &self.identity
    }
}

impl Observed for ObservedTaskRun {
    type Kind = TaskRun;
    fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// An observed object as the watch and read API sees it: the Tekton kind, with the metadata a watch
/// tracks (name, namespace, uid, resourceVersion). Only passes through; what is kept is `observed`.
#[derive(Clone, Debug)]
pub struct Watched<T> {
    pub metadata: ObjectMeta,
    pub observed: T,
}

impl<'de, T: Observed + Deserialize<'de>> Deserialize<'de> for Watched<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let observed = T::deserialize(d)?;
        Ok(Watched {
            metadata: observed.identity().meta(),
            observed,
        })
    }
}

impl<T: Observed> Resource for Watched<T> {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        T::Kind::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        T::Kind::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        T::Kind::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        T::Kind::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What is parsed of a PipelineRun: everything else (spec, managed fields, Tekton's copy of the
/// pipeline spec) is skipped by the parser rather than allocated and dropped.
#[derive(Deserialize)]
struct RawRun {
    metadata: SlimMeta,
    #[serde(default)]
    status: Option<PipelineRunStatus>,
}

#[derive(Deserialize)]
struct RawTaskRun {
    metadata: SlimMeta,
    #[serde(default)]
    status: Option<TaskRunStatus>,
}

#[derive(Default, Deserialize)]
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
    fn from_meta(m: ObjectMeta) -> Self {
        SlimMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels.unwrap_or_default(),
        }
    }

    /// Identity, the owner from the labels, and the labels themselves.
    fn split(self) -> (Identity, Option<Owner>, BTreeMap<String, String>) {
        let owner = Owner::from_labels(&self.labels);
        let identity = Identity {
            name: self.name.unwrap_or_default(),
            namespace: self.namespace.unwrap_or_default(),
            uid: self.uid,
            resource_version: self.resource_version,
            deletion_timestamp: self.deletion_timestamp,
        };
        (identity, owner, self.labels)
    }
}

impl From<RawRun> for ObservedRun {
    fn from(raw: RawRun) -> Self {
        let (identity, owner, _) = raw.metadata.split();
        ObservedRun {
            identity,
            owner,
            status: raw.status.map(|s| PipelineRunStatus {
                conditions: succeeded_only(s.conditions),
                ..s
            }),
        }
    }
}

impl From<RawTaskRun> for ObservedTaskRun {
    fn from(raw: RawTaskRun) -> Self {
        let (identity, owner, labels) = raw.metadata.split();
        let status = raw.status.map(|s| {
            let conditions = succeeded_only(s.conditions);
            let failed = conditions.iter().any(KnativeCondition::is_false);
            TaskRunStatus {
                conditions,
                pod_name: None,
                steps: if failed { s.steps } else { Vec::new() },
                ..s
            }
        });
        ObservedTaskRun {
            identity,
            owner,
            pipeline_run: labels.get(PIPELINE_RUN_LABEL).cloned(),
            status,
        }
    }
}

/// What the controller observes of a whole PipelineRun (a fresh read, a test fixture).
impl From<PipelineRun> for ObservedRun {
    fn from(run: PipelineRun) -> Self {
        RawRun {
            metadata: SlimMeta::from_meta(run.metadata),
            status: run.status,
        }
        .into()
    }
}

/// What the controller observes of a whole TaskRun.
impl From<TaskRun> for ObservedTaskRun {
    fn from(tr: TaskRun) -> Self {
        RawTaskRun {
            metadata: SlimMeta::from_meta(tr.metadata),
            status: tr.status,
        }
        .into()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionStatus;
    use crate::api::names;
    use serde_json::json;

    fn run_json() -> serde_json::Value {
        json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {
                "name": "wfe-0123456789abcdef", "namespace": "exec", "uid": "u-1", "resourceVersion": "7",
                "labels": {names::WORKFLOW_EXECUTION: "w", names::SOURCE_NAMESPACE: "team",
                           "tekton.dev/pipeline": "workflow"},
                "annotations": {names::TARGET_RESOURCE: "ns/deployment/x"},
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
        let run: ObservedRun = serde_json::from_value(run_json()).unwrap();
        let id = &run.identity;
        assert_eq!(id.name, "wfe-0123456789abcdef");
        assert_eq!(id.namespace, "exec");
        assert_eq!(id.uid.as_deref(), Some("u-1"));
        assert_eq!(id.resource_version.as_deref(), Some("7"));
        assert!(id.deletion_timestamp.is_none());
        assert_eq!(
            run.owner,
            Some(Owner {
                namespace: "team".into(),
                name: "w".into()
            })
        );
        let s = run.status.as_ref().unwrap();
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].status, ConditionStatus::False);
        assert_eq!(s.conditions[0].message.as_deref(), Some("boom"));
        assert!(s.start_time.is_some() && s.completion_time.is_some());
        assert_eq!(s.child_references.len(), 1);
        assert_eq!(
            s.child_references[0].pipeline_task_name.as_deref(),
            Some("t")
        );
        // pipelineSpec and provenance have no field to land in: the parser skips them.
        assert_eq!(run.holder(&Owner::named("team", "w")), Holder::Ours);
        assert_ne!(run.holder(&Owner::named("team", "v")), Holder::Ours);
        assert_ne!(run.holder(&Owner::named("other", "w")), Holder::Ours);
    }

    #[test]
    fn a_watched_run_carries_what_a_watch_tracks_and_the_observed_run() {
        let watched: Watched<ObservedRun> = serde_json::from_value(run_json()).unwrap();
        let m = watched.meta();
        assert_eq!(m.name.as_deref(), Some("wfe-0123456789abcdef"));
        assert_eq!(m.namespace.as_deref(), Some("exec"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert!(m.labels.is_none() && m.managed_fields.is_none());
        let observed: ObservedRun = serde_json::from_value(run_json()).unwrap();
        assert_eq!(watched.observed, observed);
        assert_eq!(Watched::<ObservedRun>::plural(&()), "pipelineruns");
        assert_eq!(Watched::<ObservedTaskRun>::kind(&()), "TaskRun");
        assert_eq!(Watched::<ObservedTaskRun>::group(&()), "tekton.dev");
        assert_eq!(Watched::<ObservedRun>::version(&()), "v1");
    }

    #[test]
    fn a_run_being_deleted_holds_no_lock() {
        let mut v = run_json();
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:02:00Z");
        let run: ObservedRun = serde_json::from_value(v).unwrap();
        let me = Owner::named("team", "w");
        assert_eq!(run.holder(&me), Holder::Ours);
        assert!(!run.is_lock_of(&me));
        let run: ObservedRun = serde_json::from_value(run_json()).unwrap();
        assert!(run.is_lock_of(&me));
        assert!(!run.is_lock_of(&Owner::named("team", "v")));
    }

    #[test]
    fn a_run_without_status_is_cached_without_status() {
        let mut v = run_json();
        v.as_object_mut().unwrap().remove("status");
        let run: ObservedRun = serde_json::from_value(v).unwrap();
        assert!(run.status.is_none());
    }

    fn task_run_json(status: &str) -> serde_json::Value {
        json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "wfe-0123456789abcdef-t", "namespace": "exec", "resourceVersion": "3",
                         "labels": {names::WORKFLOW_EXECUTION: "w", names::SOURCE_NAMESPACE: "team",
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
        let tr: ObservedTaskRun = serde_json::from_value(task_run_json("False")).unwrap();
        assert_eq!(tr.pipeline_run.as_deref(), Some("wfe-0123456789abcdef"));
        assert_eq!(tr.owner.as_ref().map(|o| o.name.as_str()), Some("w"));
        assert!(tr.is_settled());
        let s = tr.status.as_ref().unwrap();
        assert_eq!(s.steps.len(), 1);
        let t = s.steps[0].terminated.as_ref().unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
        assert!(s.pod_name.is_none());
    }

    #[test]
    fn other_task_runs_keep_only_their_condition() {
        for (status, settled) in [("True", true), ("Unknown", false)] {
            let tr: ObservedTaskRun = serde_json::from_value(task_run_json(status)).unwrap();
            assert!(tr.status.as_ref().unwrap().steps.is_empty());
            assert_eq!(tr.is_settled(), settled);
        }
    }
}
