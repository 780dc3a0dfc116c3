//! One plan per reconcile: everything a reconcile must do, decided here and only here.
//!
//! The controller asks [`look`] what to observe, observes it, and asks [`plan`] for the next
//! [`Step`]. A step is either one side effect to carry out ([`Step::Act`]) — whose result comes back
//! as an observation ([`Done`]) for the next call — or the finished [`Plan`]: the status to write
//! (or none), the Events to publish after that write, the log lines, the metrics, and when to look
//! again. Adoption, validation failure, the terminal guard, deadlines, lock expiry and cleanup are
//! all decided here; the controller only carries the decisions out.

mod audit;
mod cleanup;
mod clearance;
mod execution;
mod lock;
mod outcome;
mod pending;
mod transition;
mod urgency;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

pub use lock::{lock_due, lock_expired};
pub use outcome::{CreateResult, Event, EventReason, EventType, LogLevel, LogLine, Metric};
pub use urgency::Urgency;

use crate::api::names::pipeline_run_name;
use crate::api::{
    AuditEventType, BlockClearance, Phase, WorkflowExecution, WorkflowExecutionStatus,
};
use crate::audit::AuditEvent;
use crate::safety::{Carried, Rules};
use crate::status::desired;
use crate::tekton::PipelineRun;
use crate::tekton::observed::{ObservedRun, ObservedTaskRun};

/// Clock and tunables of one reconcile.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub now: Timestamp,
    /// Namespace the PipelineRuns run in.
    pub execution_namespace: &'a str,
    /// Cooldown, backoff and the failure threshold (the cooldown is also how long a
    /// Completed/Failed execution keeps the target's lock).
    pub rules: &'a Rules,
    /// Added to `executionConfig.timeout` before the controller's own deadline fires.
    pub deadline_grace: Duration,
    /// How long a created PipelineRun may stay unstarted before `TektonPipelineRunning` turns False.
    pub start_timeout: Duration,
    /// How long a deleted execution waits for its audit events to be delivered before it goes
    /// without them.
    pub audit_deletion_grace: Duration,
}

impl Context<'_> {
    /// What the status computation needs; `carried` is the target's bookkeeping for a Pending
    /// execution's transition.
    fn desired(&self, carried: Option<Carried>) -> desired::Context {
        desired::Context {
            now: self.now,
            deadline_grace: self.deadline_grace,
            start_timeout: self.start_timeout,
            rules: *self.rules,
            carried,
        }
    }
}

/// The PipelineRun a reconcile must look at, and where from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look {
    pub name: String,
    pub source: Source,
    /// Its TaskRuns too, once it has failed: they explain the failure.
    pub task_runs: bool,
    /// The other executions on the target (a Pending execution's safety rules read them).
    pub history: bool,
}

/// Where an observation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The watch cache only (absent means absent).
    Cache,
    /// The cache, confirmed with a read when the cache does not have it (it may not have seen it
    /// yet).
    CacheThenRead,
    /// A fresh read.
    Read,
}

/// What a reconcile must observe of `wfe`, before planning.
pub fn look(wfe: &WorkflowExecution) -> Option<Look> {
    let status = wfe.status.as_ref();
    let referenced = status
        .and_then(|s| s.pipeline_run_ref.as_ref())
        .map(|r| r.name.clone());
    let phase = status.map(|s| s.phase).unwrap_or_default();
    let (name, source) = if wfe.metadata.deletion_timestamp.is_some() {
        if !cleanup::holds_finalizer(wfe) {
            return None;
        }
        let name = referenced.unwrap_or_else(|| pipeline_run_name(&wfe.spec.target_resource));
        (name, Source::Read)
    } else {
        match phase {
            Phase::Pending => (pipeline_run_name(&wfe.spec.target_resource), Source::Cache),
            Phase::Running => (referenced?, Source::CacheThenRead),
            Phase::Completed | Phase::Failed => (referenced?, Source::Cache),
            Phase::Skipped => return None,
        }
    };
    let task_runs = source == Source::CacheThenRead;
    let history = phase == Phase::Pending && wfe.metadata.deletion_timestamp.is_none();
    Some(Look {
        name,
        source,
        task_runs,
        history,
    })
}

/// What the controller observed for this reconcile, and what came of the effects it carried out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen<'a> {
    /// The PipelineRun [`look`] asked for, when it exists.
    pub run: Option<&'a ObservedRun>,
    /// The TaskRuns of `run`, when it has failed.
    pub task_runs: &'a [ObservedTaskRun],
    /// The executions on the same target, from the controller's index, when [`Look::history`]
    /// asked for them (the execution itself may be among them).
    pub history: &'a [Arc<WorkflowExecution>],
    /// What came of the effects carried out so far in this reconcile, oldest first. Kept across
    /// conflict retries, so a retry never repeats an effect.
    pub done: &'a [Done],
}

impl<'a> Seen<'a> {
    /// Without the audit results that end `done`: the effects before the audit step, which a
    /// phase's plan reads (audit delivery comes last, once the rest is decided).
    fn before_audit(&self) -> Seen<'a> {
        let end = self
            .done
            .iter()
            .rposition(|d| !d.is_audit())
            .map_or(0, |i| i + 1);
        Seen {
            done: &self.done[..end],
            ..*self
        }
    }
}

/// Whether a conflict's re-read left `wfe` in the part of the plan `before` was in (deleted or
/// not, its phase, a clearance to record or not): only then do the results of the effects carried
/// out before the conflict still speak for it; otherwise the plan starts afresh and observes what
/// those effects left behind (a resent audit event carries the same identity).
pub fn same_branch(before: &WorkflowExecution, after: &WorkflowExecution) -> bool {
    let branch = |w: &WorkflowExecution| {
        (
            w.metadata.deletion_timestamp.is_some(),
            w.status.as_ref().map(|s| s.phase).unwrap_or_default(),
            clearance::to_record(w),
        )
    };
    branch(before) == branch(after)
}

impl Done {
    /// The result of delivering audit events.
    pub fn is_audit(&self) -> bool {
        matches!(
            self,
            Done::Delivered(_) | Done::AuditDeferred { .. } | Done::AuditRejected { .. }
        )
    }
}

/// One side effect for the controller to attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Add the cleanup finalizer (objects that bypassed the mutating webhook lack it).
    AddFinalizer,
    /// Create the PipelineRun; `AlreadyExists` is answered with who holds the name.
    CreatePipelineRun(Box<PipelineRun>),
    /// Delete exactly this PipelineRun (uid precondition: a newer run of the name is never touched).
    DeletePipelineRun { name: String, uid: Option<String> },
    /// Remove the cleanup finalizer: the execution may go.
    RemoveFinalizer,
    /// Record an operator's block clearance in the status of a Failed execution, with the audit
    /// events it still owes (a patch of those fields: the cached copy of a terminal execution is
    /// trimmed, so it is never the base of a whole-status write).
    RecordClearance {
        clearance: Box<BlockClearance>,
        audit_pending: Vec<AuditEventType>,
    },
    /// Deliver these audit events (one batch with whatever else is queued).
    Deliver(Vec<AuditEvent>),
}

/// What came of an [`Effect`].
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    FinalizerAdded,
    /// The PipelineRun was created under this name.
    Created(String),
    /// The name is taken (`AlreadyExists`): this is who holds it.
    NameTaken(Box<ObservedRun>),
    /// The PipelineRun was deleted.
    Deleted(String),
    /// The PipelineRun was already gone, or replaced by another of the same name.
    Gone(String),
    FinalizerRemoved,
    ClearanceRecorded,
    /// The audit events of these types were delivered.
    Delivered(Vec<AuditEventType>),
    /// The audit service could not be reached (or answered 5xx, 401, 403): retry after this.
    AuditDeferred {
        retry_after: Duration,
        reason: String,
    },
    /// The audit service refused the events for good (another 4xx): not retried.
    AuditRejected {
        types: Vec<AuditEventType>,
        detail: String,
    },
    /// The API server refused the effect (not a conflict: those are retried from a fresh read).
    Failed(String),
}

/// The next step of a reconcile.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per reconcile step, never stored
pub enum Step {
    /// Carry this out, then plan again with its result in [`Seen::done`].
    Act(Effect),
    /// Nothing more to attempt: carry out the plan.
    Finish(Plan),
}

/// The end of a reconcile, carried out in this order: the status write (if any; a conflict means
/// re-read and plan again), then — once it succeeded — the log lines, metrics and Events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The complete status to write, or `None` when nothing may or need be written.
    pub status: Option<WorkflowExecutionStatus>,
    pub events: Vec<Event>,
    pub log: Vec<LogLine>,
    pub metrics: Vec<Metric>,
    /// When to reconcile again without a watch event (`None`: only on a change).
    pub requeue: Option<Duration>,
    /// An effect failed: after the rest, the reconcile reports the error and is retried.
    pub failed: bool,
}

/// The next step for `wfe` given what was seen.
pub fn plan(wfe: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Step {
    let phase = wfe.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let step = if wfe.metadata.deletion_timestamp.is_some() {
        // Cleanup delivers what is owed itself, before the execution may go.
        cleanup::plan(wfe, seen, ctx)
    } else if let Some(step) = clearance::plan(wfe, seen) {
        // A clearance is recorded by a patch of its own, with its audit event; what else is
        // owed is settled by the next reconcile, which that patch wakes.
        step
    } else {
        let effects = seen.before_audit();
        let step = match phase {
            Phase::Pending => pending::plan(wfe, &effects, ctx),
            Phase::Running => execution::plan(wfe, &effects, ctx),
            Phase::Completed | Phase::Failed => lock::plan(wfe, &effects, ctx),
            Phase::Skipped => Step::Finish(Plan::default()),
        };
        match step {
            Step::Finish(mut plan) => {
                if let Some((event, line)) = clearance::ignored(wfe) {
                    plan.events.push(event);
                    plan.log.push(line);
                }
                audit::settle(wfe, seen, ctx, plan)
            }
            act => act,
        }
    };
    match step {
        Step::Finish(mut plan) => {
            // Every effect of this reconcile gets its line, once, with the plan that ends it.
            let effects = seen.done.iter().map(LogLine::effect);
            plan.log.splice(0..0, effects);
            Step::Finish(plan)
        }
        act => act,
    }
}

/// The status `wfe` has now (the API server defaults it to Pending).
fn current(wfe: &WorkflowExecution) -> WorkflowExecutionStatus {
    wfe.status.clone().unwrap_or_default()
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod safety_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
