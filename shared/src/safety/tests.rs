//! The safety rules, rule by rule and boundary by boundary, and their precedence.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::api::names::{
    CLEAR_EXECUTION_BLOCK, CLEAR_EXECUTION_BLOCK_AT, CLEAR_EXECUTION_BLOCK_BY, pipeline_run_name,
};
use crate::api::{ClearMethod, Phase, SkipReason, WorkflowExecution};
use crate::fixtures::execution;
use crate::tekton::observed::ObservedRun;

const NOW: i64 = 1_800_000_000;
const TARGET: &str = "payments/deployment/payment-api";

fn at(offset: i64) -> Timestamp {
    Timestamp::from_second(NOW + offset).unwrap()
}

fn t(offset: i64) -> String {
    at(offset).to_string()
}

fn rules() -> Rules {
    Rules::default()
}

/// The execution deciding: Pending, workflow `restart-deployment`.
fn me() -> WorkflowExecution {
    execution("new").target(TARGET).build()
}

/// Another execution on the target, in `phase`, finished `done` seconds from NOW.
fn other(name: &str, workflow: &str, status: Value) -> WorkflowExecution {
    execution(name)
        .target(TARGET)
        .workflow(workflow, "1.0.0")
        .status(status)
        .build()
}

fn completed(name: &str, workflow: &str, done: i64) -> WorkflowExecution {
    other(
        name,
        workflow,
        json!({"phase": "Completed", "startTime": t(done - 10), "completionTime": t(done),
               "consecutiveFailures": 0}),
    )
}

/// Failed before execution, the `n`-th in a row, backing off until `until`.
fn failed_before(name: &str, done: i64, n: i32, until: i64) -> WorkflowExecution {
    other(
        name,
        "restart-deployment",
        json!({"phase": "Failed", "startTime": t(done - 5), "completionTime": t(done),
               "consecutiveFailures": n, "nextAllowedExecution": t(until),
               "failureDetails": failure("ImagePullBackOff", false, done)}),
    )
}

fn failed_during(name: &str, done: i64) -> WorkflowExecution {
    other(
        name,
        "restart-deployment",
        json!({"phase": "Failed", "startTime": t(done - 60), "completionTime": t(done),
               "consecutiveFailures": 0,
               "failureDetails": failure("OOMKilled", true, done)}),
    )
}

fn failure(reason: &str, during: bool, done: i64) -> Value {
    json!({"failedTaskIndex": 0, "reason": reason, "message": "m", "failedAt": t(done),
           "executionTimeBeforeFailure": "5s", "naturalLanguageSummary": "s",
           "wasExecutionFailure": during})
}

fn cleared(mut w: WorkflowExecution) -> WorkflowExecution {
    let s = w.status.as_mut().unwrap();
    s.block_clearance = Some(Box::new(crate::api::BlockClearance {
        cleared_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(-1)),
        cleared_by: "alice".into(),
        clear_reason: "checked".into(),
        clear_method: ClearMethod::Annotation,
    }));
    w
}

fn running(name: &str, started: i64) -> WorkflowExecution {
    other(
        name,
        "scale-up",
        json!({"phase": "Running", "startTime": t(started)}),
    )
}

fn decide_now(others: &[WorkflowExecution]) -> Decision {
    decide_with(others, rules())
}

fn decide_with(others: &[WorkflowExecution], rules: Rules) -> Decision {
    let w = me();
    decide(&w, &History::of(&w, others), at(0), &rules)
}

fn skip(d: &Decision) -> &crate::api::SkipDetails {
    match &d.verdict {
        Verdict::Skip(s) => s,
        Verdict::Proceed => panic!("expected a skip"),
    }
}

fn reason(others: &[WorkflowExecution]) -> Option<SkipReason> {
    match decide_now(others).verdict {
        Verdict::Skip(s) => Some(s.reason),
        Verdict::Proceed => None,
    }
}

#[test]
fn a_target_without_history_proceeds_with_nothing_carried() {
    let d = decide_now(&[]);
    assert_eq!(d.verdict, Verdict::Proceed);
    assert_eq!(d.carried, Carried::default());
}

#[test]
fn another_running_execution_makes_it_busy_naming_that_execution() {
    let d = decide_now(&[running("busy-one", -30)]);
    let s = skip(&d);
    assert_eq!(s.reason, SkipReason::ResourceBusy);
    assert_eq!(s.skipped_at.0, at(0));
    let c = s.conflicting_workflow.as_ref().unwrap();
    assert_eq!(
        (
            c.name.as_str(),
            c.namespace.as_deref(),
            c.workflow_id.as_str(),
            c.target_resource.as_str()
        ),
        ("busy-one", Some("team-a"), "scale-up", TARGET)
    );
    assert_eq!(c.started_at.as_ref().map(|t| t.0), Some(at(-30)));
    assert_eq!(
        s.message,
        format!(
            "target {TARGET} is busy: WorkflowExecution team-a/busy-one (workflow scale-up) has been running on it since {}; create a new WorkflowExecution once it has finished",
            at(-30)
        )
    );
    assert!(s.recent_remediation.is_none());
}

#[test]
fn itself_and_other_targets_are_not_history() {
    let w = me();
    let mut itself = running("new", -5);
    itself.spec.target_resource = TARGET.into();
    let elsewhere = execution("x")
        .target("payments/deployment/other")
        .status(json!({"phase": "Running", "startTime": t(-5)}))
        .build();
    let d = decide(&w, &History::of(&w, [&itself, &elsewhere]), at(0), &rules());
    assert_eq!(d.verdict, Verdict::Proceed);
}

#[test]
fn an_execution_failure_blocks_until_cleared_even_long_after_the_cooldown() {
    // A day later: no cooldown or backoff applies, the block still does.
    let f = failed_during("broke-it", -86_400);
    let d = decide_now(std::slice::from_ref(&f));
    let s = skip(&d);
    assert_eq!(s.reason, SkipReason::PreviousExecutionFailed);
    let r = s.recent_remediation.as_ref().unwrap();
    assert_eq!(
        (r.name.as_str(), r.outcome, r.cooldown_remaining.as_deref()),
        ("broke-it", Phase::Failed, None)
    );
    assert_eq!(r.completed_at.as_ref().map(|t| t.0), Some(at(-86_400)));
    assert!(
        s.message.contains("failed during execution")
            && s.message.contains("(OOMKilled)")
            && s.message.contains(&format!(
                "kubectl annotate wfe -n team-a broke-it {CLEAR_EXECUTION_BLOCK}="
            )),
        "{}",
        s.message
    );
    assert_eq!(
        reason(&[cleared(f)]),
        None,
        "a cleared block no longer blocks"
    );
}

#[test]
fn only_a_later_success_or_a_clearance_lifts_the_block() {
    let f = failed_during("broke-it", -100);
    // An execution that failed validation later does not hide it.
    let invalid = other(
        "invalid",
        "restart-deployment",
        json!({"phase": "Failed", "completionTime": t(-50),
               "failureDetails": failure("ConfigurationError", false, -50)}),
    );
    assert_eq!(
        reason(&[f.clone(), invalid]),
        Some(SkipReason::PreviousExecutionFailed)
    );
    // A success after it (possible once it was cleared and cleared again) does.
    assert_eq!(reason(&[f.clone(), completed("ok", "other-wf", -50)]), None);
    // A success before it does not.
    assert_eq!(
        reason(&[completed("ok", "other-wf", -150), f.clone()]),
        Some(SkipReason::PreviousExecutionFailed)
    );
    // In the same second it is not known to be older: it blocks.
    assert_eq!(
        reason(&[completed("ok", "other-wf", -100), f]),
        Some(SkipReason::PreviousExecutionFailed)
    );
}

#[test]
fn the_count_of_failures_reaching_the_maximum_exhausts_retries() {
    // The 5th failure's backoff is over: only the threshold stops it.
    let d = decide_now(&[failed_before("fifth", -1000, 5, -400)]);
    let s = skip(&d);
    assert_eq!(s.reason, SkipReason::ExhaustedRetries);
    assert_eq!(d.carried.consecutive_failures, 5);
    assert!(
        s.message.starts_with(&format!(
            "target {TARGET} has had 5 consecutive failures before execution (maximum 5); the last was WorkflowExecution team-a/fifth"
        )) && s.message.contains("kubectl annotate wfe -n team-a fifth"),
        "{}",
        s.message
    );
    assert_eq!(s.recent_remediation.as_ref().unwrap().name, "fifth");
    // One below the threshold runs.
    assert_eq!(reason(&[failed_before("fourth", -1000, 4, -520)]), None);
    // A lower threshold is honoured.
    let strict = Rules {
        max_consecutive_failures: 1,
        ..rules()
    };
    let d = decide_with(&[failed_before("first", -1000, 1, -940)], strict);
    assert_eq!(skip(&d).reason, SkipReason::ExhaustedRetries);
    assert!(
        skip(&d)
            .message
            .starts_with(&format!("target {TARGET} has had 1 consecutive failure before execution (maximum 1); the last was")),
        "{}",
        skip(&d).message
    );
    // Cleared: the count starts again.
    let d = decide_now(&[cleared(failed_before("fifth", -1000, 5, -400))]);
    assert_eq!(d.verdict, Verdict::Proceed);
    assert_eq!(d.carried, Carried::default());
}

#[test]
fn the_backoff_window_skips_until_it_closes_exactly() {
    let d = decide_now(&[failed_before("second", -30, 2, 90)]);
    let s = skip(&d);
    assert_eq!(s.reason, SkipReason::RecentlyRemediated);
    let r = s.recent_remediation.as_ref().unwrap();
    assert_eq!(
        (r.name.as_str(), r.cooldown_remaining.as_deref()),
        ("second", Some("1m30s"))
    );
    assert_eq!(
        s.message,
        format!(
            "target {TARGET} is backing off after 2 consecutive failures before execution (the last: WorkflowExecution team-a/second (workflow restart-deployment), ImagePullBackOff): a new execution is allowed at {} (in 1m30s)",
            at(90)
        )
    );
    assert_eq!(
        d.carried.next_allowed_execution.as_ref().map(|t| t.0),
        Some(at(90))
    );
    let d = decide_now(&[failed_before("first", -30, 1, 30)]);
    assert!(
        skip(&d).message.starts_with(&format!(
            "target {TARGET} is backing off after 1 consecutive failure before execution (the last:"
        )),
        "{}",
        skip(&d).message
    );
    // The window closing exactly now lets it through.
    assert_eq!(reason(&[failed_before("second", -120, 2, 0)]), None);
    assert_eq!(
        reason(&[failed_before("second", -120, 2, 1)]),
        Some(SkipReason::RecentlyRemediated)
    );
}

#[test]
fn the_remaining_time_rounds_up_to_whole_seconds() {
    let w = me();
    let history = [failed_before("second", -30, 2, 90)];
    let just_after = at(0).checked_add(Duration::from_millis(1)).unwrap();
    let d = decide(&w, &History::of(&w, &history), just_after, &rules());
    let r = skip(&d).recent_remediation.as_ref().unwrap();
    assert_eq!(r.cooldown_remaining.as_deref(), Some("1m30s"));
}

#[test]
fn the_same_workflow_waits_out_the_cooldown_and_a_different_one_runs_now() {
    let d = decide_now(&[completed("done", "restart-deployment", -100)]);
    let s = skip(&d);
    assert_eq!(s.reason, SkipReason::RecentlyRemediated);
    let r = s.recent_remediation.as_ref().unwrap();
    assert_eq!(
        (
            r.name.as_str(),
            r.outcome,
            r.workflow_id.as_str(),
            r.cooldown_remaining.as_deref()
        ),
        (
            "done",
            Phase::Completed,
            "restart-deployment",
            Some("3m20s")
        )
    );
    assert!(
        s.message.starts_with(&format!(
            "workflow restart-deployment completed on target {TARGET} at {}",
            at(-100)
        )) && s.message.contains("a different workflow may run now"),
        "{}",
        s.message
    );
    // Cooldown exactly elapsed.
    assert_eq!(
        reason(&[completed("done", "restart-deployment", -300)]),
        None
    );
    assert_eq!(
        reason(&[completed("done", "restart-deployment", -299)]),
        Some(SkipReason::RecentlyRemediated)
    );
    // A different workflow.
    assert_eq!(reason(&[completed("done", "scale-up", -10)]), None);
    // The cooldown is configurable, and zero means none.
    let none = Rules {
        cooldown: Duration::ZERO,
        ..rules()
    };
    let d = decide_with(&[completed("done", "restart-deployment", 0)], none);
    assert_eq!(d.verdict, Verdict::Proceed);
}

#[test]
fn rules_apply_in_the_specified_order() {
    let f = failed_during("broke-it", -100);
    // 2 before 3.
    assert_eq!(
        reason(&[f.clone(), running("busy", -5)]),
        Some(SkipReason::ResourceBusy)
    );
    // 3 before 4 and 5: an exhausted count, in backoff, behind an unclear execution failure.
    let exhausted = failed_before("fifth", -10, 5, 600);
    assert_eq!(
        reason(&[exhausted.clone(), f]),
        Some(SkipReason::PreviousExecutionFailed)
    );
    // 4 before 5.
    assert_eq!(
        reason(std::slice::from_ref(&exhausted)),
        Some(SkipReason::ExhaustedRetries)
    );
    // 5 before 6: both say RecentlyRemediated, the backoff's message wins.
    let d = decide_now(&[
        completed("done", "restart-deployment", -200),
        failed_before("first", -10, 1, 50),
    ]);
    assert!(
        skip(&d).message.contains("backing off"),
        "{}",
        skip(&d).message
    );
}

#[test]
fn the_count_is_carried_from_the_most_recent_finished_execution() {
    let history = [
        failed_before("first", -500, 1, -440),
        failed_before("second", -300, 2, -180),
        // Skipped executions did nothing to the target.
        other(
            "skipped",
            "restart-deployment",
            json!({"phase": "Skipped", "completionTime": t(-100), "consecutiveFailures": 9}),
        ),
        // One that failed validation keeps no bookkeeping.
        other(
            "invalid",
            "restart-deployment",
            json!({"phase": "Failed", "completionTime": t(-50),
                   "failureDetails": failure("ConfigurationError", false, -50)}),
        ),
    ];
    let d = decide_now(&history);
    assert_eq!(d.verdict, Verdict::Proceed);
    assert_eq!(d.carried.consecutive_failures, 2);
    assert_eq!(
        d.carried.next_allowed_execution.as_ref().map(|t| t.0),
        Some(at(-180))
    );
    // A success resets it.
    let mut after_success = history.to_vec();
    after_success.push(completed("ok", "scale-up", -20));
    assert_eq!(decide_now(&after_success).carried, Carried::default());
}

#[test]
fn ties_in_completion_are_broken_by_start_creation_and_name() {
    let a = failed_before("a", -100, 1, -40);
    let mut b = failed_before("b", -100, 2, 20);
    b.status.as_mut().unwrap().start_time = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(-101)),
    );
    // The same completion: b started later (-101 against -105), so it is the newer.
    let d = decide_now(&[a.clone(), b.clone()]);
    assert_eq!(d.carried.consecutive_failures, 2);
    // The same start: the name decides.
    let mut b2 = failed_before("b", -100, 2, 20);
    b2.status.as_mut().unwrap().start_time = a.status.as_ref().unwrap().start_time.clone();
    assert_eq!(decide_now(&[b2, a]).carried.consecutive_failures, 2);
}

fn run_of(owner: &str, deleting: bool) -> ObservedRun {
    let mut metadata = json!({
        "name": pipeline_run_name(TARGET), "namespace": "exec", "uid": "u-1",
        "labels": {"kubernaut.ai/workflow-execution": owner,
                   "kubernaut.ai/source-namespace": "team-a"}});
    if deleting {
        metadata["deletionTimestamp"] = json!(t(0));
    }
    serde_json::from_value(json!({"metadata": metadata})).unwrap()
}

#[test]
fn only_a_finished_holders_live_lock_may_be_released() {
    let w = me();
    let history = [
        completed("done", "scale-up", -10),
        failed_before("failed", -20, 1, -10),
        running("busy", -5),
    ];
    let h = History::of(&w, &history);
    let name = |x: Option<&WorkflowExecution>| x.and_then(|w| w.metadata.name.clone());
    assert_eq!(
        name(releasable(&run_of("done", false), &h)).as_deref(),
        Some("done")
    );
    assert_eq!(
        name(releasable(&run_of("failed", false), &h)).as_deref(),
        Some("failed")
    );
    assert_eq!(releasable(&run_of("busy", false), &h), None, "running");
    assert_eq!(releasable(&run_of("done", true), &h), None, "already going");
    assert_eq!(releasable(&run_of("stranger", false), &h), None, "unknown");
    let unowned: ObservedRun =
        serde_json::from_value(json!({"metadata": {"name": "wfe-x", "namespace": "exec"}}))
            .unwrap();
    assert_eq!(releasable(&unowned, &h), None);
}

#[test]
fn a_lock_named_by_the_api_server_alone_skips_naming_its_owner() {
    let w = me();
    let owner = crate::tekton::ownership::Owner::named("team-b", "holder");
    let s = locked_by(&w, &owner, "wfe-0123", at(0));
    assert_eq!(s.reason, SkipReason::ResourceBusy);
    assert_eq!(
        s.message,
        format!(
            "target {TARGET} is locked by WorkflowExecution team-b/holder (PipelineRun wfe-0123)"
        )
    );
    let c = s.conflicting_workflow.unwrap();
    assert_eq!(
        (
            c.name.as_str(),
            c.namespace.as_deref(),
            c.workflow_id.as_str()
        ),
        ("holder", Some("team-b"), "")
    );
}

fn annotated(pairs: &[(&str, &str)]) -> WorkflowExecution {
    let annotations: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    execution("f")
        .set("metadata.annotations", Value::Object(annotations))
        .build()
}

#[test]
fn a_clearance_counts_only_with_the_webhooks_stamp() {
    assert_eq!(clearance(&me()), Clearance::Absent);
    let reason = "the node was replaced and the deployment checked by hand, all good now";
    let full = annotated(&[
        (CLEAR_EXECUTION_BLOCK, reason),
        (CLEAR_EXECUTION_BLOCK_BY, "alice@example.com"),
        (CLEAR_EXECUTION_BLOCK_AT, &t(-5)),
    ]);
    let Clearance::Stamped(c) = clearance(&full) else {
        panic!("stamped")
    };
    assert_eq!(
        (
            c.cleared_by.as_str(),
            c.clear_reason.as_str(),
            c.cleared_at.0,
            c.clear_method
        ),
        ("alice@example.com", reason, at(-5), ClearMethod::Annotation)
    );
    for partial in [
        annotated(&[(CLEAR_EXECUTION_BLOCK, reason)]),
        annotated(&[
            (CLEAR_EXECUTION_BLOCK, reason),
            (CLEAR_EXECUTION_BLOCK_BY, "alice"),
        ]),
        annotated(&[
            (CLEAR_EXECUTION_BLOCK, reason),
            (CLEAR_EXECUTION_BLOCK_BY, ""),
            (CLEAR_EXECUTION_BLOCK_AT, &t(-5)),
        ]),
        annotated(&[
            (CLEAR_EXECUTION_BLOCK, reason),
            (CLEAR_EXECUTION_BLOCK_BY, "alice"),
            (CLEAR_EXECUTION_BLOCK_AT, "yesterday"),
        ]),
    ] {
        assert!(
            matches!(clearance(&partial), Clearance::Unattributed(ref why) if why.contains("must admit UPDATEs")),
            "{:?}",
            partial.metadata.annotations
        );
    }
}
