//! A target's history: the other executions on the same target, as the controller's index holds
//! them (trimmed once terminal, which keeps everything read here), and what the rules read from it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Phase, WorkflowExecution};
use crate::tekton::ownership::Owner;

/// The other executions on one target.
#[derive(Clone, Debug, Default)]
pub struct History<'a> {
    entries: Vec<&'a WorkflowExecution>,
}

/// The backoff bookkeeping a new execution carries forward from its target's history, and
/// writes into its own status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// Consecutive pre-execution failures on the target so far.
    pub consecutive_failures: i32,
    /// Earliest start of a new execution on the target (backoff), if any.
    pub next_allowed_execution: Option<Time>,
}

fn phase(w: &WorkflowExecution) -> Phase {
    w.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn completed_at(w: &WorkflowExecution) -> Option<&Time> {
    w.status.as_ref()?.completion_time.as_ref()
}

/// Newest last: by completion, then start, then creation, then name (timestamps have whole
/// seconds, so ties happen; the order stays total and deterministic).
fn age_key(w: &WorkflowExecution) -> impl Ord + '_ {
    let s = w.status.as_ref();
    (
        completed_at(w).map(|t| t.0),
        s.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        w.metadata.creation_timestamp.as_ref().map(|t| t.0),
        w.metadata.name.as_deref(),
    )
}

/// True for a Failed execution whose failure happened while the workflow ran.
pub fn failed_during_execution(w: &WorkflowExecution) -> bool {
    let Some(s) = w.status.as_ref() else {
        return false;
    };
    s.phase == Phase::Failed
        && s.failure_details
            .as_ref()
            .is_some_and(|d| d.was_execution_failure)
}

/// True when an operator cleared this execution's block.
pub fn is_cleared(w: &WorkflowExecution) -> bool {
    w.status
        .as_ref()
        .is_some_and(|s| s.block_clearance.is_some())
}

impl<'a> History<'a> {
    /// The executions of `others` on `wfe`'s target, `wfe` itself left out.
    pub fn of(
        wfe: &WorkflowExecution,
        others: impl IntoIterator<Item = &'a WorkflowExecution>,
    ) -> Self {
        let me = (&wfe.metadata.namespace, &wfe.metadata.name);
        let entries = others
            .into_iter()
            .filter(|o| o.spec.target_resource == wfe.spec.target_resource)
            .filter(|o| (&o.metadata.namespace, &o.metadata.name) != me)
            .collect();
        History { entries }
    }

    /// The execution running on the target (the most recently started, should there be several).
    pub fn running(&self) -> Option<&'a WorkflowExecution> {
        self.entries
            .iter()
            .copied()
            .filter(|w| phase(w) == Phase::Running)
            .max_by_key(|w| age_key(w))
    }

    /// Completed and Failed executions, oldest first. Skipped ones did nothing to the target and
    /// are not history.
    fn finished(&self) -> impl Iterator<Item = &'a WorkflowExecution> + '_ {
        let mut finished: Vec<_> = self
            .entries
            .iter()
            .copied()
            .filter(|w| matches!(phase(w), Phase::Completed | Phase::Failed))
            .filter(|w| completed_at(w).is_some())
            .collect();
        finished.sort_by_key(|w| age_key(w));
        finished.into_iter()
    }

    /// The most recent finished execution that kept the target's backoff bookkeeping (one that
    /// failed validation never reached the target and keeps none).
    pub fn last_bookkept(&self) -> Option<&'a WorkflowExecution> {
        self.finished()
            .filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.consecutive_failures.is_some())
            })
            .last()
    }

    /// What a new execution carries forward: the bookkeeping of [`Self::last_bookkept`], reset
    /// when an operator cleared that execution's block (or when there is none).
    pub fn carried(&self) -> Carried {
        match self.last_bookkept() {
            Some(w) if !is_cleared(w) => {
                let s = w.status.as_ref();
                Carried {
                    consecutive_failures: s.and_then(|s| s.consecutive_failures).unwrap_or(0),
                    next_allowed_execution: s.and_then(|s| s.next_allowed_execution.clone()),
                }
            }
            _ => Carried::default(),
        }
    }

    /// The failure that blocks the target: the most recent execution failure not cleared and not
    /// followed by a success. (Stricter than "the most recent finished execution": a later
    /// execution that failed validation, or any other that never ran, cannot hide it.)
    pub fn blocking_failure(&self) -> Option<&'a WorkflowExecution> {
        let last_success = self
            .finished()
            .filter(|w| phase(w) == Phase::Completed)
            .filter_map(completed_at)
            .max();
        // A failure in the same second as the success is not known to be older: it blocks.
        self.finished()
            .filter(|w| failed_during_execution(w) && !is_cleared(w))
            .filter(|w| last_success.is_none_or(|s| completed_at(w).is_some_and(|t| t >= s)))
            .last()
    }

    /// The most recent Completed execution of `workflow_id` on the target.
    pub fn last_completed(&self, workflow_id: &str) -> Option<&'a WorkflowExecution> {
        self.finished()
            .filter(|w| phase(w) == Phase::Completed)
            .filter(|w| w.spec.workflow_ref.workflow_id == workflow_id)
            .last()
    }

    /// The execution the owner labels of a PipelineRun name.
    pub fn owned_by(&self, owner: &Owner) -> Option<&'a WorkflowExecution> {
        self.entries
            .iter()
            .copied()
            .find(|w| Owner::of(w) == *owner)
    }
}
