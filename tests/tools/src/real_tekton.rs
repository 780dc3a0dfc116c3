//! The product against the real Tekton (see [`wfe_harness::RealTekton`]): workflow bundles pushed to
//! the environment's registry, one per outcome, and what a test needs around them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use wfe_harness::real_tekton::outcome_image;
use wfe_harness::{ControlPlane, RealTekton};

/// The shared control plane with the product's CRDs and the real Tekton running on it (started
/// on first use, for the whole test binary). Panics if either cannot start: tests never skip.
pub fn shared() -> (&'static ControlPlane, &'static RealTekton) {
    wfe_harness::shared_with_real_tekton(crate::product_crds)
}

/// What a workflow's `remediate` task does, as KWOK plays its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Every step exits 0.
    Succeed,
    /// Step `apply` exits 1.
    Exit1,
    /// Step `apply` is OOMKilled (exit 137).
    OomKilled,
    /// Step `apply`'s image cannot be pulled.
    ImagePullFails,
    /// Step `apply` never finishes (only a timeout ends the run).
    Hangs,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Succeed,
        Outcome::Exit1,
        Outcome::OomKilled,
        Outcome::ImagePullFails,
        Outcome::Hangs,
    ];

    /// The image of step `apply`, which selects the KWOK stage.
    pub fn step_image(self) -> &'static str {
        match self {
            Outcome::Succeed => outcome_image::OK,
            Outcome::Exit1 => outcome_image::EXIT_1,
            Outcome::OomKilled => outcome_image::OOM,
            Outcome::ImagePullFails => outcome_image::PULL_FAIL,
            Outcome::Hangs => outcome_image::HANG,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Outcome::Succeed => "succeed",
            Outcome::Exit1 => "exit1",
            Outcome::OomKilled => "oom",
            Outcome::ImagePullFails => "pull-fail",
            Outcome::Hangs => "hang",
        }
    }
}

/// The pipeline task whose step decides the outcome, and that step.
pub const FAILING_TASK: &str = "remediate";
pub const FAILING_STEP: &str = "apply";
/// The bundles' repository in the registry.
pub const REPOSITORY: &str = "kubernaut/workflows/restart";

/// The bundle of `outcome`'s workflow, pushed once per test binary; returns its reference.
/// Panics if it cannot be pushed (tests never skip).
pub fn bundle(tekton: &RealTekton, outcome: Outcome) -> String {
    match try_bundle(tekton, outcome) {
        Ok(reference) => reference,
        Err(e) => panic!("cannot push the {outcome:?} bundle: {e:#}"),
    }
}

/// [`bundle`], with the error returned.
pub fn try_bundle(tekton: &RealTekton, outcome: Outcome) -> anyhow::Result<String> {
    static PUSHED: Mutex<BTreeMap<Outcome, String>> = Mutex::new(BTreeMap::new());
    let mut pushed = match PUSHED.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(reference) = pushed.get(&outcome) {
        return Ok(reference.clone());
    }
    let reference = format!("{}/{REPOSITORY}:{}", tekton.registry, outcome.tag());
    let yaml = workflow_bundle(&reference, outcome.step_image());
    let pushed_as = tekton.push_bundle(REPOSITORY, outcome.tag(), &yaml)?;
    pushed.insert(outcome, pushed_as.clone());
    Ok(pushed_as)
}

/// A workflow bundle as a workflow author writes one: Pipeline `workflow` (the name our
/// PipelineRuns ask for) running Task `check` then Task `remediate`, both resolved from the same
/// bundle (`reference`), with the parameters our PipelineRuns pass. `remediate`'s second step,
/// `apply`, runs `apply_image`.
pub fn workflow_bundle(reference: &str, apply_image: &str) -> String {
    let task_ref = |name: &str| {
        format!(
            "    taskRef:\n      resolver: bundles\n      params:\n      - {{name: bundle, value: \"{reference}\"}}\n      - {{name: name, value: {name}}}\n      - {{name: kind, value: task}}\n"
        )
    };
    format!(
        r#"apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: workflow
spec:
  params:
  - {{name: TARGET_RESOURCE, type: string}}
  - {{name: REPLICAS, type: string, default: "1"}}
  tasks:
  - name: check
{check}    params:
    - {{name: target, value: $(params.TARGET_RESOURCE)}}
  - name: {FAILING_TASK}
    runAfter: [check]
{remediate}    params:
    - {{name: target, value: $(params.TARGET_RESOURCE)}}
    - {{name: replicas, value: $(params.REPLICAS)}}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: check
spec:
  params:
  - {{name: target, type: string}}
  steps:
  - name: inspect
    image: {ok}
    command: ["kubectl", "get", "$(params.target)"]
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: {FAILING_TASK}
spec:
  params:
  - {{name: target, type: string}}
  - {{name: replicas, type: string}}
  steps:
  - name: prepare
    image: {ok}
    command: ["true"]
  - name: {FAILING_STEP}
    image: {apply_image}
    command: ["kubectl", "scale", "--replicas=$(params.replicas)", "$(params.target)"]
  - name: verify
    image: {ok}
    command: ["true"]
"#,
        check = task_ref("check"),
        remediate = task_ref(FAILING_TASK),
        ok = outcome_image::OK,
    )
}
