//! What the controller keeps in memory of a WorkflowExecution. (PipelineRuns and TaskRuns are
//! cached as `wfe_shared::tekton::observed` parses them.)
//!
//! Executions keep their spec and status while they are Pending or Running (a reconcile builds the
//! PipelineRun from the spec and recomputes the whole status) and lose only metadata no reconcile
//! reads; once terminal, [`trim_execution`] trims them further: a terminal status is never
//! rewritten, so only what lock release, deletion and messages need remains.

use std::collections::BTreeMap;

use wfe_shared::WorkflowExecution;

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
    use wfe_shared::fixtures;

    fn execution(phase: &str) -> WorkflowExecution {
        fixtures::execution("w")
            .namespace("team")
            .resource_version("9")
            .uid("u")
            .finalized()
            .set("metadata.labels", json!({"a": "b"}))
            .set("metadata.managedFields", json!([{"manager": "m"}]))
            .remediation_request("rr")
            .workflow("restart", "1")
            .image("quay.io/x/y:v1")
            .target("ns/deployment/x")
            .param("A", "b")
            .timeout("30m")
            .status(json!({"phase": phase, "startTime": "2026-01-01T00:00:00Z",
                           "completionTime": "2026-01-01T00:01:00Z",
                           "pipelineRunRef": {"name": "wfe-0123456789abcdef"},
                           "conditions": [{"type": "TektonPipelineCreated", "status": "True", "reason": "PipelineCreated",
                                           "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .build()
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
            Some(&[wfe_shared::api::names::FINALIZER.to_owned()][..])
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
