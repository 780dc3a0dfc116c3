//! AdmissionReview decoding, validation, defaulting and patch generation, as the webhook runs them
//! (`wfe_webhook::admission::admit`, the pure core of `/mutate` and `/validate`).

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use wfe_shared::WorkflowExecution;
use wfe_shared::admission::defaulting::{Defaults, apply_defaults};
use wfe_shared::admission::validation::validate;
use wfe_webhook::admission::{Answer, Endpoint, Verdict, admit};

/// A fixed clock: the answer must depend on nothing else than the request.
fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The invariants, for one request body:
/// - both endpoints answer 200 with a response for the request's uid (a malformed one denied), or
///   400 when no uid can be read — never anything else, never a panic;
/// - `/mutate`'s patch applies to the request's object, and `/mutate` on the result patches nothing;
/// - defaulting never overwrites what the caller wrote (only adds, or fills a `null`);
/// - a defaulted object decodes iff the original does (given the `metadata` the API server always
///   sends), and validation rejects it for exactly the same reasons (defaulting neither hides nor
///   introduces an error).
pub fn check(data: &[u8]) {
    let defaults = Defaults::default();
    let mutate = admit(Endpoint::Mutate, data, &defaults, now());
    let validated = admit(Endpoint::Validate, data, &defaults, now());
    let body: Option<Value> = serde_json::from_slice(data).ok();
    for answer in [&mutate, &validated] {
        answered_well(body.as_ref(), answer);
    }
    let Some(body) = body else {
        return;
    };
    let Some(object) = body.pointer("/request/object").filter(|o| o.is_object()) else {
        return;
    };
    defaulting_keeps_what_was_written(object, &defaults);
    if mutate.verdict != Verdict::Patched {
        return;
    }
    let mutated = patched(object, &mutate);
    let mut again = body.clone();
    if let Some(slot) = again.pointer_mut("/request/object") {
        *slot = mutated.clone();
    }
    let again_bytes = match serde_json::to_vec(&again) {
        Ok(b) => b,
        Err(e) => panic!("a patched object does not serialize: {e}"),
    };
    let second = admit(Endpoint::Mutate, &again_bytes, &defaults, now());
    assert_eq!(
        second.verdict,
        Verdict::Allowed,
        "mutating the mutated object patched again: {:?}\nfirst patch result: {mutated}",
        second
            .review
            .response
            .as_ref()
            .map(|r| patch_text(r.patch.as_deref()))
    );
}

/// 200 with a response for the request's uid, or 400 for a body that is not an AdmissionReview;
/// and the answer serializes.
fn answered_well(body: Option<&Value>, answer: &Answer) {
    match answer.http_status {
        200 => {
            let response = answer
                .review
                .response
                .as_ref()
                .unwrap_or_else(|| panic!("a 200 answer without a response: {answer:?}"));
            let uid = body
                .and_then(|b| b.pointer("/request/uid"))
                .and_then(Value::as_str);
            assert_eq!(
                Some(response.uid.as_str()),
                uid,
                "the response's uid is not the request's"
            );
            // A review whose uid is readable but whose content is not is denied, not failed.
            if answer.verdict == Verdict::Malformed {
                assert!(!response.allowed, "a malformed review allowed");
            }
        }
        400 => {
            assert_eq!(answer.verdict, Verdict::Malformed, "a 400 not malformed");
            let uid = body
                .and_then(|b| b.pointer("/request/uid"))
                .and_then(Value::as_str);
            assert_eq!(uid, None, "a 400 for a review whose uid could be echoed");
        }
        other => panic!("answered HTTP {other}: {answer:?}"),
    }
    if let Err(e) = serde_json::to_vec(&answer.review) {
        panic!("the answer does not serialize: {e}");
    }
}

/// `object` with the `/mutate` answer's patch applied; panics if it does not apply.
fn patched(object: &Value, answer: &Answer) -> Value {
    let bytes = answer
        .review
        .response
        .as_ref()
        .and_then(|r| r.patch.clone())
        .unwrap_or_else(|| panic!("a patched answer without a patch: {answer:?}"));
    let patch: json_patch::Patch = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => panic!(
            "the patch is not RFC 6902 JSON Patch ({e}): {}",
            patch_text(Some(&bytes))
        ),
    };
    let mut out = object.clone();
    if let Err(e) = json_patch::patch(&mut out, &patch) {
        panic!(
            "the patch does not apply to the request's object ({e}): {}",
            patch_text(Some(&bytes))
        );
    }
    out
}

fn patch_text(bytes: Option<&[u8]>) -> String {
    bytes
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .into_owned()
}

/// Defaulting only adds (or fills a `null`); the typed object's validation is unchanged by it.
fn defaulting_keeps_what_was_written(object: &Value, defaults: &Defaults) {
    let defaulted = apply_defaults(object, defaults);
    for op in &json_patch::diff(object, &defaulted).0 {
        match op {
            json_patch::PatchOperation::Add(_) => {}
            json_patch::PatchOperation::Replace(r) => {
                let old = object.pointer(r.path.as_str());
                assert!(
                    old.is_none_or(Value::is_null),
                    "defaulting replaced {} = {old:?} with {}",
                    r.path,
                    r.value
                );
            }
            other => panic!("defaulting did more than add: {other:?}"),
        }
    }
    let twice = apply_defaults(&defaulted, defaults);
    assert_eq!(
        twice, defaulted,
        "defaulting the defaulted object changed it"
    );

    // The API server always sends `metadata`; defaulting creates it when a request has none.
    let mut original = object.clone();
    if let Some(root) = original.as_object_mut()
        && root.get("metadata").is_none_or(Value::is_null)
    {
        root.insert("metadata".into(), Value::Object(Default::default()));
    }
    let original = WorkflowExecution::deserialize(&original);
    let after = WorkflowExecution::deserialize(&defaulted);
    match (original, after) {
        (Ok(original), Ok(after)) => {
            let (before, now) = (validate(&original), validate(&after));
            assert_eq!(
                before.errors, now.errors,
                "defaulting changed the validation errors"
            );
        }
        (Err(_), Err(_)) => {}
        (original, after) => panic!(
            "defaulting changed whether the object decodes: before {:?}, after {:?}",
            original.err(),
            after.err()
        ),
    }
}
