//! The Pending rules 2–6 of SPEC 4, in order, the first that applies wins: another execution
//! running on the target; an execution failure not cleared; too many consecutive pre-execution
//! failures; the backoff window; the cooldown after the same workflow completed.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::admission::duration::format_duration;
use crate::api::names::CLEAR_EXECUTION_BLOCK;
use crate::api::{
    ConflictingWorkflowRef, Phase, RecentRemediationRef, SkipDetails, SkipReason, WorkflowExecution,
};
use crate::tekton::observed::ObservedRun;
use crate::tekton::ownership::Owner;

use super::history::{Carried, History};
use super::rules::Rules;

/// What the rules say about a Pending execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The target's backoff bookkeeping, carried into this execution's status either way.
    pub carried: Carried,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Nothing stops it: release a finished execution's lock if one is held, then create.
    Proceed,
    /// Skipped (terminal), with exactly why.
    Skip(Box<SkipDetails>),
}

/// Rules 2–6 for `wfe` (rule 1, validation, comes first and is the plan's).
pub fn decide(
    wfe: &WorkflowExecution,
    history: &History<'_>,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    let carried = history.carried();
    let skip = |reason, message: String| {
        Verdict::Skip(Box::new(SkipDetails {
            reason,
            message,
            skipped_at: Time(now),
            conflicting_workflow: None,
            recent_remediation: None,
        }))
    };
    let target = &wfe.spec.target_resource;
    let verdict = if let Some(running) = history.running() {
        Verdict::Skip(busy(wfe, running, None, now))
    } else if let Some(failed) = history.blocking_failure() {
        let mut v = skip(
            SkipReason::PreviousExecutionFailed,
            format!(
                "{} failed during execution on target {target} at {} ({}): non-idempotent actions may have run, so no workflow runs on this target until an operator has checked it and cleared the block: {}",
                describe(failed),
                at(failed),
                failure_reason(failed),
                clear_hint(failed)
            ),
        );
        recent(&mut v, failed, None);
        v
    } else if carried.consecutive_failures >= to_i32(rules.max_consecutive_failures) {
        let last = history.last_bookkept();
        let mut v = skip(
            SkipReason::ExhaustedRetries,
            format!(
                "target {target} has had {} before execution (maximum {}){}: fix the cause, then clear the block to allow new executions: {}",
                consecutive_failures(carried.consecutive_failures),
                rules.max_consecutive_failures,
                last.map(|w| format!(
                    "; the last was {} at {} ({})",
                    describe(w),
                    at(w),
                    failure_reason(w)
                ))
                .unwrap_or_default(),
                last.map(clear_hint).unwrap_or_default()
            ),
        );
        if let Some(last) = last {
            recent(&mut v, last, None);
        }
        v
    } else if let Some(until) = carried
        .next_allowed_execution
        .as_ref()
        .filter(|t| t.0 > now)
    {
        let remaining = remaining(until, now);
        let last = history.last_bookkept();
        let mut v = skip(
            SkipReason::RecentlyRemediated,
            format!(
                "target {target} is backing off after {} before execution{}: a new execution is allowed at {} (in {remaining})",
                consecutive_failures(carried.consecutive_failures),
                last.map(|w| format!(" (the last: {}, {})", describe(w), failure_reason(w)))
                    .unwrap_or_default(),
                until.0
            ),
        );
        if let Some(last) = last {
            recent(&mut v, last, Some(remaining));
        }
        v
    } else if let Some((done, until)) = history
        .last_completed(&wfe.spec.workflow_ref.workflow_id)
        .and_then(|w| Some((w, cooldown_end(w, rules.cooldown)?)))
        .filter(|(_, until)| *until > now)
    {
        let remaining = remaining(&Time(until), now);
        let mut v = skip(
            SkipReason::RecentlyRemediated,
            format!(
                "workflow {} completed on target {target} at {} ({}): within the cooldown of {} the same workflow may run again at {until} (in {remaining}); a different workflow may run now",
                wfe.spec.workflow_ref.workflow_id,
                at(done),
                describe(done),
                format_duration(rules.cooldown)
            ),
        );
        recent(&mut v, done, Some(remaining));
        v
    } else {
        Verdict::Proceed
    };
    Decision { verdict, carried }
}

/// Skipped / ResourceBusy: `holder` runs on the target. `pipeline_run` names the lock when it was
/// the API server's `AlreadyExists` that told.
pub fn busy(
    wfe: &WorkflowExecution,
    holder: &WorkflowExecution,
    pipeline_run: Option<&str>,
    now: Timestamp,
) -> Box<SkipDetails> {
    let conflicting = ConflictingWorkflowRef {
        name: holder.metadata.name.clone().unwrap_or_default(),
        namespace: holder.metadata.namespace.clone(),
        workflow_id: holder.spec.workflow_ref.workflow_id.clone(),
        started_at: holder.status.as_ref().and_then(|s| s.start_time.clone()),
        target_resource: wfe.spec.target_resource.clone(),
    };
    skip_busy(conflicting, pipeline_run, now)
}

/// Skipped / ResourceBusy from the lock alone: `run` is labelled for `owner`, an execution the
/// history does not hold (another namespace, or not seen yet), so its workflow is not known.
pub fn locked_by(
    wfe: &WorkflowExecution,
    owner: &Owner,
    run: &str,
    now: Timestamp,
) -> Box<SkipDetails> {
    let conflicting = ConflictingWorkflowRef {
        name: owner.name.clone(),
        namespace: Some(owner.namespace.clone()),
        workflow_id: String::new(),
        started_at: None,
        target_resource: wfe.spec.target_resource.clone(),
    };
    skip_busy(conflicting, Some(run), now)
}

fn skip_busy(
    c: ConflictingWorkflowRef,
    pipeline_run: Option<&str>,
    now: Timestamp,
) -> Box<SkipDetails> {
    let holder = format!(
        "WorkflowExecution {}/{}{}",
        c.namespace.as_deref().unwrap_or_default(),
        c.name,
        if c.workflow_id.is_empty() {
            String::new()
        } else {
            format!(" (workflow {})", c.workflow_id)
        }
    );
    let target = &c.target_resource;
    let message = match pipeline_run {
        Some(run) => format!("target {target} is locked by {holder} (PipelineRun {run})"),
        None => format!(
            "target {target} is busy: {holder} has been running on it since {}; create a new WorkflowExecution once it has finished",
            c.started_at
                .as_ref()
                .map_or_else(|| "an unknown time".to_owned(), |t| t.0.to_string())
        ),
    };
    Box::new(SkipDetails {
        reason: SkipReason::ResourceBusy,
        message,
        skipped_at: Time(now),
        conflicting_workflow: Some(c),
        recent_remediation: None,
    })
}

/// The finished execution whose lock `run` is, when a new execution the rules let through may
/// release it (delete the run) and take the target: Completed or Failed (terminal, so it never
/// creates again), and `run` is still its lock, not being deleted already.
pub fn releasable<'a>(run: &ObservedRun, history: &History<'a>) -> Option<&'a WorkflowExecution> {
    let holder = history.owned_by(run.owner.as_ref()?)?;
    let phase = holder.status.as_ref().map(|s| s.phase)?;
    let finished = matches!(phase, Phase::Completed | Phase::Failed);
    (finished && run.is_lock_of(&Owner::of(holder))).then_some(holder)
}

fn recent(verdict: &mut Verdict, w: &WorkflowExecution, remaining: Option<String>) {
    if let Verdict::Skip(d) = verdict {
        let s = w.status.as_ref();
        d.recent_remediation = Some(RecentRemediationRef {
            name: w.metadata.name.clone().unwrap_or_default(),
            namespace: w.metadata.namespace.clone(),
            workflow_id: w.spec.workflow_ref.workflow_id.clone(),
            completed_at: s.and_then(|s| s.completion_time.clone()),
            outcome: s.map(|s| s.phase).unwrap_or_default(),
            target_resource: w.spec.target_resource.clone(),
            cooldown_remaining: remaining,
        });
    }
}

fn cooldown_end(w: &WorkflowExecution, cooldown: Duration) -> Option<Timestamp> {
    let done = w.status.as_ref()?.completion_time.as_ref()?.0;
    let cooldown = k8s_openapi::jiff::SignedDuration::try_from(cooldown).ok()?;
    done.checked_add(cooldown).ok()
}

/// Whole seconds from `now` to `until`, rounded up (a skip never says "0s" while it still holds).
fn remaining(until: &Time, now: Timestamp) -> String {
    let d = until.0.duration_since(now);
    let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
    format_duration(Duration::from_secs(secs.max(0) as u64))
}

fn describe(w: &WorkflowExecution) -> String {
    format!(
        "WorkflowExecution {}/{} (workflow {})",
        w.metadata.namespace.as_deref().unwrap_or_default(),
        w.metadata.name.as_deref().unwrap_or_default(),
        w.spec.workflow_ref.workflow_id
    )
}

fn at(w: &WorkflowExecution) -> String {
    w.status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map_or_else(|| "an unknown time".to_owned(), |t| t.0.to_string())
}

fn failure_reason(w: &WorkflowExecution) -> String {
    w.status
        .as_ref()
        .and_then(|s| s.failure_details.as_ref())
        .map_or_else(
            || "reason unknown".to_owned(),
            |d| format!("{:?}", d.reason),
        )
}

/// The command that clears `w`'s block.
fn clear_hint(w: &WorkflowExecution) -> String {
    format!(
        "kubectl annotate wfe -n {} {} {CLEAR_EXECUTION_BLOCK}=\"<why it is safe again, at least 10 words>\"",
        w.metadata.namespace.as_deref().unwrap_or_default(),
        w.metadata.name.as_deref().unwrap_or_default()
    )
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// "1 consecutive failure", "3 consecutive failures": the count as a person reads it.
fn consecutive_failures(n: i32) -> String {
    if n == 1 {
        "1 consecutive failure".to_owned()
    } else {
        format!("{n} consecutive failures")
    }
}
