//! Clearing a failed execution's block at admission (SPEC 4): the mutating webhook stamps who
//! cleared it and when, from the admission request — whatever the user wrote there is replaced —
//! and the validating webhook checks that the clearance is allowed and explained.
//!
//! The stamp follows the reason: a new or changed reason is stamped with the requesting user and
//! the time; an unchanged reason keeps the stamp it had (so later updates, such as the
//! controller's finalizer removal, neither re-stamp nor lose it); no reason, no stamp.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use super::report::{ErrorType, Report};
use crate::api::limits::{MAX_CLEAR_REASON_LEN, MIN_CLEAR_REASON_WORDS};
use crate::api::names::{
    CLEAR_EXECUTION_BLOCK, CLEAR_EXECUTION_BLOCK_AT, CLEAR_EXECUTION_BLOCK_BY,
};

/// The `matchConditions` expression of the mutating webhook: every CREATE (defaults), and only
/// those UPDATEs whose object carries a clearance annotation (the stamp) — the API server skips
/// the call for every other update, the controller's own among them.
pub const MUTATE_MATCH_CONDITION: &str = "request.operation == 'CREATE' || (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('kubernaut.ai/clear-execution-block')))";

/// The `matchConditions` expression of the validating webhook: every CREATE, and only those
/// UPDATEs that change the spec (immutable: denied) or involve a block clearance, before or after
/// — metadata-only updates such as the controller's finalizer changes skip the call.
pub const VALIDATE_MATCH_CONDITION: &str = "request.operation == 'CREATE' || object.spec != oldObject.spec || (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('kubernaut.ai/clear-execution-block'))) || (has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, k.startsWith('kubernaut.ai/clear-execution-block')))";

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// `new` as the mutating webhook leaves it: the clearance stamp set, kept or removed.
pub fn stamp(old: Option<&Value>, new: &Value, user: &str, now: Timestamp) -> Value {
    let reason = annotation(new, CLEAR_EXECUTION_BLOCK);
    let old_reason = old.and_then(|o| annotation(o, CLEAR_EXECUTION_BLOCK));
    let stamped = |key| old.and_then(|o| annotation(o, key)).map(str::to_owned);
    let (by, at) = match reason {
        None => (None, None),
        Some(r) if old_reason == Some(r) => (
            stamped(CLEAR_EXECUTION_BLOCK_BY),
            stamped(CLEAR_EXECUTION_BLOCK_AT),
        ),
        // Whole seconds, as the status's times (metav1.Time) keep them.
        Some(_) => (
            Some(user.to_owned()),
            Some(
                Timestamp::from_second(now.as_second())
                    .unwrap_or(now)
                    .to_string(),
            ),
        ),
    };
    let mut object = new.clone();
    let has_stamp = [CLEAR_EXECUTION_BLOCK_BY, CLEAR_EXECUTION_BLOCK_AT]
        .iter()
        .any(|k| annotation(new, k).is_some());
    if by.is_none() && at.is_none() && !has_stamp {
        return object;
    }
    let Some(annotations) = annotations_mut(&mut object) else {
        return object;
    };
    for (key, value) in [
        (CLEAR_EXECUTION_BLOCK_BY, by),
        (CLEAR_EXECUTION_BLOCK_AT, at),
    ] {
        match value {
            Some(v) => annotations.insert(key.to_owned(), Value::String(v)),
            None => annotations.remove(key),
        };
    }
    object
}

/// The RFC 6902 patch from `new` to [`stamp`]`(old, new, …)`; empty when the stamp is right.
pub fn stamp_patch(
    old: Option<&Value>,
    new: &Value,
    user: &str,
    now: Timestamp,
) -> json_patch::Patch {
    json_patch::diff(new, &stamp(old, new, user, now))
}

/// `metadata.annotations` as a map, created when absent; `None` when something else is there
/// (the API server rejects that).
fn annotations_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let metadata = object
        .as_object_mut()?
        .get_mut("metadata")?
        .as_object_mut()?;
    let entry = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// The rules of a clearance set or changed by this request (`old` is `None` on CREATE): only a
/// Failed execution has a block, a recorded clearance is final, and the reason explains itself in
/// at least ten words.
pub fn validate_clearance(old: Option<&Value>, new: &Value) -> Report {
    let mut r = Report::default();
    let Some(reason) = annotation(new, CLEAR_EXECUTION_BLOCK) else {
        return r;
    };
    if old.and_then(|o| annotation(o, CLEAR_EXECUTION_BLOCK)) == Some(reason) {
        return r;
    }
    let field = format!("metadata.annotations[{CLEAR_EXECUTION_BLOCK}]");
    let phase = old
        .and_then(|o| o.pointer("/status/phase"))
        .and_then(Value::as_str);
    let recorded = old.and_then(|o| o.pointer("/status/blockClearance"));
    if phase != Some("Failed") {
        let what = match (old, phase) {
            (None, _) => "a new execution has none".to_owned(),
            (Some(_), Some(p)) => format!("this one is {p}"),
            (Some(_), None) => "this one has not run yet".to_owned(),
        };
        r.push(
            field.clone(),
            ErrorType::Forbidden,
            None,
            format!("only a Failed WorkflowExecution has a block to clear; {what}"),
        );
    } else if let Some(recorded) = recorded {
        let get = |k: &str| recorded.get(k).and_then(Value::as_str).unwrap_or("?");
        r.push(
            field.clone(),
            ErrorType::Forbidden,
            None,
            format!(
                "the block was already cleared by {} at {}; a recorded clearance cannot be changed",
                get("clearedBy"),
                get("clearedAt")
            ),
        );
    }
    let words = reason.split_whitespace().count();
    if reason.len() > MAX_CLEAR_REASON_LEN {
        r.too_long(field, MAX_CLEAR_REASON_LEN);
    } else if words < MIN_CLEAR_REASON_WORDS {
        r.invalid(
            field,
            reason,
            format!(
                "must explain why the target is safe again in at least {MIN_CLEAR_REASON_WORDS} words ({words} given)"
            ),
        );
    }
    r
}
