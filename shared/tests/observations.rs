//! What the controller reads off the API types and observed runs, and the names it reports with:
//! each accessor and label on its own (the controller's suites use them all, but a change here must
//! be noticed by this crate's own tests too).

use serde_json::json;
use wfe_shared::admission::validation::validate;
use wfe_shared::api::{FailureReason, Phase, SkipReason};
use wfe_shared::fixtures::execution;
use wfe_shared::plan::{CreateResult, EventReason, LogLevel, LogLine};
use wfe_shared::tekton::PipelineRunStatus;
use wfe_shared::tekton::observed::ObservedRun;
use wfe_shared::tekton::ownership::Owner;

fn run(status: serde_json::Value) -> ObservedRun {
    serde_json::from_value(json!({
        "metadata": {"name": "wfe-1", "namespace": "exec", "uid": "u"},
        "status": status,
    }))
    .unwrap()
}

fn cond(status: &str, reason: &str) -> serde_json::Value {
    json!([{"type": "Succeeded", "status": status, "reason": reason, "message": "m",
            "severity": "Info", "lastTransitionTime": "2027-01-01T00:00:00Z"},
           {"type": "Other", "status": "True"}])
}

#[test]
fn an_observed_run_answers_from_its_succeeded_condition() {
    let running = run(json!({"conditions": cond("Unknown", "Running")}));
    assert_eq!(running.name(), "wfe-1");
    let c = running.succeeded().expect("the Succeeded condition");
    assert_eq!(c.reason.as_deref(), Some("Running"));
    // The cache keeps Succeeded alone, without the fields nothing reads.
    let status = running.status.as_ref().unwrap();
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(status.conditions[0].severity, None);
    assert_eq!(status.conditions[0].last_transition_time, None);
    assert!(running.has_started() && !running.has_failed());

    let started = run(json!({"conditions": cond("Unknown", "Started")}));
    assert!(!started.has_started(), "Tekton's first look is not a start");
    let failed_before = run(json!({"conditions": cond("False", "CouldntGetTask")}));
    assert!(failed_before.has_failed() && !failed_before.has_started());
    let failed_after = run(json!({"conditions": cond("False", "Failed"),
        "childReferences": [{"kind": "TaskRun", "name": "tr"}]}));
    assert!(failed_after.has_failed() && failed_after.has_started());
    let succeeded = run(json!({"conditions": cond("True", "Succeeded")}));
    assert!(succeeded.has_started() && !succeeded.has_failed());
    let nothing = run(json!(null));
    assert!(!nothing.has_started() && !nothing.has_failed() && nothing.succeeded().is_none());
    let no_condition = run(json!({"conditions": []}));
    assert!(!no_condition.has_started());
}

#[test]
fn a_pipeline_run_status_says_when_it_failed_and_started() {
    let status = |v: serde_json::Value| -> PipelineRunStatus { serde_json::from_value(v).unwrap() };
    let failed = status(json!({"conditions": cond("False", "Failed")}));
    assert!(failed.has_failed() && !failed.has_started());
    let pending = status(json!({"conditions": cond("Unknown", "PipelineRunPending")}));
    assert!(!pending.has_failed() && !pending.has_started());
    let done = status(json!({"conditions": cond("True", "Succeeded")}));
    assert!(!done.has_failed() && done.has_started());
}

#[test]
fn an_execution_owns_what_its_labels_name() {
    let w = execution("w").namespace("team").build();
    assert_eq!(Owner::of(&w), Owner::named("team", "w"));
    assert_eq!(Owner::of(&w).name, "w");
    assert_eq!(Owner::of(&w).namespace, "team");
}

#[test]
fn names_are_spelled_as_the_api_and_the_metrics_spell_them() {
    for (p, s) in [
        (Phase::Pending, "Pending"),
        (Phase::Running, "Running"),
        (Phase::Completed, "Completed"),
        (Phase::Failed, "Failed"),
        (Phase::Skipped, "Skipped"),
    ] {
        assert_eq!(p.as_str(), s);
        assert_eq!(serde_json::to_value(p).unwrap(), s);
    }
    for r in [
        SkipReason::ResourceBusy,
        SkipReason::RecentlyRemediated,
        SkipReason::ExhaustedRetries,
        SkipReason::PreviousExecutionFailed,
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
    for (r, s) in [
        (FailureReason::OOMKilled, "OOMKilled"),
        (FailureReason::DeadlineExceeded, "DeadlineExceeded"),
        (FailureReason::Forbidden, "Forbidden"),
        (FailureReason::ResourceExhausted, "ResourceExhausted"),
        (FailureReason::ConfigurationError, "ConfigurationError"),
        (FailureReason::ImagePullBackOff, "ImagePullBackOff"),
        (FailureReason::TaskFailed, "TaskFailed"),
        (FailureReason::Unknown, "Unknown"),
    ] {
        assert_eq!(r.as_str(), s);
        assert_eq!(serde_json::to_value(r).unwrap(), s);
    }
    for (r, s) in [
        (EventReason::PipelineRunCreated, "PipelineRunCreated"),
        (EventReason::WorkflowCompleted, "WorkflowCompleted"),
        (EventReason::WorkflowFailed, "WorkflowFailed"),
        (
            EventReason::WorkflowValidationFailed,
            "WorkflowValidationFailed",
        ),
        (EventReason::Skipped, "Skipped"),
        (EventReason::LockReleased, "LockReleased"),
        (
            EventReason::WorkflowExecutionDeleted,
            "WorkflowExecutionDeleted",
        ),
        (EventReason::CleanupFailed, "CleanupFailed"),
        (EventReason::BlockCleared, "BlockCleared"),
        (EventReason::BlockClearanceIgnored, "BlockClearanceIgnored"),
        (EventReason::AuditFailed, "AuditFailed"),
        (EventReason::AuditDropped, "AuditDropped"),
    ] {
        assert_eq!(r.as_str(), s);
    }
    for (r, s) in [
        (CreateResult::Created, "created"),
        (CreateResult::Adopted, "adopted"),
        (CreateResult::Locked, "locked"),
        (CreateResult::Unowned, "unowned"),
        (CreateResult::Error, "error"),
    ] {
        assert_eq!(r.as_str(), s);
    }
    for (t, s) in [
        (
            wfe_shared::api::AuditEventType::SelectionCompleted,
            "workflowexecution.selection.completed",
        ),
        (
            wfe_shared::api::AuditEventType::ExecutionStarted,
            "workflowexecution.execution.started",
        ),
        (
            wfe_shared::api::AuditEventType::WorkflowCompleted,
            "workflowexecution.workflow.completed",
        ),
        (
            wfe_shared::api::AuditEventType::WorkflowFailed,
            "workflowexecution.workflow.failed",
        ),
        (
            wfe_shared::api::AuditEventType::WorkflowSkipped,
            "workflowexecution.workflow.skipped",
        ),
        (
            wfe_shared::api::AuditEventType::BlockCleared,
            "workflowexecution.block.cleared",
        ),
    ] {
        assert_eq!(t.as_str(), s);
        assert_eq!(serde_json::to_value(t).unwrap(), s);
    }
}

#[test]
fn a_failed_transition_logs_at_warn_everything_else_at_its_level() {
    let line = |to| LogLine::Transition {
        from: Phase::Running,
        to,
        reason: None,
        pipeline_run: None,
        message: String::new(),
    };
    assert_eq!(line(Phase::Failed).level(), LogLevel::Warn);
    for to in [Phase::Running, Phase::Completed, Phase::Skipped] {
        assert_eq!(line(to).level(), LogLevel::Info, "{to:?}");
    }
    for level in [LogLevel::Info, LogLevel::Warn] {
        let note = LogLine::Note {
            level,
            message: String::new(),
        };
        assert_eq!(note.level(), level);
    }
}

#[test]
fn a_report_message_is_bare_for_one_error_and_bracketed_for_several() {
    let valid = validate(&execution("w").build());
    assert_eq!(valid.message(), "");
    let one = validate(&execution("w").image("not an image").build());
    assert_eq!(one.errors.len(), 1);
    let msg = one.message();
    assert!(
        msg.starts_with("spec.workflowRef.containerImage: Invalid value"),
        "{msg}"
    );
    assert!(!msg.starts_with('['));
    let two = validate(&execution("w").image("not an image").target("no").build());
    assert_eq!(two.errors.len(), 2);
    let msg = two.message();
    assert!(
        msg.starts_with('[') && msg.ends_with(']') && msg.contains(", "),
        "{msg}"
    );
}

#[test]
fn a_watched_object_carries_the_identity_the_watch_tracks() {
    use kube::Resource;
    use wfe_shared::tekton::observed::{ObservedTaskRun, Watched};
    let meta = json!({"name": "tr-1", "namespace": "exec", "uid": "u-7", "resourceVersion": "42",
                      "labels": {"tekton.dev/pipelineRun": "wfe-1"}});
    let mut task_run: Watched<ObservedTaskRun> =
        serde_json::from_value(json!({"metadata": meta, "status": {}})).expect("a TaskRun");
    let m = task_run.meta();
    assert_eq!(
        (
            m.name.as_deref(),
            m.namespace.as_deref(),
            m.uid.as_deref(),
            m.resource_version.as_deref()
        ),
        (Some("tr-1"), Some("exec"), Some("u-7"), Some("42"))
    );
    // What is written through meta_mut is what meta reads (kube's Resource contract).
    task_run.meta_mut().resource_version = Some("43".into());
    assert_eq!(task_run.meta().resource_version.as_deref(), Some("43"));
    let mut run: Watched<ObservedRun> = serde_json::from_value(
        json!({"metadata": {"name": "wfe-1", "namespace": "exec", "uid": "u-8"}}),
    )
    .expect("a PipelineRun");
    assert_eq!(run.meta().uid.as_deref(), Some("u-8"));
    run.meta_mut().uid = Some("u-9".into());
    assert_eq!(run.meta().uid.as_deref(), Some("u-9"));
}
