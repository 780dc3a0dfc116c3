//! The failure summary an on-call engineer reads first: what, where, why, after how long, what to do.

use crate::api::{FailureReason, PipelineRunRef, WorkflowExecution};
use crate::tekton::classify::Classification;

/// A few lines an on-call engineer can act on: what, where, why, after how long, what to do.
pub fn summary(
    wfe: &WorkflowExecution,
    c: &Classification,
    elapsed: &str,
    run: Option<&PipelineRunRef>,
) -> String {
    let wf = &wfe.spec.workflow_ref;
    let mut lines = vec![format!(
        "Workflow {} ({}) failed on {} after {elapsed}: {:?}.",
        wf.workflow_id, wf.version, wfe.spec.target_resource, c.reason
    )];
    if c.failed_task_index >= 0 {
        let step = c
            .failed_step_name
            .as_deref()
            .map(|s| format!(", step {s}"))
            .unwrap_or_default();
        let code = c
            .exit_code
            .map(|e| format!(", exit code {e}"))
            .unwrap_or_default();
        lines.push(format!(
            "Failed in task {}{step}{code}.",
            c.failed_task_name
        ));
    }
    if !c.message.is_empty() {
        lines.push(format!("Cause: {}", c.message));
    }
    lines.push(
        match c.reason {
            FailureReason::OOMKilled => "Action: raise the step's memory limit, or check the target for a memory leak.",
            FailureReason::DeadlineExceeded => "Action: check where the PipelineRun stalled; raise spec.executionConfig.timeout only if the workflow legitimately needs longer.",
            FailureReason::ImagePullBackOff => "Action: check that the bundle's step images exist and are pullable from the execution namespace.",
            FailureReason::ConfigurationError => "Action: fix the workflow bundle, its parameters or the service account, then create a new WorkflowExecution.",
            FailureReason::Forbidden => "Action: grant the workflow's service account the RBAC permissions it needs.",
            FailureReason::ResourceExhausted => "Action: free quota or node resources in the execution namespace.",
            FailureReason::TaskFailed => "Action: read the failed step's logs.",
            FailureReason::Unknown => "Action: inspect the PipelineRun and its TaskRuns.",
        }
        .to_owned(),
    );
    lines.push(if c.was_execution_failure {
        "The workflow ran: non-idempotent actions may have been applied; check the target before running a workflow on it again.".to_owned()
    } else {
        "Nothing was executed against the target.".to_owned()
    });
    if let Some(run) = run {
        lines.push(format!("PipelineRun: {}.", run.name));
    }
    lines.join("\n")
}
