//! Clearing a block at admission: the stamp cannot be forged, and only an explained clearance of a
//! Failed execution is admitted.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use wfe_shared::admission::clearance::{
    MUTATE_MATCH_CONDITION, stamp, stamp_patch, validate_clearance,
};
use wfe_shared::api::names::{
    CLEAR_EXECUTION_BLOCK as REASON, CLEAR_EXECUTION_BLOCK_AT as AT, CLEAR_EXECUTION_BLOCK_BY as BY,
};
use wfe_shared::fixtures::execution;

const GOOD: &str = "checked the deployment by hand after the OOM and raised its memory limit";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn object(phase: Option<&str>, annotations: Value) -> Value {
    let mut b = execution("w").set("metadata.annotations", annotations);
    if let Some(p) = phase {
        b = b.status(json!({"phase": p}));
    }
    b.json()
}

fn annotations(v: &Value) -> Value {
    v["metadata"]["annotations"].clone()
}

#[test]
fn a_new_reason_is_stamped_with_the_requesting_user_whatever_was_written() {
    let old = object(Some("Failed"), json!({}));
    let forged = object(
        Some("Failed"),
        json!({REASON: GOOD, BY: "someone-else", AT: "2020-01-01T00:00:00Z"}),
    );
    let stamped = stamp(Some(&old), &forged, "alice@example.com", now());
    assert_eq!(
        annotations(&stamped),
        json!({REASON: GOOD, BY: "alice@example.com", AT: now().to_string()})
    );
    // A changed reason is stamped again.
    let changed = object(Some("Failed"), json!({REASON: format!("{GOOD} again")}));
    let stamped = stamp(Some(&forged), &changed, "bob", now());
    assert_eq!(annotations(&stamped)[BY], "bob");
}

#[test]
fn an_unchanged_reason_keeps_the_stamp_it_had() {
    let old = object(
        Some("Failed"),
        json!({REASON: GOOD, BY: "alice", AT: "2027-01-01T00:00:00Z"}),
    );
    // The controller's finalizer update: same annotations, another user.
    assert_eq!(
        stamp(
            Some(&old),
            &old,
            "system:serviceaccount:x:controller",
            now()
        ),
        old
    );
    assert!(stamp_patch(Some(&old), &old, "anyone", now()).0.is_empty());
    // Editing the stamp alone is undone.
    let edited = object(
        Some("Failed"),
        json!({REASON: GOOD, BY: "mallory", AT: "2030-01-01T00:00:00Z"}),
    );
    assert_eq!(
        annotations(&stamp(Some(&old), &edited, "mallory", now())),
        annotations(&old)
    );
    // Removing it is undone too.
    let removed = object(Some("Failed"), json!({REASON: GOOD}));
    assert_eq!(
        annotations(&stamp(Some(&old), &removed, "mallory", now())),
        annotations(&old)
    );
}

#[test]
fn no_reason_means_no_stamp() {
    let old = object(Some("Failed"), json!({REASON: GOOD, BY: "alice", AT: "x"}));
    let gone = object(
        Some("Failed"),
        json!({BY: "alice", AT: "x", "other": "kept"}),
    );
    assert_eq!(
        annotations(&stamp(Some(&old), &gone, "bob", now())),
        json!({"other": "kept"})
    );
    // Nothing to do: the object is returned as it came, with no annotations added.
    let plain = execution("w").json();
    assert_eq!(stamp(None, &plain, "bob", now()), plain);
    let patch = stamp_patch(Some(&old), &gone, "bob", now());
    assert_eq!(patch.0.len(), 2, "two removals: {patch:?}");
}

#[test]
fn the_patch_escapes_the_annotation_keys() {
    let old = object(Some("Failed"), json!({}));
    let new = object(Some("Failed"), json!({REASON: GOOD}));
    let patch = serde_json::to_value(stamp_patch(Some(&old), &new, "alice", now())).unwrap();
    let paths: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/kubernaut.ai~1clear-execution-block-at",
            "/metadata/annotations/kubernaut.ai~1clear-execution-block-by"
        ]
    );
}

fn errors(old: Option<&Value>, new: &Value) -> Vec<String> {
    validate_clearance(old, new)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const FIELD: &str = "metadata.annotations[kubernaut.ai/clear-execution-block]";

#[test]
fn a_clearance_of_a_failed_execution_with_ten_words_is_admitted() {
    let old = object(Some("Failed"), json!({}));
    let new = object(Some("Failed"), json!({REASON: GOOD}));
    assert_eq!(errors(Some(&old), &new), Vec::<String>::new());
    let ten = "one two three four five six seven eight nine ten";
    let new = object(Some("Failed"), json!({REASON: ten}));
    assert_eq!(errors(Some(&old), &new), Vec::<String>::new());
    // The longest reason admitted: exactly the limit, in bytes.
    let longest = format!("{GOOD} {}", "x".repeat(4096 - GOOD.len() - 1));
    assert_eq!(longest.len(), 4096);
    let new = object(Some("Failed"), json!({REASON: longest}));
    assert_eq!(errors(Some(&old), &new), Vec::<String>::new());
}

#[test]
fn a_short_reason_is_rejected_naming_the_field_and_the_count() {
    let old = object(Some("Failed"), json!({}));
    let nine = "one two three four five six seven eight nine";
    let new = object(Some("Failed"), json!({REASON: nine}));
    assert_eq!(
        errors(Some(&old), &new),
        [format!(
            "{FIELD}: Invalid value: \"{nine}\": must explain why the target is safe again in at least 10 words (9 given)"
        )]
    );
    let new = object(Some("Failed"), json!({REASON: "   "}));
    assert!(errors(Some(&old), &new)[0].ends_with("(0 given)"));
    let long = format!("{GOOD} {}", "x".repeat(4096));
    let new = object(Some("Failed"), json!({REASON: long}));
    assert_eq!(
        errors(Some(&old), &new),
        [format!(
            "{FIELD}: Too long: may not be more than 4096 bytes"
        )]
    );
}

#[test]
fn only_a_failed_execution_without_a_recorded_clearance_can_be_cleared() {
    let new = |phase| object(phase, json!({REASON: GOOD}));
    assert_eq!(
        errors(None, &new(None)),
        [format!(
            "{FIELD}: Forbidden: only a Failed WorkflowExecution has a block to clear; a new execution has none"
        )]
    );
    for phase in ["Pending", "Running", "Completed", "Skipped"] {
        let old = object(Some(phase), json!({}));
        assert_eq!(
            errors(Some(&old), &new(Some(phase))),
            [format!(
                "{FIELD}: Forbidden: only a Failed WorkflowExecution has a block to clear; this one is {phase}"
            )]
        );
    }
    let no_status = execution("w").json();
    assert!(errors(Some(&no_status), &new(None))[0].ends_with("this one has not run yet"));
    let mut recorded = object(Some("Failed"), json!({}));
    recorded["status"]["blockClearance"] =
        json!({"clearedBy": "alice", "clearedAt": "2027-01-01T00:00:00Z"});
    assert_eq!(
        errors(Some(&recorded), &new(Some("Failed"))),
        [format!(
            "{FIELD}: Forbidden: the block was already cleared by alice at 2027-01-01T00:00:00Z; a recorded clearance cannot be changed"
        )]
    );
    // Every problem at once.
    let short = object(Some("Running"), json!({REASON: "too short"}));
    assert_eq!(
        errors(Some(&object(Some("Running"), json!({}))), &short).len(),
        2
    );
}

#[test]
fn an_unchanged_reason_is_not_validated_again() {
    // Kept through later updates (finalizer removal), even after the phase moved on.
    let old = object(Some("Failed"), json!({REASON: "short"}));
    assert!(errors(Some(&old), &old).is_empty());
    assert!(errors(Some(&old), &execution("w").json()).is_empty());
}

#[test]
fn the_mutating_webhook_is_called_for_creates_and_clearance_updates_only() {
    assert!(MUTATE_MATCH_CONDITION.contains(&format!("k.startsWith('{REASON}')")));
    assert!(BY.starts_with(REASON) && AT.starts_with(REASON));
    assert!(MUTATE_MATCH_CONDITION.starts_with("request.operation == 'CREATE' ||"));
}
