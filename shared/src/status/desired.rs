//! The complete status a WorkflowExecution should have, computed from what the controller observed
//! and the clock (SPEC 3, 4). Pure: the controller writes the result in one request, or nothing when
//! it equals what is stored.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::admission::duration::parse_go_duration;
use crate::admission::validation::Report;
use crate::api::limits::DEFAULT_TIMEOUT;
use crate::api::{
    ConditionReason as R, ConditionStatus as S, ConditionType as T, FailureReason, Phase,
    PipelineRunRef, SkipDetails, SkipReason, WorkflowExecution, WorkflowExecutionStatus,
};
use crate::safety::{Carried, Rules};
use crate::status::conditions;
use crate::tekton::classify::Classification;
use crate::tekton::observed::{ObservedRun, ObservedTaskRun};

/// What one reconcile learned.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'a> {
    /// Pending, and the spec fails re-validation: Failed / ConfigurationError, no PipelineRun.
    InvalidSpec(&'a Report),
    /// The PipelineRun was created, or ours was adopted after `AlreadyExists`.
    PipelineRunCreated { name: &'a str, adopted: bool },
    /// The safety rules, or the lock held by another execution, skip it (SPEC 4, rules 2–6).
    Skipped(&'a SkipDetails),
    /// `AlreadyExists` with no owner label: Failed / Unknown.
    UnownedPipelineRun { name: &'a str },
    /// Running: the PipelineRun as last seen, with its TaskRuns.
    PipelineRun {
        run: &'a ObservedRun,
        task_runs: &'a [ObservedTaskRun],
    },
    /// Running, but the PipelineRun no longer exists.
    PipelineRunMissing,
}

/// Clock and tunables.
#[derive(Clone, Debug)]
pub struct Context {
    pub now: Timestamp,
    /// Added to `executionConfig.timeout` before the controller's own deadline fires (Tekton's
    /// timeout should normally be seen first).
    pub deadline_grace: Duration,
    /// How long a created PipelineRun may stay unstarted before `TektonPipelineRunning` says
    /// False / `PipelineFailedToStart` (the execution keeps running until its deadline).
    pub start_timeout: Duration,
    /// The backoff after a pre-execution failure.
    pub rules: Rules,
    /// For a Pending execution: the target's backoff bookkeeping it carries forward.
    pub carried: Option<Carried>,
}

/// The status `wfe` should have after `observation`.
///
/// One write per transition: terminal phases are returned unchanged, and so is a Running execution
/// that stays Running — the PipelineRun's progress is recorded with the next transition's write
/// instead of in a write of its own. The one exception is `TektonPipelineRunning` turning False
/// (stuck past the start timeout) or back from False to True: an operator must see that at once.
pub fn desired_status(
    wfe: &WorkflowExecution,
    observation: Observation<'_>,
    ctx: &Context,
) -> WorkflowExecutionStatus {
    let current = wfe.status.clone().unwrap_or_default();
    if current.phase.is_terminal() {
        return current;
    }
    let was_running = current.phase == Phase::Running;
    let unchanged = current.clone();
    let mut b = Builder {
        wfe,
        status: current,
        now: Time(ctx.now),
    };
    b.status.observed_generation = wfe.metadata.generation;
    if let Some(carried) = &ctx.carried {
        b.status.consecutive_failures = Some(carried.consecutive_failures);
        b.status.next_allowed_execution = carried.next_allowed_execution.clone();
    }
    match observation {
        Observation::InvalidSpec(report) => {
            let c = Classification {
                reason: FailureReason::ConfigurationError,
                failed_task_index: -1,
                failed_task_name: String::new(),
                failed_step_name: None,
                exit_code: None,
                message: format!("spec is invalid: {}", report.message()),
                was_execution_failure: false,
            };
            b.creation_failed(c, ctx);
            // It never reached the target: it neither counts nor carries the backoff.
            b.status.consecutive_failures = None;
            b.status.next_allowed_execution = None;
        }
        Observation::PipelineRunCreated { name, adopted } => {
            b.status.phase = Phase::Running;
            // The backoff is behind it; the count goes on until the outcome.
            b.status.next_allowed_execution = None;
            if b.status.start_time.is_none() {
                b.status.start_time = Some(b.now.clone());
            }
            b.status.pipeline_run_ref = Some(PipelineRunRef {
                name: name.to_owned(),
            });
            let msg = if adopted {
                format!("adopted existing PipelineRun {name} labelled for this WorkflowExecution")
            } else {
                format!("created PipelineRun {name}")
            };
            b.condition(T::TektonPipelineCreated, S::True, R::PipelineCreated, msg);
        }
        Observation::Skipped(details) => {
            b.status.phase = Phase::Skipped;
            b.status.completion_time = Some(b.now.clone());
            let reason = match details.reason {
                SkipReason::ResourceBusy => R::TargetResourceBusy,
                SkipReason::RecentlyRemediated => R::RecentlyRemediated,
                SkipReason::PreviousExecutionFailed => R::PreviousExecutionFailed,
                SkipReason::ExhaustedRetries => R::ExhaustedRetries,
            };
            b.condition(T::ResourceLocked, S::True, reason, details.message.clone());
            b.status.skip_details = Some(Box::new(details.clone()));
        }
        Observation::UnownedPipelineRun { name } => {
            let c = unknown(format!(
                "PipelineRun {name} already exists for this target and carries no kubernaut.ai/workflow-execution label: it was not created by this controller; remove it or investigate who created it"
            ));
            b.creation_failed(c, ctx);
        }
        Observation::PipelineRunMissing => {
            // Whether it ran before it went is not known: the safe answer is that it may have
            // (the target is blocked until an operator has looked).
            let mut c = unknown("PipelineRun deleted externally".into());
            c.was_execution_failure = true;
            b.fail(c, None, ctx);
        }
        Observation::PipelineRun { run, task_runs } => b.observe_run(run, task_runs, ctx),
    }
    if was_running
        && b.status.phase == Phase::Running
        && !start_trouble_changed(&unchanged, &b.status)
    {
        return unchanged;
    }
    b.status
}

/// True when `TektonPipelineRunning` turned False, or recovered from False.
fn start_trouble_changed(
    before: &WorkflowExecutionStatus,
    after: &WorkflowExecutionStatus,
) -> bool {
    let running = |s: &WorkflowExecutionStatus| {
        conditions::get(&s.conditions, T::TektonPipelineRunning).map(|c| c.status)
    };
    let (before, after) = (running(before), running(after));
    (after == Some(S::False)) != (before == Some(S::False))
}

/// `executionConfig.timeout`, or the default when it is absent or unreadable: the PipelineRun's
/// timeout and the base of the controller's own deadline.
pub fn execution_timeout(wfe: &WorkflowExecution) -> Duration {
    wfe.spec
        .execution_config
        .as_ref()
        .and_then(|c| c.timeout.as_deref())
        .and_then(|t| parse_go_duration(t).ok())
        .or_else(|| parse_go_duration(DEFAULT_TIMEOUT).ok())
        .unwrap_or(Duration::from_secs(1800))
}

fn unknown(message: String) -> Classification {
    Classification {
        reason: FailureReason::Unknown,
        failed_task_index: -1,
        failed_task_name: String::new(),
        failed_step_name: None,
        exit_code: None,
        message,
        was_execution_failure: false,
    }
}

mod builder;
use builder::Builder;

#[cfg(test)]
mod tests;
