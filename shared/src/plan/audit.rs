//! The audit step that ends every plan: the status about to be written (or the one stored) lists
//! the events the execution owes (`auditPending`: a transition adds its events there); they are
//! delivered first, and the same one write records the result — `AuditRecorded` True once
//! delivered, False/`AuditPending` while the receiver is unreachable (retried later, the events
//! kept in the status), False/`AuditFailed` when the receiver refused them for good.

use std::time::Duration;

use crate::api::{
    AuditEventType, ConditionReason as R, ConditionStatus as S, ConditionType as T,
    WorkflowExecution, WorkflowExecutionStatus,
};
use crate::audit::{self, AuditEvent};
use crate::status::conditions;

use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine};
use super::{Context, Done, Effect, Plan, Seen, Step, current};

/// What came of delivering audit events in this reconcile, if it was tried.
pub(super) fn result<'a>(seen: &Seen<'a>) -> Option<&'a Done> {
    seen.done.iter().rev().find(|d| d.is_audit())
}

/// The events `status` owes, built from `wfe` with that status.
pub(super) fn owed(wfe: &WorkflowExecution, status: &WorkflowExecutionStatus) -> Vec<AuditEvent> {
    if status.audit_pending.is_empty() {
        return Vec::new();
    }
    let mut with = wfe.clone();
    with.status = Some(status.clone());
    status
        .audit_pending
        .iter()
        .map(|t| audit::build(&with, *t))
        .collect()
}

/// Delivers what the finished `plan` leaves owed, then records the result in its status write.
pub(super) fn settle(
    wfe: &WorkflowExecution,
    seen: &Seen<'_>,
    ctx: &Context<'_>,
    mut plan: Plan,
) -> Step {
    let writes = plan.status.is_some();
    let mut status = plan.status.clone().unwrap_or_else(|| current(wfe));
    if status.audit_pending.is_empty() {
        return Step::Finish(plan);
    }
    let Some(done) = result(seen) else {
        return Step::Act(Effect::Deliver(owed(wfe, &status)));
    };
    let (s, r, message) = match done {
        Done::Delivered(types) => {
            status.audit_pending.retain(|t| !types.contains(t));
            (
                S::True,
                R::AuditSucceeded,
                format!("delivered {}", names(types)),
            )
        }
        Done::AuditRejected { types, detail } => {
            status.audit_pending.retain(|t| !types.contains(t));
            let message = format!(
                "the audit service refused {} (not retried): {detail}",
                names(types)
            );
            plan.events.push(Event::about(
                EventType::Warning,
                EventReason::AuditFailed,
                message.clone(),
            ));
            plan.log.push(LogLine::Note {
                level: LogLevel::Warn,
                message: message.clone(),
            });
            (S::False, R::AuditFailed, message)
        }
        Done::AuditDeferred {
            retry_after,
            reason,
        } => {
            plan.requeue = Some(plan.requeue.map_or(*retry_after, |r| r.min(*retry_after)));
            if !writes {
                // Nothing else to write: the events stay owed in the stored status.
                return Step::Finish(plan);
            }
            let message = format!(
                "{} not delivered yet ({reason}); retrying",
                names(&status.audit_pending)
            );
            (S::False, R::AuditPending, message)
        }
        _ => return Step::Finish(plan),
    };
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ctx.now);
    let generation = wfe.metadata.generation;
    conditions::set(
        &mut status.conditions,
        T::AuditRecorded,
        s,
        r,
        message,
        generation,
        &now,
    );
    plan.status = Some(status);
    Step::Finish(plan)
}

/// Adds a transition's events to what the status owes (its write carries them).
pub(super) fn add_transition_events(
    status: &mut WorkflowExecutionStatus,
    events: Vec<AuditEventType>,
) {
    for e in events {
        if !status.audit_pending.contains(&e) {
            status.audit_pending.push(e);
        }
    }
}

fn names(types: &[AuditEventType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.join(", ")
}

/// How long a deleted execution may wait for its audit events before it goes without them.
pub(super) fn deletion_grace_over(wfe: &WorkflowExecution, ctx: &Context<'_>) -> bool {
    let Some(deleted) = wfe.metadata.deletion_timestamp.as_ref() else {
        return true;
    };
    let waited = ctx.now.duration_since(deleted.0);
    Duration::try_from(waited).is_ok_and(|w| w >= ctx.audit_deletion_grace)
}
