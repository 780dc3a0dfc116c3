//! Every rule of SPEC 2.1, with its boundaries: one table row per rule and edge.

use serde_json::{Value, json};
use wfe_shared::WorkflowExecution;
use wfe_shared::admission::validation::{ErrorType, validate, validate_update};
use wfe_shared::fixtures::execution;

fn valid() -> Value {
    execution("wfe-1")
        .param("REPLICAS", "3")
        .confidence(0.9)
        .timeout("30m")
        .service_account("runner")
        .json()
}

fn set(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .get_mut(*p)
            .unwrap_or_else(|| panic!("no {p} in {path}"));
    }
    cur[parts[parts.len() - 1]] = value;
}

fn errors_of(obj: Value) -> Vec<String> {
    let wfe: WorkflowExecution = serde_json::from_value(obj).expect("typed");
    validate(&wfe)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn the_valid_object_is_valid() {
    assert_eq!(errors_of(valid()), Vec::<String>::new());
    let wfe: WorkflowExecution = serde_json::from_value(valid()).expect("typed");
    assert_eq!(
        validate(&wfe).warnings,
        Vec::<String>::new(),
        "and warns of nothing"
    );
}

#[test]
fn each_rule_accepts_its_boundary_and_rejects_past_it() {
    // (path, value, expected error or None when valid)
    let long = |n: usize| json!("a".repeat(n));
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        // metadata.name ≤ 63
        ("metadata.name", long(63), None),
        (
            "metadata.name",
            long(64),
            Some("metadata.name: Too long: may not be more than 63 bytes"),
        ),
        // remediationRequestRef.name: required, ≤ 255
        (
            "spec.remediationRequestRef.name",
            json!(""),
            Some("spec.remediationRequestRef.name: Required value"),
        ),
        ("spec.remediationRequestRef.name", long(255), None),
        (
            "spec.remediationRequestRef.name",
            long(256),
            Some("spec.remediationRequestRef.name: Too long: may not be more than 255 bytes"),
        ),
        // workflowRef
        (
            "spec.workflowRef.workflowId",
            json!(""),
            Some("spec.workflowRef.workflowId: Required value"),
        ),
        ("spec.workflowRef.workflowId", long(255), None),
        (
            "spec.workflowRef.workflowId",
            long(256),
            Some("spec.workflowRef.workflowId: Too long: may not be more than 255 bytes"),
        ),
        (
            "spec.workflowRef.version",
            json!(""),
            Some("spec.workflowRef.version: Required value"),
        ),
        (
            "spec.workflowRef.containerImage",
            json!(""),
            Some("spec.workflowRef.containerImage: Required value"),
        ),
        (
            "spec.workflowRef.containerImage",
            json!("restart"),
            Some(
                "spec.workflowRef.containerImage: Invalid value: \"restart\": must be an OCI reference",
            ),
        ),
        (
            "spec.workflowRef.containerImage",
            json!("quay.io/Upper/x:v1"),
            Some("must be an OCI reference"),
        ),
        (
            "spec.workflowRef.containerImage",
            json!("localhost:5000/wf/restart"),
            None,
        ),
        (
            "spec.workflowRef.containerImage",
            json!(format!("quay.io/wf/restart@{DIGEST_A}")),
            None,
        ),
        (
            "spec.workflowRef.containerImage",
            json!(format!("quay.io/wf/restart:v1@{DIGEST_A}")),
            None,
        ),
        (
            "spec.workflowRef.containerImage",
            json!("quay.io/wf/restart@sha256:abc"),
            Some("must be an OCI reference"),
        ),
        (
            "spec.workflowRef.containerImage",
            json!(format!("quay.io/{}", "a".repeat(512 - 8))),
            None,
        ),
        (
            "spec.workflowRef.containerImage",
            json!(format!("quay.io/{}", "a".repeat(510))),
            Some("spec.workflowRef.containerImage: Too long: may not be more than 512 bytes"),
        ),
        ("spec.workflowRef.containerDigest", json!(DIGEST_A), None),
        (
            "spec.workflowRef.containerDigest",
            json!("sha256:ABC"),
            Some(
                "spec.workflowRef.containerDigest: Invalid value: \"sha256:ABC\": must be sha256:<64 lowercase hex digits>",
            ),
        ),
        (
            "spec.workflowRef.containerDigest",
            json!("md5:aaaa"),
            Some("spec.workflowRef.containerDigest: Invalid value"),
        ),
        // targetResource
        (
            "spec.targetResource",
            json!(""),
            Some("spec.targetResource: Required value"),
        ),
        ("spec.targetResource", json!("Node/worker-1"), None),
        (
            "spec.targetResource",
            json!("deployment"),
            Some(
                "spec.targetResource: Invalid value: \"deployment\": must be namespace/kind/name (namespaced) or kind/name (cluster-scoped)",
            ),
        ),
        (
            "spec.targetResource",
            json!("a/b/c/d"),
            Some("must be namespace/kind/name"),
        ),
        (
            "spec.targetResource",
            json!("ns//x"),
            Some("must not contain an empty segment"),
        ),
        (
            "spec.targetResource",
            json!("Prod/deployment/x"),
            Some("namespace \"Prod\": a lowercase RFC 1123 label"),
        ),
        (
            "spec.targetResource",
            json!(format!("{}/Pod/p", "n".repeat(63))),
            None,
        ),
        (
            "spec.targetResource",
            json!(format!("{}/Pod/p", "n".repeat(64))),
            Some("a lowercase RFC 1123 label"),
        ),
        (
            "spec.targetResource",
            json!("ns/deployment/My_App"),
            Some("name \"My_App\": a lowercase RFC 1123 subdomain"),
        ),
        // Exactly 400 bytes is within the limit (and then judged by the grammar: the name is too
        // long for an RFC 1123 subdomain).
        (
            "spec.targetResource",
            json!(format!("Node/{}", "a".repeat(400 - 5))),
            Some("spec.targetResource: Invalid value"),
        ),
        (
            "spec.targetResource",
            json!(format!("Node/{}", "a".repeat(401))),
            Some("spec.targetResource: Too long: may not be more than 400 bytes"),
        ),
        // parameters
        ("spec.parameters", json!({"A": "x", "A_1_B": "y"}), None),
        (
            "spec.parameters",
            json!({"replicas": "3"}),
            Some(
                "spec.parameters[replicas]: Invalid value: \"replicas\": parameter keys must be UPPER_SNAKE_CASE",
            ),
        ),
        (
            "spec.parameters",
            json!({"1ABC": "3"}),
            Some("spec.parameters[1ABC]: Invalid value"),
        ),
        (
            "spec.parameters",
            json!({"_ABC": "3"}),
            Some("spec.parameters[_ABC]: Invalid value"),
        ),
        (
            "spec.parameters",
            json!({"TARGET_RESOURCE": "x"}),
            Some("spec.parameters[TARGET_RESOURCE]: Forbidden: TARGET_RESOURCE is reserved"),
        ),
        ("spec.parameters", json!({"A": "v".repeat(4096)}), None),
        (
            "spec.parameters",
            json!({"A": "v".repeat(4097)}),
            Some("spec.parameters[A]: Too long: may not be more than 4096 bytes"),
        ),
        (
            "spec.parameters",
            Value::Object((0..64).map(|i| (format!("P{i}"), json!("v"))).collect()),
            None,
        ),
        (
            "spec.parameters",
            Value::Object((0..65).map(|i| (format!("P{i}"), json!("v"))).collect()),
            Some("spec.parameters: Too many: 65: must have at most 64 items"),
        ),
        // Keys and values together exactly at the limit: 7 × (2 + 4096) + 2 + 4080 = 32768.
        (
            "spec.parameters",
            Value::Object(
                (0..8)
                    .map(|i| {
                        (
                            format!("P{i}"),
                            json!("v".repeat(if i < 7 { 4096 } else { 4080 })),
                        )
                    })
                    .collect(),
            ),
            None,
        ),
        (
            "spec.parameters",
            Value::Object(
                (0..9)
                    .map(|i| (format!("P{i}"), json!("v".repeat(4000))))
                    .collect(),
            ),
            Some(
                "spec.parameters: Too long: keys and values together may not be more than 32768 bytes",
            ),
        ),
        // confidence
        ("spec.confidence", json!(0.0), None),
        ("spec.confidence", json!(1.0), None),
        (
            "spec.confidence",
            json!(1.0001),
            Some("spec.confidence: Invalid value: 1.0001: must be between 0 and 1 inclusive"),
        ),
        (
            "spec.confidence",
            json!(-0.1),
            Some("spec.confidence: Invalid value: -0.1"),
        ),
        // rationale
        ("spec.rationale", long(8192), None),
        (
            "spec.rationale",
            long(8193),
            Some("spec.rationale: Too long: may not be more than 8192 bytes"),
        ),
        // timeout
        ("spec.executionConfig.timeout", json!("1ns"), None),
        ("spec.executionConfig.timeout", json!("24h"), None),
        (
            "spec.executionConfig.timeout",
            json!("24h0m0.000000001s"),
            Some(
                "spec.executionConfig.timeout: Invalid value: \"24h0m0.000000001s\": must be at most 24h",
            ),
        ),
        (
            "spec.executionConfig.timeout",
            json!("0s"),
            Some("spec.executionConfig.timeout: Invalid value: \"0s\": must be greater than 0s"),
        ),
        (
            "spec.executionConfig.timeout",
            json!("soon"),
            Some("spec.executionConfig.timeout: Invalid value: \"soon\": not a Go duration"),
        ),
        (
            "spec.executionConfig.timeout",
            json!("30"),
            Some("not a Go duration"),
        ),
        // serviceAccountName
        (
            "spec.executionConfig.serviceAccountName",
            json!("kubernaut-workflow-runner"),
            None,
        ),
        (
            "spec.executionConfig.serviceAccountName",
            json!("Runner_SA"),
            Some(
                "spec.executionConfig.serviceAccountName: Invalid value: \"Runner_SA\": a lowercase RFC 1123 subdomain",
            ),
        ),
        (
            "spec.executionConfig.serviceAccountName",
            json!(format!(
                "{}.{}.{}.{}",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(61)
            )),
            None,
        ),
        (
            "spec.executionConfig.serviceAccountName",
            json!(format!(
                "{}.{}.{}.{}",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(62)
            )),
            Some("serviceAccountName: Invalid value"),
        ),
    ];
    let mut failures = Vec::new();
    for (path, value, expected) in cases {
        let mut obj = valid();
        set(&mut obj, path, value.clone());
        let errors = errors_of(obj);
        let shown = format!("{path} = {}", truncate(&value.to_string()));
        match expected {
            None if !errors.is_empty() => failures.push(format!("{shown}: unexpected {errors:?}")),
            Some(needle) if !(errors.len() == 1 && errors[0].contains(needle)) => failures.push(
                format!("{shown}: want one error containing {needle:?}, got {errors:?}"),
            ),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn truncate(s: &str) -> String {
    if s.len() > 60 {
        format!("{}…", &s[..60])
    } else {
        s.to_owned()
    }
}

#[test]
fn generate_name_leaves_room_for_the_random_suffix() {
    let mut obj = valid();
    obj["metadata"] = json!({"generateName": "a".repeat(58)});
    assert_eq!(errors_of(obj.clone()), Vec::<String>::new());
    obj["metadata"] = json!({"generateName": "a".repeat(59)});
    assert_eq!(
        errors_of(obj),
        [
            "metadata.generateName: Too long: may not be more than 58 bytes: 5 random characters are appended and the name may not be more than 63"
        ]
    );
}

#[test]
fn digest_must_agree_with_the_image() {
    let mut obj = valid();
    set(
        &mut obj,
        "spec.workflowRef.containerImage",
        json!(format!("quay.io/wf/restart@{DIGEST_A}")),
    );
    set(
        &mut obj,
        "spec.workflowRef.containerDigest",
        json!(DIGEST_A),
    );
    assert!(errors_of(obj.clone()).is_empty());
    set(
        &mut obj,
        "spec.workflowRef.containerDigest",
        json!(DIGEST_B),
    );
    assert_eq!(
        errors_of(obj),
        [format!(
            "spec.workflowRef.containerDigest: Invalid value: \"{DIGEST_B}\": must match the digest in spec.workflowRef.containerImage ({DIGEST_A})"
        )]
    );
}

#[test]
fn all_violations_are_reported_together() {
    let mut obj = valid();
    set(&mut obj, "metadata.name", json!("x".repeat(70)));
    set(&mut obj, "spec.targetResource", json!("nope"));
    set(
        &mut obj,
        "spec.parameters",
        json!({"lower": "1", "TARGET_RESOURCE": "x"}),
    );
    set(&mut obj, "spec.confidence", json!(2.0));
    set(&mut obj, "spec.executionConfig.timeout", json!("48h"));
    let wfe: WorkflowExecution = serde_json::from_value(obj).unwrap();
    let report = validate(&wfe);
    let fields: Vec<&str> = report.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.targetResource",
            "spec.parameters[TARGET_RESOURCE]",
            "spec.parameters[lower]",
            "spec.confidence",
            "spec.executionConfig.timeout"
        ]
    );
    let message = report.message();
    assert!(message.starts_with("[metadata.name: Too long"), "{message}");
    assert!(message.ends_with("must be at most 24h]"), "{message}");
    assert_eq!(report.errors[2].type_, ErrorType::Forbidden);
    assert_eq!(report.errors[2].type_.cause_reason(), "FieldValueForbidden");
}

#[test]
fn a_non_semver_version_is_a_warning_not_an_error() {
    let mut obj = valid();
    set(&mut obj, "spec.workflowRef.version", json!("latest"));
    let wfe: WorkflowExecution = serde_json::from_value(obj).unwrap();
    let report = validate(&wfe);
    assert!(report.is_valid());
    assert_eq!(
        report.warnings,
        ["spec.workflowRef.version: \"latest\" is not a semantic version (e.g. 1.2.0)"]
    );
}

#[test]
fn spec_is_immutable_and_each_changed_field_is_named() {
    let old = valid()["spec"].clone();
    assert!(validate_update(Some(&old), Some(&old)).is_valid());
    let mut new = old.clone();
    new["targetResource"] = json!("payments/deployment/other");
    new["parameters"]["REPLICAS"] = json!("4");
    new["rationale"] = json!("added later");
    let report = validate_update(Some(&old), Some(&new));
    let shown: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "spec.parameters: Forbidden: spec is immutable after creation",
            "spec.rationale: Forbidden: spec is immutable after creation",
            "spec.targetResource: Forbidden: spec is immutable after creation",
        ]
    );
    let removed = validate_update(Some(&old), None);
    assert!(!removed.is_valid());
}

#[test]
fn reports_combine_errors_and_warnings_in_order() {
    // The webhook answers an UPDATE with the spec's immutability and the clearance's rules at once.
    let mut changed = valid();
    set(
        &mut changed,
        "spec.targetResource",
        json!("shop/deployment/other"),
    );
    changed["spec"]["workflowRef"]["version"] = json!("latest");
    let immutable = validate_update(valid().get("spec"), changed.get("spec"));
    let typed: WorkflowExecution = serde_json::from_value(changed).expect("typed");
    let both = immutable.clone().and(validate(&typed));
    let first = immutable.errors.len();
    assert!(first >= 1);
    assert_eq!(both.errors.len(), first + validate(&typed).errors.len());
    assert_eq!(both.errors[..first], immutable.errors[..]);
    assert_eq!(both.warnings.len(), 1, "{:?}", both.warnings);
    assert!(both.warnings[0].starts_with("spec.workflowRef.version"));
}
