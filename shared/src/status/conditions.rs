//! Condition bookkeeping: one condition per type, `lastTransitionTime` kept unless `status` flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Condition, ConditionReason, ConditionStatus, ConditionType};

/// Sets a condition. Returns true when anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: ConditionStatus,
    reason: ConditionReason,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let before = c.clone();
            if c.status != status {
                c.last_transition_time = now.clone();
            }
            c.status = status;
            c.reason = reason;
            c.message = message;
            c.observed_generation = observed_generation;
            *c != before
        }
        None => {
            conditions.push(Condition {
                type_,
                status,
                observed_generation,
                last_transition_time: now.clone(),
                reason,
                message,
            });
            // A stable order keeps the status write byte-identical when nothing changed.
            conditions.sort_by_key(|c| c.type_);
            true
        }
    }
}

/// The condition of a type, if set.
pub fn get(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut cs = Vec::new();
        let (ty, r) = (
            ConditionType::TektonPipelineRunning,
            ConditionReason::PipelineStarted,
        );
        assert!(set(
            &mut cs,
            ty,
            ConditionStatus::Unknown,
            r,
            "waiting",
            Some(1),
            &t(10)
        ));
        assert!(set(
            &mut cs,
            ty,
            ConditionStatus::Unknown,
            r,
            "still waiting",
            Some(1),
            &t(20)
        ));
        assert_eq!(
            cs[0].last_transition_time,
            t(10),
            "same status keeps the time"
        );
        assert!(
            !set(
                &mut cs,
                ty,
                ConditionStatus::Unknown,
                r,
                "still waiting",
                Some(1),
                &t(30)
            ),
            "no change"
        );
        assert!(set(
            &mut cs,
            ty,
            ConditionStatus::True,
            r,
            "started",
            Some(1),
            &t(40)
        ));
        assert_eq!(cs[0].last_transition_time, t(40));
    }

    #[test]
    fn one_condition_per_type_in_a_stable_order() {
        let mut cs = Vec::new();
        let now = t(1);
        set(
            &mut cs,
            ConditionType::TektonPipelineComplete,
            ConditionStatus::True,
            ConditionReason::PipelineSucceeded,
            "",
            None,
            &now,
        );
        set(
            &mut cs,
            ConditionType::TektonPipelineCreated,
            ConditionStatus::True,
            ConditionReason::PipelineCreated,
            "",
            None,
            &now,
        );
        set(
            &mut cs,
            ConditionType::TektonPipelineCreated,
            ConditionStatus::True,
            ConditionReason::PipelineCreated,
            "x",
            None,
            &now,
        );
        let types: Vec<_> = cs.iter().map(|c| c.type_).collect();
        assert_eq!(
            types,
            [
                ConditionType::TektonPipelineCreated,
                ConditionType::TektonPipelineComplete
            ]
        );
        assert_eq!(
            get(&cs, ConditionType::TektonPipelineCreated)
                .unwrap()
                .message,
            "x"
        );
    }
}
