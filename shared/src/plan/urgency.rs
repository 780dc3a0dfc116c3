//! Which reconciles go first when more are due than may run at once.
//!
//! When creates outrun what the API server can take, reconciles queue. New work must not delay
//! work under way: a PipelineRun that finished should be reported at once, not after every
//! execution created since. So work under way goes first; new work waits behind it.

use crate::api::{Phase, WorkflowExecution};

/// The class a reconcile queues in. Ordered: the first runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// An execution already under way (Running), finished (its lock, its audit events, a block
    /// clearance) or being deleted.
    UnderWay,
    /// A Pending execution that is not being deleted: new work.
    New,
}

impl Urgency {
    pub const ALL: [Urgency; 2] = [Urgency::UnderWay, Urgency::New];

    /// The class of a reconcile of `wfe` (as the cache holds it when the reconcile is due).
    pub fn of(wfe: &WorkflowExecution) -> Urgency {
        let phase = wfe.status.as_ref().map(|s| s.phase).unwrap_or_default();
        if phase == Phase::Pending && wfe.metadata.deletion_timestamp.is_none() {
            Urgency::New
        } else {
            Urgency::UnderWay
        }
    }

    /// Position in [`Urgency::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::UnderWay => "under_way",
            Urgency::New => "new",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::execution;
    use serde_json::json;

    #[test]
    fn only_a_pending_execution_not_being_deleted_is_new_work() {
        let cases = [
            (None, false, Urgency::New),
            (Some("Pending"), false, Urgency::New),
            (Some("Pending"), true, Urgency::UnderWay),
            (Some("Running"), false, Urgency::UnderWay),
            (Some("Completed"), false, Urgency::UnderWay),
            (Some("Failed"), false, Urgency::UnderWay),
            (Some("Skipped"), false, Urgency::UnderWay),
            (None, true, Urgency::UnderWay),
        ];
        for (phase, deleted, want) in cases {
            let mut b = execution("w");
            if let Some(p) = phase {
                b = b.status(json!({ "phase": p }));
            }
            if deleted {
                b = b.set("metadata.deletionTimestamp", "2026-12-04T00:00:00Z");
            }
            assert_eq!(
                Urgency::of(&b.build()),
                want,
                "{phase:?}, deleted {deleted}"
            );
        }
    }

    #[test]
    fn work_under_way_is_first_and_indexes_follow_the_order() {
        assert!(Urgency::UnderWay < Urgency::New);
        for (i, u) in Urgency::ALL.into_iter().enumerate() {
            assert_eq!(u.index(), i);
        }
    }
}
