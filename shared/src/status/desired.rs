//! The complete status a WorkflowExecution should have, computed from what the controller observed
//! and the clock (SPEC 3, 4). Pure: the controller writes the result in one request, or nothing when
//! it equals what is stored.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::summary::summary;
use crate::admission::duration::{format_duration, parse_go_duration};
use crate::admission::validation::Report;
use crate::api::limits::DEFAULT_TIMEOUT;
use crate::api::{
    ConditionReason as R, ConditionStatus as S, ConditionType as T, ConflictingWorkflowRef,
    FailureDetails, FailureReason, Phase, PipelineRunRef, PipelineRunStatusSummary, SkipDetails,
    SkipReason, WorkflowExecution, WorkflowExecutionStatus,
};
use crate::status::conditions;
use crate::tekton::KnativeCondition;
use crate::tekton::classify::{Classification, classify};
use crate::tekton::observed::{ObservedRun, ObservedTaskRun};

/// What one reconcile learned.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'a> {
    /// Pending, and the spec fails re-validation: Failed / ConfigurationError, no PipelineRun.
    InvalidSpec(&'a Report),
    /// The PipelineRun was created, or ours was adopted after `AlreadyExists`.
    PipelineRunCreated { name: &'a str, adopted: bool },
    /// `AlreadyExists`, labelled for another WorkflowExecution: Skipped / ResourceBusy.
    LockedBy {
        pipeline_run: &'a str,
        holder_namespace: &'a str,
        holder_name: &'a str,
    },
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
            b.creation_failed(c);
        }
        Observation::PipelineRunCreated { name, adopted } => {
            b.status.phase = Phase::Running;
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
        Observation::LockedBy {
            pipeline_run,
            holder_namespace,
            holder_name,
        } => {
            let target = &wfe.spec.target_resource;
            b.status.phase = Phase::Skipped;
            b.status.completion_time = Some(b.now.clone());
            let message = format!(
                "target {target} is locked by WorkflowExecution {holder_namespace}/{holder_name} (PipelineRun {pipeline_run})"
            );
            b.status.skip_details = Some(Box::new(SkipDetails {
                reason: SkipReason::ResourceBusy,
                message: message.clone(),
                skipped_at: b.now.clone(),
                conflicting_workflow: Some(ConflictingWorkflowRef {
                    name: holder_name.to_owned(),
                    namespace: Some(holder_namespace.to_owned()),
                    workflow_id: String::new(),
                    started_at: None,
                    target_resource: target.clone(),
                }),
                recent_remediation: None,
            }));
            b.condition(T::ResourceLocked, S::True, R::TargetResourceBusy, message);
        }
        Observation::UnownedPipelineRun { name } => {
            let c = unknown(format!(
                "PipelineRun {name} already exists for this target and carries no kubernaut.ai/workflow-execution label: it was not created by this controller; remove it or investigate who created it"
            ));
            b.creation_failed(c);
        }
        Observation::PipelineRunMissing => {
            b.fail(unknown("PipelineRun deleted externally".into()), None);
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

struct Builder<'a> {
    wfe: &'a WorkflowExecution,
    status: WorkflowExecutionStatus,
    now: Time,
}

impl Builder<'_> {
    fn condition(&mut self, t: T, s: S, r: R, message: impl Into<String>) {
        let generation = self.wfe.metadata.generation;
        conditions::set(
            &mut self.status.conditions,
            t,
            s,
            r,
            message,
            generation,
            &self.now,
        );
    }

    /// No PipelineRun could be created: `TektonPipelineCreated` False, and the execution fails.
    fn creation_failed(&mut self, c: Classification) {
        self.condition(
            T::TektonPipelineCreated,
            S::False,
            R::PipelineCreationFailed,
            c.message.clone(),
        );
        self.fail(c, None);
    }

    fn observe_run(&mut self, run: &ObservedRun, task_runs: &[ObservedTaskRun], ctx: &Context) {
        let started = run.has_started();
        if !started {
            self.check_start(run, ctx);
        }
        let Some(status) = run.status.as_ref() else {
            return self.check_deadline(ctx);
        };
        let cond = status.succeeded();
        let total = status.child_references.len() as i32;
        // A succeeded PipelineRun completed all its tasks; otherwise count the TaskRuns we were given.
        let completed = if cond.is_some_and(KnativeCondition::is_true) {
            total
        } else {
            task_runs
                .iter()
                .filter(|tr| tr.succeeded().is_some_and(KnativeCondition::is_true))
                .count() as i32
        };
        self.status.pipeline_run_status = Some(PipelineRunStatusSummary {
            status: cond.map_or(S::Unknown, |c| c.status),
            reason: cond.and_then(|c| c.reason.clone()),
            message: cond.and_then(|c| c.message.clone()),
            completed_tasks: completed,
            total_tasks: total,
        });
        if started {
            self.condition(
                T::TektonPipelineRunning,
                S::True,
                R::PipelineStarted,
                "the PipelineRun has started",
            );
        }
        match cond.map(|c| c.status) {
            Some(S::True) => {
                self.status.phase = Phase::Completed;
                self.status.completion_time = Some(
                    status
                        .completion_time
                        .clone()
                        .unwrap_or_else(|| self.now.clone()),
                );
                self.status.duration = Some(self.elapsed_text());
                let message = format!("all {total} tasks succeeded");
                self.condition(
                    T::TektonPipelineComplete,
                    S::True,
                    R::PipelineSucceeded,
                    message,
                );
            }
            Some(S::False) => {
                let c = classify(status, task_runs);
                self.fail(c, status.completion_time.clone());
            }
            _ => self.check_deadline(ctx),
        }
    }

    /// Created more than the start timeout ago and still not started: `TektonPipelineRunning` False /
    /// `PipelineFailedToStart`, with what Tekton says about it.
    fn check_start(&mut self, run: &ObservedRun, ctx: &Context) {
        let Some(created) = self.status.start_time.as_ref().map(|t| t.0) else {
            return;
        };
        let bound = SignedDuration::try_from(ctx.start_timeout).unwrap_or(SignedDuration::MAX);
        if ctx.now.duration_since(created) <= bound {
            return;
        }
        let tekton = run
            .succeeded()
            .map(|c| {
                format!(
                    "; Tekton says {}: {}",
                    c.reason.as_deref().unwrap_or("nothing"),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "; Tekton has not reported on it".to_owned());
        let message = format!(
            "PipelineRun {} has not started {} after it was created{tekton}",
            run.name(),
            format_duration(ctx.start_timeout)
        );
        self.condition(
            T::TektonPipelineRunning,
            S::False,
            R::PipelineFailedToStart,
            message,
        );
    }

    /// Past `executionConfig.timeout` + grace with no terminal condition: Failed / DeadlineExceeded.
    fn check_deadline(&mut self, ctx: &Context) {
        let Some(start) = self.status.start_time.as_ref().map(|t| t.0) else {
            return;
        };
        let timeout = execution_timeout(self.wfe);
        let limit =
            SignedDuration::try_from(timeout + ctx.deadline_grace).unwrap_or(SignedDuration::MAX);
        if ctx.now.duration_since(start) > limit {
            let mut c = unknown(format!(
                "no result from the PipelineRun within executionConfig.timeout {} (+{} grace)",
                format_duration(timeout),
                format_duration(ctx.deadline_grace)
            ));
            c.reason = FailureReason::DeadlineExceeded;
            c.was_execution_failure = true;
            self.fail(c, None);
        }
    }

    fn elapsed(&self) -> Duration {
        let start = self.status.start_time.as_ref().map(|t| t.0);
        let end = self
            .status
            .completion_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(self.now.0);
        start
            .map(|s| end.duration_since(s))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default()
    }

    fn elapsed_text(&self) -> String {
        format_duration(self.elapsed())
    }

    fn fail(&mut self, c: Classification, completed_at: Option<Time>) {
        let at = completed_at.unwrap_or_else(|| self.now.clone());
        self.status.phase = Phase::Failed;
        self.status.completion_time = Some(at.clone());
        let elapsed = self.elapsed_text();
        self.status.duration = Some(elapsed.clone());
        let summary = summary(
            self.wfe,
            &c,
            &elapsed,
            self.status.pipeline_run_ref.as_ref(),
        );
        let complete_reason = match c.reason {
            FailureReason::OOMKilled => Some(R::OOMKilled),
            FailureReason::DeadlineExceeded => Some(R::DeadlineExceeded),
            FailureReason::TaskFailed => Some(R::TaskFailed),
            _ if self.status.pipeline_run_ref.is_some() => Some(R::PipelineFailed),
            _ => None,
        };
        if let Some(reason) = complete_reason {
            self.condition(
                T::TektonPipelineComplete,
                S::False,
                reason,
                c.message.clone(),
            );
        }
        self.status.failure_reason = Some(c.reason);
        self.status.failure_details = Some(Box::new(FailureDetails {
            failed_task_index: c.failed_task_index,
            failed_task_name: c.failed_task_name,
            failed_step_name: c.failed_step_name,
            reason: c.reason,
            message: c.message,
            exit_code: c.exit_code,
            failed_at: at,
            execution_time_before_failure: elapsed,
            natural_language_summary: summary,
            was_execution_failure: c.was_execution_failure,
        }));
    }
}

#[cfg(test)]
mod tests;
