//! The status under construction: conditions, the PipelineRun's progress, its start and deadline
//! checks, and failure with its details and summary.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use super::{Context, execution_timeout, unknown};
use crate::admission::duration::format_duration;
use crate::api::{
    ConditionReason as R, ConditionStatus as S, ConditionType as T, FailureDetails, FailureReason,
    Phase, PipelineRunStatusSummary, WorkflowExecution, WorkflowExecutionStatus,
};
use crate::status::conditions;
use crate::status::summary::summary;
use crate::tekton::KnativeCondition;
use crate::tekton::classify::{Classification, classify, naming_the_bundle};
use crate::tekton::observed::{ObservedRun, ObservedTaskRun};

pub(super) struct Builder<'a> {
    pub(super) wfe: &'a WorkflowExecution,
    pub(super) status: WorkflowExecutionStatus,
    pub(super) now: Time,
}

impl Builder<'_> {
    pub(super) fn condition(&mut self, t: T, s: S, r: R, message: impl Into<String>) {
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
    pub(super) fn creation_failed(&mut self, c: Classification, ctx: &Context) {
        self.condition(
            T::TektonPipelineCreated,
            S::False,
            R::PipelineCreationFailed,
            c.message.clone(),
        );
        self.fail(c, None, ctx);
    }

    pub(super) fn observe_run(
        &mut self,
        run: &ObservedRun,
        task_runs: &[ObservedTaskRun],
        ctx: &Context,
    ) {
        let started = run.has_started();
        if !started {
            self.check_start(run, ctx);
        }
        let Some(status) = run.status.as_ref() else {
            return self.check_deadline(started, ctx);
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
                // Success resets the target's count of failures.
                self.status.consecutive_failures = Some(0);
                self.status.next_allowed_execution = None;
                let message = format!("all {total} tasks succeeded");
                self.condition(
                    T::TektonPipelineComplete,
                    S::True,
                    R::PipelineSucceeded,
                    message,
                );
            }
            Some(S::False) => {
                let c = naming_the_bundle(
                    classify(status, task_runs),
                    status,
                    &self.wfe.spec.workflow_ref.container_image,
                );
                self.fail(c, status.completion_time.clone(), ctx);
            }
            _ => self.check_deadline(started, ctx),
        }
    }

    /// Created more than the start timeout ago and still not started: `TektonPipelineRunning` False /
    /// `PipelineFailedToStart`, with what Tekton says about it.
    pub(super) fn check_start(&mut self, run: &ObservedRun, ctx: &Context) {
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

    /// Past `executionConfig.timeout` + grace with no terminal condition: Failed / DeadlineExceeded
    /// — a failure during execution when the run had started, before it otherwise.
    pub(super) fn check_deadline(&mut self, started: bool, ctx: &Context) {
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
            c.was_execution_failure = started;
            self.fail(c, None, ctx);
        }
    }

    /// The target's bookkeeping after a failure: an execution failure blocks the target instead
    /// of backing off (SPEC 4 rule 3), so it leaves the count as it was; a failure before
    /// execution counts, and opens the backoff window from the moment of failure.
    fn count_failure(&mut self, during_execution: bool, at: &Time, ctx: &Context) {
        let before = self.status.consecutive_failures.unwrap_or(0);
        if during_execution {
            self.status.consecutive_failures = Some(before);
            self.status.next_allowed_execution = None;
            return;
        }
        let failures = before.saturating_add(1);
        let backoff = ctx
            .rules
            .backoff(u32::try_from(failures).unwrap_or(u32::MAX));
        let until = SignedDuration::try_from(backoff)
            .ok()
            .and_then(|b| at.0.checked_add(b).ok())
            .unwrap_or(k8s_openapi::jiff::Timestamp::MAX);
        self.status.consecutive_failures = Some(failures);
        self.status.next_allowed_execution = Some(Time(until));
    }

    pub(super) fn elapsed(&self) -> Duration {
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

    pub(super) fn elapsed_text(&self) -> String {
        format_duration(self.elapsed())
    }

    pub(super) fn fail(&mut self, c: Classification, completed_at: Option<Time>, ctx: &Context) {
        let at = completed_at.unwrap_or_else(|| self.now.clone());
        self.status.phase = Phase::Failed;
        self.status.completion_time = Some(at.clone());
        self.count_failure(c.was_execution_failure, &at, ctx);
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
