//! Executions past the point where the controller should already have ended them: a Running one
//! past its deadline (start + `executionConfig.timeout` + the controller's grace), or a Pending one
//! that long after its creation. The controller ends every execution by then, so any such execution
//! means it is not doing its job (not running, not leading, or failing to write) — the gauge behind
//! the `WFEExecutionsPastDeadline` alert.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::desired::execution_timeout;
use crate::api::{Phase, WorkflowExecution};

/// How many executions are past their deadline, by phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PastDeadline {
    pub pending: u64,
    pub running: u64,
}

/// The phase of `wfe` if it is Pending or Running past its deadline at `now`.
pub fn past_deadline(wfe: &WorkflowExecution, now: Timestamp, grace: Duration) -> Option<Phase> {
    let status = wfe.status.as_ref();
    let phase = status.map_or(Phase::Pending, |s| s.phase);
    let created = wfe.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let since = match phase {
        Phase::Pending => created,
        Phase::Running => status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .or(created),
        _ => None,
    }?;
    let allowed = execution_timeout(wfe) + grace;
    // A start in the future (clock skew) is not late.
    let elapsed = u64::try_from(now.as_second() - since.as_second()).ok()?;
    (elapsed > allowed.as_secs()).then_some(phase)
}

/// Counts the executions past their deadline.
pub fn count_past_deadline<'a>(
    executions: impl IntoIterator<Item = &'a WorkflowExecution>,
    now: Timestamp,
    grace: Duration,
) -> PastDeadline {
    let mut count = PastDeadline::default();
    for wfe in executions {
        match past_deadline(wfe, now, grace) {
            Some(Phase::Pending) => count.pending += 1,
            Some(Phase::Running) => count.running += 1,
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::execution;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const GRACE: Duration = Duration::from_secs(60);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    /// Created at 0 with a 10m timeout: the deadline is 0 + 600 + 60.
    fn wfe(phase: Phase, started: Option<i64>) -> WorkflowExecution {
        let mut wfe: WorkflowExecution = serde_json::from_value(
            execution("x")
                .set("spec.executionConfig.timeout", "10m")
                .json(),
        )
        .expect("fixture");
        wfe.metadata.creation_timestamp = Some(Time(at(0)));
        let status = wfe.status.get_or_insert_with(Default::default);
        status.phase = phase;
        status.start_time = started.map(|s| Time(at(s)));
        wfe
    }

    #[test]
    fn running_is_past_its_deadline_only_after_start_plus_timeout_plus_grace() {
        let running = wfe(Phase::Running, Some(100));
        assert_eq!(
            past_deadline(&running, at(760), GRACE),
            None,
            "exactly at the deadline"
        );
        assert_eq!(
            past_deadline(&running, at(761), GRACE),
            Some(Phase::Running)
        );
        assert_eq!(past_deadline(&running, at(700), GRACE), None);
        assert_eq!(
            past_deadline(&running, at(50), GRACE),
            None,
            "started in the future"
        );
    }

    #[test]
    fn running_without_a_start_time_counts_from_creation() {
        let running = wfe(Phase::Running, None);
        assert_eq!(
            past_deadline(&running, at(661), GRACE),
            Some(Phase::Running)
        );
        assert_eq!(past_deadline(&running, at(660), GRACE), None);
    }

    #[test]
    fn pending_counts_from_creation_and_terminal_never_counts() {
        assert_eq!(
            past_deadline(&wfe(Phase::Pending, None), at(661), GRACE),
            Some(Phase::Pending)
        );
        assert_eq!(
            past_deadline(&wfe(Phase::Pending, None), at(660), GRACE),
            None
        );
        for phase in [Phase::Completed, Phase::Failed, Phase::Skipped] {
            assert_eq!(
                past_deadline(&wfe(phase, Some(0)), at(100_000), GRACE),
                None,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn the_timeout_of_the_execution_counts() {
        let mut long = wfe(Phase::Running, Some(0));
        long.spec
            .execution_config
            .get_or_insert_with(Default::default)
            .timeout = Some("1h".into());
        assert_eq!(past_deadline(&long, at(3660), GRACE), None);
        assert_eq!(past_deadline(&long, at(3661), GRACE), Some(Phase::Running));
    }

    #[test]
    fn counts_by_phase() {
        let all = [
            wfe(Phase::Pending, None),
            wfe(Phase::Running, Some(0)),
            wfe(Phase::Running, Some(500)),
            wfe(Phase::Failed, Some(0)),
        ];
        assert_eq!(
            count_past_deadline(&all, at(1000), GRACE),
            PastDeadline {
                pending: 1,
                running: 1
            }
        );
    }
}
