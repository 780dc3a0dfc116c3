//! The audit trail (SPEC 6): which events each transition produces, and the events themselves as
//! DataStorage's batch endpoint takes them (`AuditEventRequest`), built as pure functions of the
//! execution. The status is the outbox: `status.auditPending` lists the events an execution still
//! owes (see `crate::plan`).

mod build;
mod event;

pub use build::{build, cancelled, idempotency_key};
pub use event::{
    Action, ActorType, AuditEvent, BlockClearedPayload, CATEGORY, CONTROLLER_ACTOR, ErrorDetails,
    Outcome, Payload, RESOURCE_TYPE, VERSION, WorkflowPayload,
};

use crate::api::{AuditEventType, Phase};

/// The events of a phase transition, in order. An execution that failed validation was never
/// selected: its failure is its only event. Every other way out of Pending passed validation
/// (`selection.completed`) first.
pub fn transition_events(from: Phase, to: Phase, validated: bool) -> Vec<AuditEventType> {
    use AuditEventType as E;
    let outcome = match to {
        Phase::Running => E::ExecutionStarted,
        Phase::Completed => E::WorkflowCompleted,
        Phase::Failed => E::WorkflowFailed,
        Phase::Skipped => E::WorkflowSkipped,
        Phase::Pending => return Vec::new(),
    };
    if from == Phase::Pending && validated {
        vec![E::SelectionCompleted, outcome]
    } else {
        vec![outcome]
    }
}

#[cfg(test)]
mod tests;
