//! The audit step that ends every plan: the status about to be written (or the one stored) lists
//! the events the execution owes (`auditPending`: a transition adds its events there); they are
//! delivered first, and the same one write records the result — `AuditRecorded` True once
//! delivered, False/`AuditPending` while the receiver is unreachable (retried later, the events
//! kept in the status), False/`AuditFailed` when the receiver refused them for good.
//!
//! What was delivered is judged by event type over every delivery of the reconcile: an event owed
//! but not yet attempted is sent, even when an earlier delivery (before a conflict's re-read) sent
//! others.

use std::time::Duration;

use crate::api::{
    AuditEventType, ConditionReason as R, ConditionStatus as S, ConditionType as T,
    WorkflowExecution, WorkflowExecutionStatus,
};
use crate::audit::{self, AuditEvent};
use crate::status::conditions;

use super::outcome::{Event, EventReason, EventType, LogLevel, LogLine};
use super::{Context, Done, Effect, Plan, Seen, Step, current};

/// What the deliveries of this reconcile achieved, over all of them.
#[derive(Default)]
pub(super) struct Outcome {
    pub delivered: Vec<AuditEventType>,
    pub rejected: Vec<AuditEventType>,
    /// The receiver's refusal, when there was one.
    pub detail: Option<String>,
    /// The receiver could not be reached: try no more in this reconcile.
    pub deferred: Option<(Duration, String)>,
}

impl Outcome {
    pub(super) fn of(seen: &Seen<'_>) -> Outcome {
        let mut o = Outcome::default();
        for d in seen.done {
            match d {
                Done::Delivered(types) => o.delivered.extend(types),
                Done::AuditRejected { types, detail } => {
                    o.rejected.extend(types);
                    o.detail = Some(detail.clone());
                }
                Done::AuditDeferred {
                    retry_after,
                    reason,
                } => o.deferred = Some((*retry_after, reason.clone())),
                _ => {}
            }
        }
        o
    }

    /// Of `owed`, what no delivery has settled yet (neither delivered nor refused).
    pub(super) fn unsettled(&self, owed: &[AuditEventType]) -> Vec<AuditEventType> {
        owed.iter()
            .copied()
            .filter(|t| !self.delivered.contains(t) && !self.rejected.contains(t))
            .collect()
    }

    /// What to deliver now: what is unsettled, unless the receiver was unreachable.
    pub(super) fn to_send(&self, owed: &[AuditEventType]) -> Vec<AuditEventType> {
        match self.deferred {
            Some(_) => Vec::new(),
            None => self.unsettled(owed),
        }
    }
}

/// The events of `types`, built from `wfe` with `status`.
pub(super) fn build(
    wfe: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
    types: &[AuditEventType],
) -> Vec<AuditEvent> {
    let mut with = wfe.clone();
    with.status = Some(status.clone());
    types.iter().map(|t| audit::build(&with, *t)).collect()
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
    let o = Outcome::of(seen);
    let send = o.to_send(&status.audit_pending);
    if !send.is_empty() {
        return Step::Act(Effect::Deliver(build(wfe, &status, &send)));
    }
    let owed = std::mem::take(&mut status.audit_pending);
    status.audit_pending = o.unsettled(&owed);
    let refused: Vec<AuditEventType> = owed
        .iter()
        .copied()
        .filter(|t| o.rejected.contains(t))
        .collect();
    let (s, r, message) = if let Some((retry_after, reason)) = &o.deferred {
        plan.requeue = Some(plan.requeue.map_or(*retry_after, |r| r.min(*retry_after)));
        if !writes && status.audit_pending == owed {
            // Nothing else to write: the events stay owed in the stored status.
            return Step::Finish(plan);
        }
        let message = format!(
            "{} not delivered yet ({reason}); retrying",
            names(&status.audit_pending)
        );
        (S::False, R::AuditPending, message)
    } else if !refused.is_empty() {
        let message = format!(
            "the audit service refused {} (not retried): {}",
            names(&refused),
            o.detail.as_deref().unwrap_or_default()
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
    } else {
        (
            S::True,
            R::AuditSucceeded,
            format!("delivered {}", names(&owed)),
        )
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

pub(super) fn names(types: &[AuditEventType]) -> String {
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
