//! The PipelineRun and TaskRun statuses the controller reads from Tekton: the slim parser that fills
//! its cache, and the failure classification built on it.
//!
//! Input: `{"pipelineRun": <PipelineRun>, "taskRuns": [<TaskRun>, ...]}` as Tekton writes them.

use std::collections::BTreeSet;

use serde::Deserialize;
use wfe_shared::api::FailureReason;
use wfe_shared::tekton::classify::{Classification, classify, naming_the_bundle};
use wfe_shared::tekton::observed::{ObservedRun, ObservedTaskRun};
use wfe_shared::tekton::{PipelineRun, TaskRun};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input<R, T> {
    pipeline_run: R,
    #[serde(default = "Vec::new")]
    task_runs: Vec<T>,
}

/// The bundle the execution asked for, as the controller passes it to [`naming_the_bundle`].
const BUNDLE: &str = "registry.example/workflows/restart:v1";

/// The invariants:
/// - the slim parser reads whatever a full read does, and keeps exactly what the full object,
///   observed, keeps (the cache and a fresh read agree);
/// - a failed run's classification is consistent: the failed task is one of the run's children, a
///   step or exit code only with a failed task, an exit code is never 0, 137 is OOMKilled, a failure
///   before any step ran (image pull, configuration, quota) is never an execution failure, and no
///   execution failure without a start time and TaskRuns;
/// - the classification does not depend on the order the TaskRuns were listed in;
/// - an unresolvable bundle's message names the bundle.
pub fn check(data: &[u8]) {
    let slim = serde_json::from_slice::<Input<ObservedRun, ObservedTaskRun>>(data);
    if let Ok(full) = serde_json::from_slice::<Input<PipelineRun, TaskRun>>(data) {
        let slim = match &slim {
            Ok(s) => s,
            // A key twice in one object: a full read keeps the last, the slim parser refuses the
            // object. The API server never writes one (Go's encoder cannot); accepted divergence.
            Err(e) if e.to_string().starts_with("duplicate field") => return,
            Err(e) => panic!("a full read parses but the cache's slim parser refuses it: {e}"),
        };
        assert_eq!(
            ObservedRun::from(full.pipeline_run),
            slim.pipeline_run,
            "the cached PipelineRun differs from the observed full read"
        );
        let observed: Vec<ObservedTaskRun> = full
            .task_runs
            .into_iter()
            .map(ObservedTaskRun::from)
            .collect();
        assert_eq!(
            observed, slim.task_runs,
            "the cached TaskRuns differ from the observed full read"
        );
    }
    let Ok(input) = slim else {
        return;
    };
    let Some(status) = input.pipeline_run.status.as_ref() else {
        return;
    };
    if !status.succeeded().is_some_and(|c| c.is_false()) {
        return;
    }
    let c = classify(status, &input.task_runs);
    consistent(&c, status, &input.task_runs);

    let names: BTreeSet<&str> = input.task_runs.iter().map(ObservedTaskRun::name).collect();
    if names.len() == input.task_runs.len() {
        let mut reversed = input.task_runs.clone();
        reversed.reverse();
        assert_eq!(
            classify(status, &reversed),
            c,
            "the classification depends on the order of the TaskRuns"
        );
    }

    let named = naming_the_bundle(c, status, BUNDLE);
    let unresolved = status
        .succeeded()
        .and_then(|cond| cond.reason.as_deref())
        .is_some_and(|r| r == "CouldntGetPipeline");
    if unresolved {
        assert!(
            named.message.contains(BUNDLE),
            "an unresolved bundle's message does not name it: {:?}",
            named.message
        );
    }
}

fn consistent(
    c: &Classification,
    status: &wfe_shared::tekton::PipelineRunStatus,
    task_runs: &[ObservedTaskRun],
) {
    let children = status.task_run_children().count() as i32;
    assert!(
        (-1..children).contains(&c.failed_task_index),
        "failed task index {} outside the run's {children} TaskRuns",
        c.failed_task_index
    );
    if c.failed_task_index == -1 {
        assert!(
            c.failed_task_name.is_empty() && c.failed_step_name.is_none() && c.exit_code.is_none(),
            "a step or exit code without a failed task: {c:?}"
        );
    }
    assert_ne!(c.exit_code, Some(0), "exit code 0 reported as the failure");
    if c.exit_code == Some(137) {
        assert_eq!(c.reason, FailureReason::OOMKilled, "exit 137 not OOMKilled");
    }
    let before_start = matches!(
        c.reason,
        FailureReason::ImagePullBackOff
            | FailureReason::ConfigurationError
            | FailureReason::ResourceExhausted
    );
    if c.was_execution_failure {
        assert!(
            !before_start,
            "{:?} happens before any step runs, yet counted as an execution failure",
            c.reason
        );
        assert!(
            status.start_time.is_some() && children > 0,
            "an execution failure without a start or TaskRuns"
        );
    }
    if c.failed_task_index >= 0 {
        assert!(
            !task_runs.is_empty(),
            "a failed task found without any TaskRun observed"
        );
    }
}
