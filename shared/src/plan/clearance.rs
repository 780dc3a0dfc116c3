//! A Failed execution whose block an operator cleared: record the clearance in its status, once,
//! and say so. The audit event of the clearance (`workflowexecution.block.cleared`) belongs to
//! the step that finishes here.

use crate::api::{Phase, WorkflowExecution};
use crate::safety::{Clearance, clearance};

use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine, Metric};
use super::{Done, Effect, Plan, Seen, Step};

/// The clearance step of a terminal execution, or `None` when there is nothing to record.
pub(super) fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>) -> Option<Step> {
    let status = wfe.status.as_ref()?;
    if status.phase != Phase::Failed || status.block_clearance.is_some() {
        return None;
    }
    match clearance(wfe) {
        Clearance::Absent => None,
        Clearance::Unattributed(why) => Some(Step::Finish(Plan {
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
        })),
        Clearance::Stamped(c) => Some(match seen.done.last() {
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
            Some(Done::Failed(_)) => Step::Finish(Plan {
                failed: true,
                ..Plan::default()
            }),
            _ => Step::Act(Effect::RecordClearance(Box::new(c))),
        }),
    }
}
