//! A Failed execution whose block an operator cleared: deliver its `workflowexecution.block.cleared`
//! audit event, then record the clearance in its status — once, with the event still owed if it
//! could not be delivered — and say so.

use crate::api::{AuditEventType, Phase, WorkflowExecution};
use crate::audit;
use crate::safety::{Clearance, clearance};

use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine, Metric};
use super::{Done, Effect, Plan, Seen, Step};

/// The clearance step of a terminal execution, or `None` when there is nothing to record.
pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>) -> Option<Step> {
    let status = wfe.status.as_ref()?;
    if status.phase != Phase::Failed || status.block_clearance.is_some() {
        return None;
    }
    let c = match clearance(wfe) {
        Clearance::Absent => return None,
        Clearance::Unattributed(why) => {
            return Some(Step::Finish(Plan {
                events: vec![Event::about(
                    EventType::Warning,
                    EventReason::BlockClearanceIgnored,
                    why.clone(),
                )],
                log: vec![LogLine::Note {
                    level: LogLevel::Warn,
                    message: format!("block clearance ignored: {why}"),
                }],
                ..Plan::default()
            }));
        }
        Clearance::Stamped(c) => c,
    };
    let event = AuditEventType::BlockCleared;
    Some(match seen.done.last() {
        None => {
            let mut cleared = wfe.clone();
            if let Some(s) = cleared.status.as_mut() {
                s.block_clearance = Some(Box::new(c));
            }
            Step::Act(Effect::Deliver(vec![audit::build(&cleared, event)]))
        }
        Some(Done::Delivered(_) | Done::AuditDeferred { .. } | Done::AuditRejected { .. }) => {
            let delivered = matches!(seen.done.last(), Some(Done::Delivered(_)));
            let mut audit_pending = status.audit_pending.clone();
            if !delivered {
                audit_pending.push(event);
            }
            Step::Act(Effect::RecordClearance {
                clearance: Box::new(c),
                audit_pending,
            })
        }
        Some(Done::ClearanceRecorded) => {
            let note = format!(
                "block cleared by {} at {}: {}; this failure no longer stops new executions on {}",
                c.cleared_by, c.cleared_at.0, c.clear_reason, wfe.spec.target_resource
            );
            Step::Finish(Plan {
                events: vec![Event::about(
                    EventType::Normal,
                    EventReason::BlockCleared,
                    note,
                )],
                metrics: vec![Metric::BlockCleared],
                ..Plan::default()
            })
        }
        Some(_) => Step::Finish(Plan {
            failed: true,
            ..Plan::default()
        }),
    })
}
