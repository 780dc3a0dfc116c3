//! Defaulting: what it fills, what it leaves alone, and (by property) that it is idempotent and that
//! its patch produces exactly the defaulted object.

use proptest::prelude::*;
use serde_json::{Value, json};
use wfe_shared::admission::defaulting::{Defaults, apply_defaults, default_patch};
use wfe_shared::fixtures::execution;

fn minimal() -> Value {
    execution("wfe-1")
        .remove("metadata.namespace")
        .workflow("restart deployment", "1")
        .image("q.io/a/b")
        .target("payments/deployment/api")
        .json()
}

fn apply(raw: &Value, patch: &json_patch::Patch) -> Value {
    let mut out = raw.clone();
    json_patch::patch(&mut out, patch).expect("patch applies");
    out
}

#[test]
fn fills_timeout_service_account_and_labels() {
    let out = apply_defaults(&minimal(), &Defaults::default());
    assert_eq!(
        out["spec"]["executionConfig"],
        json!({"timeout": "30m", "serviceAccountName": "kubernaut-workflow-runner"})
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({
            "kubernaut.ai/workflow-id": "restart-deployment",
            "kubernaut.ai/target-resource": "payments__deployment__api",
            "kubernaut.ai/remediation-request": "rr-1"
        })
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["workflowexecution.kubernaut.ai/workflowexecution-cleanup"])
    );
    // The patch creates parents before children and applies cleanly.
    let patch = default_patch(&minimal(), &Defaults::default());
    assert_eq!(apply(&minimal(), &patch), out);
}

#[test]
fn the_finalizer_is_appended_once_after_the_callers_own() {
    let mut raw = minimal();
    raw["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let out = apply_defaults(&raw, &Defaults::default());
    assert_eq!(
        out["metadata"]["finalizers"],
        json!([
            "example.com/keep",
            "workflowexecution.kubernaut.ai/workflowexecution-cleanup"
        ])
    );
    assert!(default_patch(&out, &Defaults::default()).0.is_empty());
    // Not a list: left for the API server to reject, never replaced.
    raw["metadata"]["finalizers"] = json!("nonsense");
    assert_eq!(
        apply_defaults(&raw, &Defaults::default())["metadata"]["finalizers"],
        json!("nonsense")
    );
}

#[test]
fn never_overrides_what_the_user_set() {
    let mut raw = minimal();
    raw["spec"]["executionConfig"] = json!({"timeout": "5m"});
    raw["metadata"]["labels"] = json!({"kubernaut.ai/workflow-id": "mine", "team": "a"});
    let out = apply_defaults(
        &raw,
        &Defaults {
            timeout: "1h".into(),
            service_account_name: "sa".into(),
        },
    );
    assert_eq!(
        out["spec"]["executionConfig"],
        json!({"timeout": "5m", "serviceAccountName": "sa"})
    );
    assert_eq!(
        out["metadata"]["labels"]["kubernaut.ai/workflow-id"],
        "mine"
    );
    assert_eq!(out["metadata"]["labels"]["team"], "a");
}

#[test]
fn leaves_malformed_objects_for_validation() {
    for raw in [
        json!("x"),
        json!({"spec": 3}),
        json!({"metadata": {"labels": 5}, "spec": {}}),
    ] {
        let out = apply_defaults(&raw, &Defaults::default());
        // No panic; nothing invented where the shape is wrong.
        if raw["spec"].is_object() {
            assert_eq!(out["metadata"]["labels"], json!(5));
        } else {
            assert_eq!(out, raw);
        }
    }
}

fn arb_object() -> impl Strategy<Value = Value> {
    let opt_str = || proptest::option::of("[a-zA-Z0-9/ ._-]{0,80}");
    (
        opt_str(),
        opt_str(),
        opt_str(),
        proptest::option::of(proptest::option::of("[0-9]{1,3}[smh]")),
        proptest::option::of("[a-z-]{1,20}"),
        proptest::option::of(proptest::collection::btree_map(
            "[a-z./-]{1,20}",
            "[a-z]{0,10}",
            0..4,
        )),
        any::<bool>(),
    )
        .prop_map(|(wf, target, rr, timeout, sa, labels, extra)| {
            let mut spec = json!({"workflowRef": {"version": "1", "containerImage": "q.io/a/b"}});
            if let Some(wf) = wf {
                spec["workflowRef"]["workflowId"] = json!(wf);
            }
            if let Some(t) = target {
                spec["targetResource"] = json!(t);
            }
            if let Some(rr) = rr {
                spec["remediationRequestRef"] = json!({"name": rr});
            }
            match (timeout, sa) {
                (None, None) => {}
                (t, sa) => {
                    let mut cfg = json!({});
                    if let Some(t) = t {
                        cfg["timeout"] = t.map(Value::from).unwrap_or(Value::Null);
                    }
                    if let Some(sa) = sa {
                        cfg["serviceAccountName"] = json!(sa);
                    }
                    spec["executionConfig"] = cfg;
                }
            }
            if extra {
                spec["unknownField"] = json!({"kept": true});
            }
            let mut obj = json!({"metadata": {"name": "x"}, "spec": spec});
            if let Some(labels) = labels {
                obj["metadata"]["labels"] = json!(labels);
            }
            obj
        })
}

proptest! {
    #[test]
    fn defaulting_is_idempotent_and_its_patch_is_exact(raw in arb_object()) {
        let defaults = Defaults::default();
        let defaulted = apply_defaults(&raw, &defaults);
        let patch = default_patch(&raw, &defaults);
        // Applying the patch gives exactly the defaulted object...
        prop_assert_eq!(apply(&raw, &patch), defaulted.clone());
        // ...defaulting the result changes nothing...
        prop_assert!(default_patch(&defaulted, &defaults).0.is_empty());
        // ...every label it sets is a valid label value, and unknown fields survive.
        if let Some(labels) = defaulted["metadata"]["labels"].as_object() {
            for v in labels.values() {
                prop_assert!(wfe_shared::api::names::is_label_value(v.as_str().unwrap_or("")));
            }
        }
        prop_assert_eq!(&defaulted["spec"]["unknownField"], &raw["spec"]["unknownField"]);
    }
}
