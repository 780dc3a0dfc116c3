//! What the plan's tests share: the clock and tunables of a reconcile, and walking a plan to its end.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::*;

/// The tests' "now", in seconds since the epoch.
pub(super) const NOW: i64 = 1_800_000_000;

pub(super) static RULES: Rules = Rules {
    cooldown: Duration::from_secs(300),
    backoff_base: Duration::from_secs(60),
    backoff_max: Duration::from_secs(600),
    backoff_max_exponent: 4,
    max_consecutive_failures: 5,
};

/// A reconcile `at` seconds after [`NOW`]: cooldown 5m, grace 60s, start timeout 120s.
pub(super) fn ctx(at: i64) -> Context<'static> {
    Context {
        now: Timestamp::from_second(NOW + at).unwrap(),
        execution_namespace: "exec",
        rules: &RULES,
        deadline_grace: Duration::from_secs(60),
        start_timeout: Duration::from_secs(120),
        audit_deletion_grace: Duration::from_secs(600),
    }
}

/// [`NOW`] + `at` as an RFC 3339 string.
pub(super) fn t(at: i64) -> String {
    Timestamp::from_second(NOW + at).unwrap().to_string()
}

pub(super) fn finish(step: Step) -> Plan {
    match step {
        Step::Finish(plan) => plan,
        other => panic!("expected a finished plan, got {other:?}"),
    }
}

/// The finished plan, the audit events it asks for delivered.
pub(super) fn settled(w: &WorkflowExecution, seen: &Seen<'_>, ctx: &Context<'_>) -> Plan {
    let mut done = seen.done.to_vec();
    loop {
        let step = plan(
            w,
            &Seen {
                done: &done,
                ..*seen
            },
            ctx,
        );
        match step {
            Step::Act(Effect::Deliver(events)) => done.push(Done::Delivered(
                events.iter().map(|e| e.event_type).collect(),
            )),
            other => return finish(other),
        }
    }
}
