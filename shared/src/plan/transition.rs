//! What a phase transition reports: its one Event, its log line, and the line for a Running
//! execution whose start trouble changed.

use crate::api::{
    ConditionStatus, ConditionType, FailureReason, Phase, WorkflowExecution,
    WorkflowExecutionStatus,
};
use crate::status::conditions;

use super::Context;
use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine};

/// The one Event of a phase transition.
pub(super) fn event(
    wfe: &WorkflowExecution,
    after: &WorkflowExecutionStatus,
    adopted: bool,
    invalid: bool,
    ctx: &Context<'_>,
) -> Event {
    let run = after
        .pipeline_run_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .unwrap_or("");
    let exec_ns = ctx.execution_namespace;
    let (type_, reason, note) = match after.phase {
        Phase::Completed => (
            EventType::Normal,
            EventReason::WorkflowCompleted,
            format!(
                "workflow {} completed in {}",
                wfe.spec.workflow_ref.workflow_id,
                after.duration.as_deref().unwrap_or("?")
            ),
        ),
        Phase::Failed => {
            let details = after.failure_details.as_ref();
            let reason = details.map(|d| d.reason).unwrap_or(FailureReason::Unknown);
            let message = details.map(|d| d.message.clone()).unwrap_or_default();
            if invalid {
                (
                    EventType::Warning,
                    EventReason::WorkflowValidationFailed,
                    message,
                )
            } else {
                (
                    EventType::Warning,
                    EventReason::WorkflowFailed,
                    format!("{reason:?}: {message}"),
                )
            }
        }
        Phase::Skipped => (
            EventType::Normal,
            EventReason::Skipped,
            after
                .skip_details
                .as_ref()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        ),
        // Pending -> Running (no transition leads to Pending).
        Phase::Running | Phase::Pending => {
            let verb = if adopted { "Adopted" } else { "Created" };
            (
                EventType::Normal,
                EventReason::PipelineRunCreated,
                format!("{verb} PipelineRun {exec_ns}/{run}; Pending -> Running"),
            )
        }
    };
    Event::about(type_, reason, note)
}

/// The log line of a phase transition; its message is the transition's Event note.
pub(super) fn transition_line(
    from: Phase,
    after: &WorkflowExecutionStatus,
    event: &Event,
) -> LogLine {
    let reason = after
        .failure_details
        .as_ref()
        .map(|d| format!("{:?}", d.reason))
        .or_else(|| {
            after
                .skip_details
                .as_ref()
                .map(|d| format!("{:?}", d.reason))
        });
    LogLine::Transition {
        from,
        to: after.phase,
        reason,
        pipeline_run: after.pipeline_run_ref.as_ref().map(|r| r.name.clone()),
        message: event.note.clone(),
    }
}

/// The line for a Running execution whose `TektonPipelineRunning` changed.
pub(super) fn start_condition(after: &WorkflowExecutionStatus) -> Option<LogLine> {
    let c = conditions::get(&after.conditions, ConditionType::TektonPipelineRunning)?;
    let level = match c.status {
        ConditionStatus::False => LogLevel::Warn,
        _ => LogLevel::Info,
    };
    Some(LogLine::Note {
        level,
        message: format!(
            "TektonPipelineRunning {:?} ({:?}): {}",
            c.status, c.reason, c.message
        ),
    })
}

pub(super) fn seconds(status: &WorkflowExecutionStatus) -> Option<f64> {
    let (start, end) = (
        status.start_time.as_ref()?,
        status.completion_time.as_ref()?,
    );
    Some(end.0.duration_since(start.0).as_secs_f64().max(0.0))
}
