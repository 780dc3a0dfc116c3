//! Classification of a failed PipelineRun (SPEC 4 "Failure classification"): structured state first
//! — step `terminated.reason`, exit codes, Tekton's condition reasons — and message text only when
//! the structure says nothing.

use crate::api::FailureReason;
use crate::tekton::observed::ObservedTaskRun;
use crate::tekton::{PipelineRunStatus, StepState};

/// What failed and why, before times and summary are added.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub reason: FailureReason,
    /// Index of the failed task among the PipelineRun's TaskRuns; -1 when none failed.
    pub failed_task_index: i32,
    /// Pipeline task name of the failed TaskRun; empty when none failed.
    pub failed_task_name: String,
    pub failed_step_name: Option<String>,
    /// First non-zero step exit code of the failed TaskRun.
    pub exit_code: Option<i32>,
    pub message: String,
    /// The workflow actually ran: non-idempotent actions may have happened.
    pub was_execution_failure: bool,
}

/// Classifies a PipelineRun whose `Succeeded` condition is False. `task_runs` are its TaskRuns (any
/// order); the failed one is found through `childReferences`.
pub fn classify(run: &PipelineRunStatus, task_runs: &[ObservedTaskRun]) -> Classification {
    let run_condition = run.succeeded();
    let run_reason = run_condition
        .and_then(|c| c.reason.as_deref())
        .unwrap_or("");
    let run_message = run_condition
        .and_then(|c| c.message.clone())
        .unwrap_or_default();

    let children: Vec<_> = run.task_run_children().collect();
    let seen = |child: &&crate::tekton::ChildStatusReference| {
        task_runs.iter().find(|tr| tr.name() == child.name)
    };
    // The failed task: the first child whose TaskRun failed, else the first that had not
    // succeeded when the run ended (Tekton marks a timed-out PipelineRun before it cancels the
    // TaskRun that was running).
    let failed = children
        .iter()
        .enumerate()
        .find_map(|(i, child)| {
            let tr = seen(child)?;
            let cond = tr.succeeded()?;
            cond.is_false().then_some((i, child, tr, cond))
        })
        .or_else(|| {
            children.iter().enumerate().find_map(|(i, child)| {
                let tr = seen(child)?;
                let cond = tr.succeeded()?;
                (!cond.is_true()).then_some((i, child, tr, cond))
            })
        });

    let mut c = Classification {
        reason: FailureReason::Unknown,
        failed_task_index: -1,
        failed_task_name: String::new(),
        failed_step_name: None,
        exit_code: None,
        message: run_message.clone(),
        was_execution_failure: false,
    };
    let mut structured = reason_from_pipeline_run(run_reason);

    if let Some((index, child, task_run, condition)) = failed {
        c.failed_task_index = index as i32;
        c.failed_task_name = child
            .pipeline_task_name
            .clone()
            .unwrap_or_else(|| child.name.clone());
        let task_reason = condition.reason.as_deref().unwrap_or("");
        let task_message = condition.message.as_deref().unwrap_or("");
        let steps = task_run
            .status
            .as_ref()
            .map(|s| s.steps.as_slice())
            .unwrap_or(&[]);
        // When Tekton stops a TaskRun (cancel, timeout, image pull), it writes every unfinished
        // step as terminated with exit code 1 and the TaskRun's own reason: no step exited.
        let exited = |s: &&StepState| {
            s.terminated.as_ref().is_some_and(|t| {
                t.reason
                    .as_deref()
                    .is_none_or(|r| r.is_empty() || r != task_reason)
            })
        };
        let first_failed_step = steps.iter().find(|s| {
            (exited(s)
                && s.terminated
                    .as_ref()
                    .is_some_and(|t| t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled")))
                || s.waiting.is_some()
        });
        c.failed_step_name = first_failed_step
            .and_then(|s| s.name.clone())
            .or_else(|| step_named_in(task_reason, task_message));
        c.exit_code = steps
            .iter()
            .filter(exited)
            .filter_map(|s| s.terminated.as_ref().map(|t| t.exit_code))
            .find(|&code| code != 0);
        // A TaskRun cancelled because its PipelineRun ended (timed out, was cancelled), or one
        // still running, says less than the PipelineRun itself.
        if condition.is_false() && !task_message.is_empty() && task_reason != "TaskRunCancelled" {
            c.message = task_message.to_owned();
        }
        let oom = steps.iter().any(|s| {
            s.terminated
                .as_ref()
                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
                || s.termination_reason.as_deref() == Some("OOMKilled")
        });
        let image_pull = steps.iter().any(|s| {
            s.waiting
                .as_ref()
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| {
                    matches!(r, "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName")
                })
        });
        structured = if oom || c.exit_code == Some(137) {
            Some(FailureReason::OOMKilled)
        } else if image_pull {
            Some(FailureReason::ImagePullBackOff)
        } else {
            reason_from_task_run(task_reason)
                .or(structured)
                .or(Some(FailureReason::TaskFailed))
        };
    }
    c.reason = match structured {
        Some(r) => r,
        None => reason_from_text(&c.message).unwrap_or(FailureReason::Unknown),
    };
    // The workflow ran when the PipelineRun started and has TaskRuns, unless the failure is one that
    // happens before any step can act.
    let before_start = matches!(
        c.reason,
        FailureReason::ImagePullBackOff
            | FailureReason::ConfigurationError
            | FailureReason::ResourceExhausted
    );
    c.was_execution_failure = run.start_time.is_some() && !children.is_empty() && !before_start;
    c
}

/// A pipeline that could not be resolved from its bundle: Tekton's message gives the bundle only
/// as a registry URL, so the message starts with the reference the execution asked for.
pub fn naming_the_bundle(
    mut c: Classification,
    run: &PipelineRunStatus,
    bundle: &str,
) -> Classification {
    let unresolved = run
        .succeeded()
        .and_then(|cond| cond.reason.as_deref())
        .is_some_and(|r| r == "CouldntGetPipeline");
    if unresolved && !c.message.contains(bundle) {
        c.message = format!(
            "workflow bundle {bundle} could not be resolved: {}",
            c.message
        );
    }
    c
}

/// The step Tekton names in an image pull failure, whose step states it has overwritten: the
/// message reads `the step "apply" in TaskRun "x" failed to pull the image ...`.
fn step_named_in(task_reason: &str, message: &str) -> Option<String> {
    if task_reason != "TaskRunImagePullFailed" {
        return None;
    }
    let rest = message.strip_prefix("the step \"")?;
    let (step, _) = rest.split_once('"')?;
    (!step.is_empty()).then(|| step.to_owned())
}

fn reason_from_pipeline_run(reason: &str) -> Option<FailureReason> {
    Some(match reason {
        "PipelineRunTimeout" | "PipelineRunTimedOut" => FailureReason::DeadlineExceeded,
        "CouldntGetPipeline"
        | "CouldntGetTask"
        | "PipelineValidationFailed"
        | "ParameterMissing"
        | "ParameterTypeMismatch"
        | "InvalidWorkspaceBindings"
        | "PipelineInvalidGraph"
        | "InvalidTaskResultReference"
        | "ObjectParameterMissKeys"
        | "CouldntGetPipelineResult"
        | "InvalidParamValue"
        | "ResourceVerificationFailed" => FailureReason::ConfigurationError,
        "ExceededResourceQuota" | "ExceededNodeResources" => FailureReason::ResourceExhausted,
        _ => return None,
    })
}

fn reason_from_task_run(reason: &str) -> Option<FailureReason> {
    Some(match reason {
        "TaskRunTimeout" => FailureReason::DeadlineExceeded,
        "TaskRunImagePullFailed" => FailureReason::ImagePullBackOff,
        "CreateContainerConfigError"
        | "TaskRunValidationFailed"
        | "TaskRunResolutionFailed"
        | "InvalidParamValue" => FailureReason::ConfigurationError,
        "ExceededResourceQuota" | "ExceededNodeResources" => FailureReason::ResourceExhausted,
        _ => return None,
    })
}

/// Last resort: words in the message.
fn reason_from_text(message: &str) -> Option<FailureReason> {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    Some(if has(&["oomkilled", "out of memory"]) {
        FailureReason::OOMKilled
    } else if has(&["forbidden", "unauthorized", "rbac"]) {
        FailureReason::Forbidden
    } else if has(&["timed out", "timeout", "deadline exceeded"]) {
        FailureReason::DeadlineExceeded
    } else if has(&["imagepull", "pull image", "errimagepull"]) {
        FailureReason::ImagePullBackOff
    } else if has(&["exceeded quota", "insufficient", "resource quota"]) {
        FailureReason::ResourceExhausted
    } else if has(&["invalid", "not found", "missing"]) {
        FailureReason::ConfigurationError
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tekton::{
        ChildStatusReference, KnativeCondition, StepState, TaskRun, TaskRunSpec, TaskRunStatus,
    };
    use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cond(status: &str, reason: &str, message: &str) -> KnativeCondition {
        KnativeCondition {
            type_: "Succeeded".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Default::default()
        }
    }

    fn run(reason: &str, message: &str, tasks: &[(&str, &str)]) -> PipelineRunStatus {
        PipelineRunStatus {
            conditions: vec![cond("False", reason, message)],
            start_time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            child_references: tasks
                .iter()
                .map(|(name, task)| ChildStatusReference {
                    kind: Some("TaskRun".into()),
                    name: (*name).into(),
                    pipeline_task_name: Some((*task).into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn task_run(name: &str, status: &str, reason: &str, steps: Vec<StepState>) -> ObservedTaskRun {
        let mut tr = TaskRun::new(name, TaskRunSpec::default());
        tr.status = Some(TaskRunStatus {
            conditions: vec![cond(status, reason, &format!("{name} {reason}"))],
            steps,
            ..Default::default()
        });
        tr.into()
    }

    fn terminated(name: &str, code: i32, reason: &str) -> StepState {
        StepState {
            name: Some(name.into()),
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn oom_killed_step_is_oom_and_an_execution_failure() {
        let status = run(
            "Failed",
            "Tasks Completed: 2 (Failed: 1)",
            &[("pr-check", "check"), ("pr-restart", "restart")],
        );
        let trs = [
            task_run(
                "pr-check",
                "True",
                "Succeeded",
                vec![terminated("check", 0, "Completed")],
            ),
            task_run(
                "pr-restart",
                "False",
                "Failed",
                vec![
                    terminated("prepare", 0, "Completed"),
                    terminated("restart", 137, "OOMKilled"),
                ],
            ),
        ];
        let c = classify(&status, &trs);
        assert_eq!(c.reason, FailureReason::OOMKilled);
        assert_eq!(
            (c.failed_task_index, c.failed_task_name.as_str()),
            (1, "restart")
        );
        assert_eq!(c.failed_step_name.as_deref(), Some("restart"));
        assert_eq!(c.exit_code, Some(137));
        assert!(c.was_execution_failure);
    }

    #[test]
    fn exit_137_without_a_reason_is_still_oom() {
        let status = run("Failed", "", &[("t", "task")]);
        let c = classify(
            &status,
            &[task_run(
                "t",
                "False",
                "Failed",
                vec![terminated("s", 137, "Error")],
            )],
        );
        assert_eq!(c.reason, FailureReason::OOMKilled);
    }

    #[test]
    fn a_plain_task_failure_carries_its_exit_code() {
        let status = run(
            "Failed",
            "Tasks Completed: 1 (Failed: 1)",
            &[("t", "apply")],
        );
        let c = classify(
            &status,
            &[task_run(
                "t",
                "False",
                "Failed",
                vec![terminated("kubectl", 3, "Error")],
            )],
        );
        assert_eq!(c.reason, FailureReason::TaskFailed);
        assert_eq!(c.exit_code, Some(3));
        assert_eq!(c.failed_step_name.as_deref(), Some("kubectl"));
        assert_eq!(
            c.message, "t Failed",
            "the TaskRun's message is the most specific"
        );
        assert!(c.was_execution_failure);
    }

    #[test]
    fn timeouts_from_pipeline_run_or_task_run() {
        let c = classify(
            &run("PipelineRunTimeout", "PipelineRun timed out after 30m", &[]),
            &[],
        );
        assert_eq!(c.reason, FailureReason::DeadlineExceeded);
        assert_eq!(c.failed_task_index, -1);
        let status = run("Failed", "", &[("t", "wait")]);
        let c = classify(&status, &[task_run("t", "False", "TaskRunTimeout", vec![])]);
        assert_eq!(c.reason, FailureReason::DeadlineExceeded);
        assert!(c.was_execution_failure);
    }

    #[test]
    fn image_pull_failures_are_not_execution_failures() {
        let status = run("Failed", "", &[("t", "restart")]);
        let waiting = StepState {
            name: Some("restart".into()),
            waiting: Some(ContainerStateWaiting {
                reason: Some("ImagePullBackOff".into()),
                message: Some("Back-off pulling image".into()),
            }),
            ..Default::default()
        };
        let c = classify(
            &status,
            &[task_run(
                "t",
                "False",
                "TaskRunImagePullFailed",
                vec![waiting],
            )],
        );
        assert_eq!(c.reason, FailureReason::ImagePullBackOff);
        assert_eq!(c.failed_step_name.as_deref(), Some("restart"));
        assert!(!c.was_execution_failure);
    }

    #[test]
    fn configuration_errors_before_start_are_not_execution_failures() {
        let mut status = run("CouldntGetPipeline", "bundle quay.io/x not found", &[]);
        status.start_time = None;
        let c = classify(&status, &[]);
        assert_eq!(c.reason, FailureReason::ConfigurationError);
        assert!(!c.was_execution_failure);
        let status = run("Failed", "", &[("t", "restart")]);
        let c = classify(
            &status,
            &[task_run("t", "False", "CreateContainerConfigError", vec![])],
        );
        assert_eq!(c.reason, FailureReason::ConfigurationError);
        assert!(!c.was_execution_failure);
    }

    #[test]
    fn message_text_is_only_a_fallback() {
        let c = classify(
            &run("SomethingNew", "pods \"x\" is forbidden: RBAC", &[]),
            &[],
        );
        assert_eq!(c.reason, FailureReason::Forbidden);
        // Structure beats text: an OOM with a message mentioning a timeout is still OOM.
        let status = run("Failed", "timeout waiting", &[("t", "x")]);
        let c = classify(
            &status,
            &[task_run(
                "t",
                "False",
                "Failed",
                vec![terminated("s", 137, "OOMKilled")],
            )],
        );
        assert_eq!(c.reason, FailureReason::OOMKilled);
        let c = classify(&run("Mystery", "it broke", &[]), &[]);
        assert_eq!(c.reason, FailureReason::Unknown);
    }

    /// A started run whose one TaskRun, `t`, failed with `reason` and `steps`.
    fn one_task_failed(reason: &str, steps: Vec<StepState>) -> Classification {
        let status = run("Failed", "", &[("t", "task")]);
        classify(&status, &[task_run("t", "False", reason, steps)])
    }

    /// Every row of the PipelineRun-reason table, with no TaskRun to look at.
    #[test]
    fn each_pipeline_run_reason_maps_to_its_failure_reason() {
        use FailureReason::*;
        let rows = [
            ("PipelineRunTimeout", DeadlineExceeded),
            ("PipelineRunTimedOut", DeadlineExceeded),
            ("CouldntGetPipeline", ConfigurationError),
            ("CouldntGetTask", ConfigurationError),
            ("PipelineValidationFailed", ConfigurationError),
            ("ParameterMissing", ConfigurationError),
            ("ParameterTypeMismatch", ConfigurationError),
            ("InvalidWorkspaceBindings", ConfigurationError),
            ("PipelineInvalidGraph", ConfigurationError),
            ("InvalidTaskResultReference", ConfigurationError),
            ("ObjectParameterMissKeys", ConfigurationError),
            ("CouldntGetPipelineResult", ConfigurationError),
            ("InvalidParamValue", ConfigurationError),
            ("ResourceVerificationFailed", ConfigurationError),
            ("ExceededResourceQuota", ResourceExhausted),
            ("ExceededNodeResources", ResourceExhausted),
        ];
        for (reason, expected) in rows {
            // A message that would classify differently proves the reason decided.
            let c = classify(&run(reason, "pods are forbidden", &[]), &[]);
            assert_eq!(c.reason, expected, "PipelineRun reason {reason}");
        }
    }

    /// Every row of the TaskRun-reason table: the failed TaskRun's reason beats the PipelineRun's.
    #[test]
    fn each_task_run_reason_maps_to_its_failure_reason() {
        use FailureReason::*;
        let rows = [
            ("TaskRunTimeout", DeadlineExceeded),
            ("TaskRunImagePullFailed", ImagePullBackOff),
            ("CreateContainerConfigError", ConfigurationError),
            ("TaskRunValidationFailed", ConfigurationError),
            ("TaskRunResolutionFailed", ConfigurationError),
            ("InvalidParamValue", ConfigurationError),
            ("ExceededResourceQuota", ResourceExhausted),
            ("ExceededNodeResources", ResourceExhausted),
            // Not in the table: the PipelineRun's structured reason, if any, then TaskFailed.
            ("Failed", TaskFailed),
        ];
        for (reason, expected) in rows {
            let status = run("Failed", "pods are forbidden", &[("t", "task")]);
            let c = classify(&status, &[task_run("t", "False", reason, vec![])]);
            assert_eq!(c.reason, expected, "TaskRun reason {reason}");
        }
        // An unknown TaskRun reason falls back to the PipelineRun's reason before TaskFailed.
        let status = run("PipelineRunTimeout", "", &[("t", "task")]);
        let c = classify(&status, &[task_run("t", "False", "Failed", vec![])]);
        assert_eq!(c.reason, DeadlineExceeded);
    }

    #[test]
    fn oom_is_detected_from_the_reason_alone() {
        // Terminated with reason OOMKilled but an exit code other than 137.
        let c = one_task_failed("Failed", vec![terminated("s", 1, "OOMKilled")]);
        assert_eq!(c.reason, FailureReason::OOMKilled);
        assert_eq!(c.exit_code, Some(1));
        // Only Tekton's terminationReason says it, and the container reports exit 0.
        let step = StepState {
            termination_reason: Some("OOMKilled".into()),
            ..terminated("s", 0, "Completed")
        };
        let c = one_task_failed("Failed", vec![step]);
        assert_eq!(c.reason, FailureReason::OOMKilled);
        assert_eq!(c.exit_code, None, "no non-zero exit code to report");
        // A step terminated OOMKilled with exit 0 is the failed step.
        let c = one_task_failed(
            "Failed",
            vec![
                terminated("ok", 0, "Completed"),
                terminated("big", 0, "OOMKilled"),
            ],
        );
        assert_eq!(c.reason, FailureReason::OOMKilled);
        assert_eq!(c.failed_step_name.as_deref(), Some("big"));
    }

    #[test]
    fn every_image_pull_waiting_reason_is_image_pull() {
        for reason in ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"] {
            let step = StepState {
                name: Some("pull".into()),
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            };
            let c = one_task_failed("Failed", vec![step]);
            assert_eq!(c.reason, FailureReason::ImagePullBackOff, "{reason}");
            assert_eq!(c.failed_step_name.as_deref(), Some("pull"));
            assert!(!c.was_execution_failure, "{reason}: no step ran");
        }
        // Waiting for another reason is not an image pull failure.
        let step = StepState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        };
        let c = one_task_failed("Failed", vec![step]);
        assert_eq!(c.reason, FailureReason::TaskFailed);
    }

    #[test]
    fn each_message_fallback_word_maps_to_its_reason() {
        use FailureReason::*;
        let rows = [
            ("container OOMKilled", OOMKilled),
            ("ran out of memory", OOMKilled),
            ("pods is Forbidden", Forbidden),
            ("Unauthorized", Forbidden),
            ("missing RBAC rule", Forbidden),
            ("step timed out", DeadlineExceeded),
            ("timeout", DeadlineExceeded),
            ("context deadline exceeded", DeadlineExceeded),
            ("ImagePull failed", ImagePullBackOff),
            ("cannot pull image x", ImagePullBackOff),
            ("ErrImagePull", ImagePullBackOff),
            ("exceeded quota: compute", ResourceExhausted),
            ("0/3 nodes: Insufficient cpu", ResourceExhausted),
            ("resource quota reached", ResourceExhausted),
            ("invalid spec", ConfigurationError),
            ("task not found", ConfigurationError),
            ("param missing", ConfigurationError),
            ("it broke", Unknown),
            ("", Unknown),
        ];
        for (message, expected) in rows {
            let c = classify(&run("Mystery", message, &[]), &[]);
            assert_eq!(c.reason, expected, "message {message:?}");
        }
        // Earlier rows win: a message with both words is classified by the first row.
        let c = classify(&run("Mystery", "forbidden: timed out", &[]), &[]);
        assert_eq!(c.reason, Forbidden);
        let c = classify(&run("Mystery", "out of memory, invalid", &[]), &[]);
        assert_eq!(c.reason, OOMKilled);
        let c = classify(&run("Mystery", "pull image: insufficient", &[]), &[]);
        assert_eq!(c.reason, ImagePullBackOff);
        let c = classify(&run("Mystery", "timeout: cannot pull image", &[]), &[]);
        assert_eq!(c.reason, DeadlineExceeded);
        let c = classify(&run("Mystery", "insufficient: not found", &[]), &[]);
        assert_eq!(c.reason, ResourceExhausted);
    }

    #[test]
    fn the_failed_task_is_the_first_failed_child_in_pipeline_order() {
        // TaskRuns listed in another order than childReferences; a child with no TaskRun seen
        // and a running one are skipped.
        let status = run(
            "Failed",
            "",
            &[("pr-a", "a"), ("pr-b", "b"), ("pr-c", "c"), ("pr-d", "d")],
        );
        let running = {
            let mut tr = TaskRun::new("pr-b", TaskRunSpec::default());
            tr.status = Some(TaskRunStatus {
                conditions: vec![cond("Unknown", "Running", "")],
                ..Default::default()
            });
            ObservedTaskRun::from(tr)
        };
        let trs = [
            task_run("pr-d", "False", "Failed", vec![terminated("d", 2, "Error")]),
            task_run("pr-c", "False", "Failed", vec![terminated("c", 5, "Error")]),
            running,
        ];
        let c = classify(&status, &trs);
        assert_eq!(c.failed_task_index, 2);
        assert_eq!(c.failed_task_name, "c");
        assert_eq!(c.exit_code, Some(5));
        assert_eq!(c.message, "pr-c Failed");
    }

    #[test]
    fn the_first_non_zero_exit_code_and_its_step_are_reported() {
        let c = one_task_failed(
            "Failed",
            vec![
                terminated("a", 0, "Completed"),
                terminated("b", 4, "Error"),
                terminated("c", 9, "Error"),
            ],
        );
        assert_eq!(c.failed_step_name.as_deref(), Some("b"));
        assert_eq!(c.exit_code, Some(4));
    }

    #[test]
    fn the_task_name_falls_back_to_the_task_run_name() {
        let mut status = run("Failed", "", &[]);
        status.child_references = vec![ChildStatusReference {
            kind: Some("TaskRun".into()),
            name: "pr-x".into(),
            pipeline_task_name: None,
            ..Default::default()
        }];
        let c = classify(&status, &[task_run("pr-x", "False", "Failed", vec![])]);
        assert_eq!(c.failed_task_name, "pr-x");
        assert_eq!(c.failed_task_index, 0);
    }

    #[test]
    fn an_empty_task_run_message_keeps_the_pipeline_run_message() {
        let status = run("Failed", "Tasks Completed: 1 (Failed: 1)", &[("t", "task")]);
        let mut tr = TaskRun::new("t", TaskRunSpec::default());
        tr.status = Some(TaskRunStatus {
            conditions: vec![cond("False", "Failed", "")],
            ..Default::default()
        });
        let c = classify(&status, &[tr.into()]);
        assert_eq!(c.message, "Tasks Completed: 1 (Failed: 1)");
    }

    #[test]
    fn an_execution_failure_needs_a_start_and_task_runs() {
        use FailureReason::*;
        // Failures before any step acts are never execution failures, even with a started run.
        for (reason, expected) in [
            ("ExceededResourceQuota", ResourceExhausted),
            ("CreateContainerConfigError", ConfigurationError),
            ("TaskRunImagePullFailed", ImagePullBackOff),
        ] {
            let c = one_task_failed(reason, vec![]);
            assert_eq!(c.reason, expected);
            assert!(!c.was_execution_failure, "{reason}");
        }
        // A task failure on a run that never started is not one either.
        let mut status = run("Failed", "", &[("t", "task")]);
        status.start_time = None;
        let c = classify(&status, &[task_run("t", "False", "Failed", vec![])]);
        assert_eq!(c.reason, TaskFailed);
        assert!(!c.was_execution_failure);
        // A started run with no children did not execute a task.
        let c = classify(&run("PipelineRunTimeout", "", &[]), &[]);
        assert!(!c.was_execution_failure);
        // Timeouts, OOM, Forbidden and task failures of a started run did.
        for (reason, expected) in [("TaskRunTimeout", DeadlineExceeded), ("Failed", TaskFailed)] {
            let c = one_task_failed(reason, vec![]);
            assert_eq!(c.reason, expected);
            assert!(c.was_execution_failure, "{reason}");
        }
        let status = run("Failed", "forbidden", &[("t", "task")]);
        let c = classify(&status, &[]);
        assert_eq!(c.reason, Forbidden);
        assert!(c.was_execution_failure, "a started run with children");
    }
    /// A step as Tekton writes it when it stops the TaskRun: exit 1 with the TaskRun's reason.
    fn stopped(name: &str, reason: &str) -> StepState {
        StepState {
            termination_reason: Some(reason.into()),
            ..terminated(name, 1, reason)
        }
    }

    fn failed_task_run(
        name: &str,
        reason: &str,
        message: &str,
        steps: Vec<StepState>,
    ) -> ObservedTaskRun {
        let mut tr = TaskRun::new(name, TaskRunSpec::default());
        tr.status = Some(TaskRunStatus {
            conditions: vec![cond("False", reason, message)],
            steps,
            ..Default::default()
        });
        tr.into()
    }

    /// What the real Tekton v1.15 writes for a PipelineRun that timed out while step `apply` ran.
    #[test]
    fn a_pipeline_timeout_reports_the_running_task_but_no_step_or_exit_code() {
        let status = run(
            "PipelineRunTimeout",
            "PipelineRun \"pr\" failed to finish within \"10s\"",
            &[("pr-check", "check"), ("pr-remediate", "remediate")],
        );
        let check = task_run(
            "pr-check",
            "True",
            "Succeeded",
            vec![terminated("inspect", 0, "Completed")],
        );
        let cancelled = failed_task_run(
            "pr-remediate",
            "TaskRunCancelled",
            "TaskRun \"pr-remediate\" was cancelled. TaskRun cancelled as the PipelineRun it belongs to has timed out.",
            vec![
                stopped("prepare", "TaskRunCancelled"),
                stopped("apply", "TaskRunCancelled"),
            ],
        );
        let c = classify(&status, &[check.clone(), cancelled]);
        assert_eq!(c.reason, FailureReason::DeadlineExceeded);
        assert_eq!(
            (c.failed_task_index, c.failed_task_name.as_str()),
            (1, "remediate")
        );
        assert_eq!(
            c.failed_step_name, None,
            "Tekton wrote every step as stopped"
        );
        assert_eq!(c.exit_code, None, "no step exited by itself");
        assert_eq!(
            c.message,
            "PipelineRun \"pr\" failed to finish within \"10s\""
        );
        assert!(c.was_execution_failure);

        // Tekton marks the PipelineRun before it cancels the TaskRun: seen still running, the
        // TaskRun is the failed task, and the PipelineRun's message stands.
        let mut running = TaskRun::new("pr-remediate", TaskRunSpec::default());
        running.status = Some(TaskRunStatus {
            conditions: vec![cond(
                "Unknown",
                "Running",
                "Not all Steps in the Task have finished executing",
            )],
            ..Default::default()
        });
        let c = classify(&status, &[check, running.into()]);
        assert_eq!(c.reason, FailureReason::DeadlineExceeded);
        assert_eq!(
            (c.failed_task_index, c.failed_task_name.as_str()),
            (1, "remediate")
        );
        assert_eq!(
            c.message,
            "PipelineRun \"pr\" failed to finish within \"10s\""
        );
    }

    /// What the real Tekton v1.15 writes for an image that cannot be pulled: the pod is deleted and
    /// every step reads exit 1, TaskRunImagePullFailed; only the message names the step.
    #[test]
    fn an_image_pull_failure_names_the_step_from_tektons_message() {
        let status = run(
            "Failed",
            "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 0",
            &[("t", "remediate")],
        );
        let message = "the step \"apply\" in TaskRun \"t\" failed to pull the image \"\". The pod errored with the message: \"Back-off pulling image \"x\".\"";
        let tr = failed_task_run(
            "t",
            "TaskRunImagePullFailed",
            message,
            vec![
                stopped("prepare", "TaskRunImagePullFailed"),
                stopped("apply", "TaskRunImagePullFailed"),
            ],
        );
        let c = classify(&status, &[tr]);
        assert_eq!(c.reason, FailureReason::ImagePullBackOff);
        assert_eq!(c.failed_step_name.as_deref(), Some("apply"));
        assert_eq!(c.exit_code, None);
        assert_eq!(c.message, message);
        assert!(!c.was_execution_failure);
        // The message names a step only for an image pull failure, and only in Tekton's words.
        assert_eq!(step_named_in("StepFailed", message), None);
        assert_eq!(
            step_named_in("TaskRunImagePullFailed", "the step \"\" in"),
            None
        );
        assert_eq!(
            step_named_in("TaskRunImagePullFailed", "a step \"apply\""),
            None
        );
    }

    /// What the real Tekton v1.15 writes for a step exiting 1 and for an OOMKilled step.
    #[test]
    fn step_failed_and_step_oom_come_with_their_step_and_exit_code() {
        let status = run("Failed", "", &[("t", "remediate")]);
        let tr = failed_task_run(
            "t",
            "StepFailed",
            "\"step-apply\" exited with code 1: Error",
            vec![
                terminated("prepare", 0, "Completed"),
                terminated("apply", 1, "Error"),
                terminated("verify", 1, "Error"),
            ],
        );
        let c = classify(&status, &[tr]);
        assert_eq!(c.reason, FailureReason::TaskFailed);
        assert_eq!(
            (c.failed_step_name.as_deref(), c.exit_code),
            (Some("apply"), Some(1))
        );
        let tr = failed_task_run(
            "t",
            "StepOOM",
            "\"step-apply\" exited with code 137: OOMKilled",
            vec![
                terminated("prepare", 0, "Completed"),
                terminated("apply", 137, "OOMKilled"),
            ],
        );
        let c = classify(&status, &[tr]);
        assert_eq!(c.reason, FailureReason::OOMKilled);
        assert_eq!(
            (c.failed_step_name.as_deref(), c.exit_code),
            (Some("apply"), Some(137))
        );
    }

    #[test]
    fn an_unresolved_bundle_is_named_in_the_message() {
        let bundle = "registry.example/wf/restart:v1";
        let tekton = "resolver failed to get Pipeline: GET https://registry.example/v2/wf/restart/manifests/v1: NAME_UNKNOWN";
        let status = run("CouldntGetPipeline", tekton, &[]);
        let c = naming_the_bundle(classify(&status, &[]), &status, bundle);
        assert_eq!(
            c.message,
            format!("workflow bundle {bundle} could not be resolved: {tekton}")
        );
        // Named once, and only for a resolution failure.
        let again = naming_the_bundle(c.clone(), &status, bundle);
        assert_eq!(again.message, c.message);
        let other = run("PipelineRunTimeout", tekton, &[]);
        let c = naming_the_bundle(classify(&other, &[]), &other, bundle);
        assert_eq!(c.message, tekton);
    }
}
