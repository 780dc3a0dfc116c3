//! The subset of Tekton `tekton.dev/v1` PipelineRun and TaskRun that the controller writes and reads.
//!
//! No maintained Rust crate carries Tekton's types, so these are hand-written: exactly the fields the
//! controller writes or reads, nothing else. Unknown fields are skipped by the parser (never
//! allocated), which is what lets the controller cache these types directly
//! ([`super::observed`]). The controller never reads an object back to write it, so nothing is lost.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, PodSecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Deserializer, Serialize};
use serde_with::skip_serializing_none;

use crate::api::ConditionStatus;

/// Spec of a Tekton PipelineRun.
#[skip_serializing_none]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tekton.dev",
    version = "v1",
    kind = "PipelineRun",
    namespaced,
    status = "PipelineRunStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    pub pipeline_ref: Option<PipelineRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    pub task_run_template: Option<PipelineTaskRunTemplate>,
    pub timeouts: Option<TimeoutFields>,
}

/// Where the Pipeline comes from: by name, or through a resolver (we use `bundles`).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRef {
    pub name: Option<String>,
    pub resolver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// A named parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: ParamValue,
}

/// Tekton parameter values are strings, arrays of strings, or objects of strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    String(String),
    Array(Vec<String>),
    Object(BTreeMap<String, String>),
}

/// Settings applied to every TaskRun of the PipelineRun.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTaskRunTemplate {
    pub service_account_name: Option<String>,
    pub pod_template: Option<PodTemplate>,
}

/// Tekton's pod template (the part we set).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    pub security_context: Option<PodSecurityContext>,
}

/// PipelineRun timeouts, as Go duration strings.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutFields {
    pub pipeline: Option<String>,
    pub tasks: Option<String>,
    pub finally: Option<String>,
}

/// Status of a PipelineRun.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KnativeCondition>,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_references: Vec<ChildStatusReference>,
}

/// A Knative-style condition (`Succeeded` is the one that matters).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnativeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// Read leniently: anything but `True` or `False` is `Unknown`, as Knative defines it.
    #[serde(deserialize_with = "lenient_status")]
    pub status: ConditionStatus,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
    pub severity: Option<String>,
}

/// A child (TaskRun, CustomRun) of a PipelineRun.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatusReference {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub pipeline_task_name: Option<String>,
}

/// Spec of a Tekton TaskRun: the controller never writes TaskRuns, so nothing is modelled.
#[skip_serializing_none]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tekton.dev",
    version = "v1",
    kind = "TaskRun",
    namespaced,
    status = "TaskRunStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
pub struct TaskRunSpec {}

/// Status of a TaskRun: its condition and per-step container states.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KnativeCondition>,
    pub pod_name: Option<String>,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepState>,
}

/// One step's container state (Tekton inlines `corev1.ContainerState`).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub name: Option<String>,
    pub container: Option<String>,
    pub waiting: Option<ContainerStateWaiting>,
    pub running: Option<ContainerStateRunning>,
    pub terminated: Option<ContainerStateTerminated>,
    pub termination_reason: Option<String>,
}

fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> Result<ConditionStatus, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(ConditionStatus::from(s.as_ref()))
}

/// The `Succeeded` condition of a Tekton object: the one that says how it ended.
pub fn succeeded(conditions: &[KnativeCondition]) -> Option<&KnativeCondition> {
    conditions.iter().find(|c| c.type_ == "Succeeded")
}

impl KnativeCondition {
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    pub fn is_false(&self) -> bool {
        self.status == ConditionStatus::False
    }
}

impl PipelineRunStatus {
    pub fn succeeded(&self) -> Option<&KnativeCondition> {
        succeeded(&self.conditions)
    }

    /// `Succeeded` is False: the run ended in failure.
    pub fn has_failed(&self) -> bool {
        self.succeeded().is_some_and(KnativeCondition::is_false)
    }

    /// Whether the PipelineRun has really started running its tasks. Tekton sets `startTime` (and
    /// `Succeeded=Unknown/Started`) on its first look at a run, before resolving the pipeline or
    /// creating any TaskRun, so neither says it started: reason `Running` does (TaskRuns exist), and
    /// so does an end that ran tasks.
    pub fn has_started(&self) -> bool {
        match self.succeeded() {
            Some(c) if c.is_true() => true,
            Some(c) if c.is_false() => !self.child_references.is_empty(),
            Some(c) => c.reason.as_deref() == Some("Running"),
            None => false,
        }
    }

    /// The children that are TaskRuns (a child without a kind is one), in Tekton's order.
    pub fn task_run_children(&self) -> impl Iterator<Item = &ChildStatusReference> {
        self.child_references
            .iter()
            .filter(|c| c.kind.as_deref().is_none_or(|k| k == "TaskRun"))
    }
}

impl TaskRunStatus {
    pub fn succeeded(&self) -> Option<&KnativeCondition> {
        succeeded(&self.conditions)
    }

    /// Its `Succeeded` condition has settled (True or False): nothing about it changes any more.
    pub fn is_settled(&self) -> bool {
        self.succeeded()
            .is_some_and(|c| c.status != ConditionStatus::Unknown)
    }
}
