//! A Failed execution whose block an operator cleared: deliver its `workflowexecution.block.cleared`
//! audit event, then record the clearance in its status — once, with the event still owed if it
//! could not be delivered — and say so.

use crate::api::{AuditEventType, Phase, WorkflowExecution};
use crate::audit;
use crate::safety::{Clearance, clearance};

use super::audit::Outcome;
use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine, Metric};
use super::{Done, Effect, Plan, Seen, Step};

/// The clearance step of a Failed execution with a stamped clearance not yet recorded, or `None`.
pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>) -> Option<Step> {
    let status = pending_clearance(wfe)?;
    let Clearance::Stamped(c) = clearance(wfe) else {
        return None;
    };
    let event = AuditEventType::BlockCleared;
    if seen.done.contains(&Done::ClearanceRecorded) {
        let note = format!(
            "block cleared by {} at {}: {}; this failure no longer stops new executions on {}",
            c.cleared_by, c.cleared_at.0, c.clear_reason, wfe.spec.target_resource
        );
        let mut events = vec![Event::about(
            EventType::Normal,
            EventReason::BlockCleared,
            note,
        )];
        if let Some(detail) = Outcome::of(seen).detail {
            events.push(Event::about(
                EventType::Warning,
                EventReason::AuditFailed,
                format!(
                    "the audit service refused {} (not retried): {detail}",
                    event.as_str()
                ),
            ));
        }
        return Some(Step::Finish(Plan {
            events,
            metrics: vec![Metric::BlockCleared],
            ..Plan::default()
        }));
    }
    if let Some(Done::Failed(_)) = seen.done.last() {
        return Some(Step::Finish(Plan {
            failed: true,
            ..Plan::default()
        }));
    }
    // Its audit event first, as the operator's act; then the record, owing the event only when
    // the receiver could not be reached (a refusal is final).
    let o = Outcome::of(seen);
    if !o.to_send(&[event]).is_empty() {
        let mut cleared = wfe.clone();
        if let Some(s) = cleared.status.as_mut() {
            s.block_clearance = Some(Box::new(c));
        }
        return Some(Step::Act(Effect::Deliver(vec![audit::build(
            &cleared, event,
        )])));
    }
    let mut audit_pending = status.audit_pending.clone();
    audit_pending.extend(o.unsettled(&[event]));
    Some(Step::Act(Effect::RecordClearance {
        clearance: Box::new(c),
        audit_pending,
    }))
}

/// A stamped clearance waits to be recorded.
pub(super) fn to_record(wfe: &WorkflowExecution) -> bool {
    pending_clearance(wfe).is_some() && matches!(clearance(wfe), Clearance::Stamped(_))
}

/// The status of a Failed execution whose clearance is not recorded yet.
fn pending_clearance(wfe: &WorkflowExecution) -> Option<&crate::api::WorkflowExecutionStatus> {
    let status = wfe.status.as_ref()?;
    (status.phase == Phase::Failed && status.block_clearance.is_none()).then_some(status)
}

/// A clearance asked for without the webhook's stamp: said (a Warning Event), never acted on; the
/// execution's other business (its lock, its audit events) goes on.
pub(super) fn ignored(wfe: &WorkflowExecution) -> Option<(Event, LogLine)> {
    pending_clearance(wfe)?;
    let Clearance::Unattributed(why) = clearance(wfe) else {
        return None;
    };
    Some((
        Event::about(
            EventType::Warning,
            EventReason::BlockClearanceIgnored,
            why.clone(),
        ),
        LogLine::Note {
            level: LogLevel::Warn,
            message: format!("block clearance ignored: {why}"),
        },
    ))
}
