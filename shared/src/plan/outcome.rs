//! What a plan reports: Events, log lines and metrics — closed sets, so nothing is spelled twice.

use k8s_openapi::api::core::v1::ObjectReference;

use crate::api::{FailureReason, Phase, SkipReason};

use super::Done;

/// A Kubernetes Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub type_: EventType,
    pub reason: EventReason,
    pub note: String,
    /// The object it is about, when not the reconciled execution (a finished execution whose
    /// lock a new one released).
    pub regarding: Option<ObjectReference>,
}

impl Event {
    /// An Event about the reconciled execution.
    pub fn about(type_: EventType, reason: EventReason, note: String) -> Event {
        Event {
            type_,
            reason,
            note,
            regarding: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Every Event reason the controller publishes (also the Event's action).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    PipelineRunCreated,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowValidationFailed,
    Skipped,
    LockReleased,
    WorkflowExecutionDeleted,
    CleanupFailed,
    BlockCleared,
    BlockClearanceIgnored,
    AuditFailed,
    AuditDropped,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PipelineRunCreated => "PipelineRunCreated",
            Self::WorkflowCompleted => "WorkflowCompleted",
            Self::WorkflowFailed => "WorkflowFailed",
            Self::WorkflowValidationFailed => "WorkflowValidationFailed",
            Self::Skipped => "Skipped",
            Self::LockReleased => "LockReleased",
            Self::WorkflowExecutionDeleted => "WorkflowExecutionDeleted",
            Self::CleanupFailed => "CleanupFailed",
            Self::BlockCleared => "BlockCleared",
            Self::BlockClearanceIgnored => "BlockClearanceIgnored",
            Self::AuditFailed => "AuditFailed",
            Self::AuditDropped => "AuditDropped",
        }
    }
}

/// A metric to count once the plan is carried out.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// `wfe_controller_pipelinerun_creations_total{result}`.
    PipelineRun(CreateResult),
    /// `wfe_controller_executions_total{outcome}` and, with a duration,
    /// `wfe_controller_execution_duration_seconds{outcome}`.
    Finished {
        outcome: Phase,
        seconds: Option<f64>,
    },
    /// `wfe_controller_failures_total{reason}`.
    Failed(FailureReason),
    /// `wfe_controller_skips_total{reason}`.
    Skipped(SkipReason),
    /// `wfe_controller_block_clearances_total`.
    BlockCleared,
}

/// The result of trying to create (or adopt) the PipelineRun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateResult {
    Created,
    Adopted,
    Locked,
    Unowned,
    Error,
}

impl CreateResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Adopted => "adopted",
            Self::Locked => "locked",
            Self::Unowned => "unowned",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
}

/// One line for the controller's log; the controller adds the execution and its target.
#[derive(Clone, Debug, PartialEq)]
pub enum LogLine {
    /// A phase transition.
    Transition {
        from: Phase,
        to: Phase,
        /// The failure or skip reason, when there is one.
        reason: Option<String>,
        pipeline_run: Option<String>,
        message: String,
    },
    /// A side effect carried out or refused, or a condition that changed without a transition.
    Note { level: LogLevel, message: String },
}

impl LogLine {
    pub fn level(&self) -> LogLevel {
        match self {
            LogLine::Transition { to, .. } if *to == Phase::Failed => LogLevel::Warn,
            LogLine::Transition { .. } => LogLevel::Info,
            LogLine::Note { level, .. } => *level,
        }
    }

    pub(super) fn effect(done: &Done) -> LogLine {
        let (level, message) = match done {
            Done::FinalizerAdded => (LogLevel::Info, "added the cleanup finalizer".to_owned()),
            Done::Created(name) => (LogLevel::Info, format!("created PipelineRun {name}")),
            Done::NameTaken(run) => (
                LogLevel::Info,
                format!("PipelineRun {} already exists", run.name()),
            ),
            Done::Deleted(name) => (LogLevel::Info, format!("deleted PipelineRun {name}")),
            Done::Gone(name) => (
                LogLevel::Info,
                format!("PipelineRun {name} was already gone or replaced"),
            ),
            Done::FinalizerRemoved => (LogLevel::Info, "removed the cleanup finalizer".to_owned()),
            Done::ClearanceRecorded => (
                LogLevel::Info,
                "recorded the block clearance in the status".to_owned(),
            ),
            Done::Delivered(types) => (
                LogLevel::Info,
                format!("delivered {} audit event(s)", types.len()),
            ),
            Done::AuditDeferred {
                retry_after,
                reason,
            } => (
                LogLevel::Warn,
                format!(
                    "audit events not delivered ({reason}); retrying in {}",
                    crate::admission::duration::format_duration(*retry_after)
                ),
            ),
            Done::AuditRejected { types, detail } => (
                LogLevel::Warn,
                format!("{} audit event(s) refused: {detail}", types.len()),
            ),
            Done::Failed(error) => (LogLevel::Warn, format!("side effect failed: {error}")),
        };
        LogLine::Note { level, message }
    }
}
