//! The routes as the API server calls them, via `Router::oneshot`: valid, invalid, malformed,
//! oversized, wrong kind, UPDATE with a spec change, dryRun; and the metrics they leave behind.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wfe_shared::admission::defaulting::Defaults;
use wfe_shared::fixtures::{self, execution};
use wfe_webhook::metrics::Metrics;
use wfe_webhook::router::{AppState, admission_router};
use wfe_webhook::tls::CertStore;

fn state() -> AppState {
    AppState {
        defaults: Arc::new(Defaults::default()),
        metrics: Metrics::new().unwrap(),
        certs: Arc::new(CertStore::new()),
        shutting_down: Arc::new(AtomicBool::new(false)),
        max_request_bytes: 64 * 1024,
        request_timeout: std::time::Duration::from_secs(10),
    }
}

fn wfe(name: &str) -> Value {
    execution(name)
        .workflow("restart", "1.0.0")
        .image("quay.io/kubernaut/restart:v1")
        .target("payments/deployment/api")
        .json()
}

fn review(operation: &str, object: Value, old: Option<Value>, dry_run: bool) -> Value {
    let r = fixtures::review(operation, object);
    let r = match old {
        Some(old) => r.old(old),
        None => r,
    };
    if dry_run { r.dry_run() } else { r }.json()
}

async fn call(state: &AppState, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let response = admission_router(state.clone())
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path} answered non-JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

/// The response's patch: kube serializes `[]byte` as an array of numbers (Go's decoder accepts it).
fn patch_of(answer: &Value) -> Value {
    let bytes: Vec<u8> =
        serde_json::from_value(answer["response"]["patch"].clone()).expect("patch present");
    serde_json::from_slice(&bytes).expect("patch is JSON")
}

#[tokio::test]
async fn mutate_returns_a_json_patch_that_fills_the_defaults() {
    let s = state();
    let (status, answer) = call(
        &s,
        "/mutate",
        review("CREATE", wfe("a"), None, false).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = &answer["response"];
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
        "uid echoed"
    );
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch: json_patch::Patch = serde_json::from_value(patch_of(&answer)).unwrap();
    let mut patched = wfe("a");
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["spec"]["executionConfig"]["timeout"], "30m");
    assert_eq!(
        patched["spec"]["executionConfig"]["serviceAccountName"],
        "kubernaut-workflow-runner"
    );
    assert_eq!(
        patched["metadata"]["labels"]["kubernaut.ai/target-resource"],
        "payments__deployment__api"
    );

    // Mutating its own output is a no-op: allowed, no patch.
    let (_, again) = call(
        &s,
        "/mutate",
        review("CREATE", patched, None, false).to_string(),
    )
    .await;
    assert_eq!(again["response"]["allowed"], true);
    assert!(again["response"].get("patch").is_none(), "{again}");
}

#[tokio::test]
async fn validate_allows_a_valid_create() {
    let (status, answer) = call(
        &state(),
        "/validate",
        review("CREATE", wfe("a"), None, false).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn validate_denies_an_invalid_create_with_every_field_cause() {
    let mut bad = wfe("b");
    bad["spec"]["targetResource"] = json!("deployment");
    bad["spec"]["parameters"] = json!({"lower": "x"});
    bad["spec"]["confidence"] = json!(7);
    let (status, answer) = call(
        &state(),
        "/validate",
        review("CREATE", bad, None, false).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = &answer["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 422);
    assert_eq!(r["status"]["reason"], "Invalid");
    assert_eq!(r["status"]["details"]["kind"], "WorkflowExecution");
    assert_eq!(r["status"]["details"]["name"], "b");
    let causes: Vec<(String, String)> = r["status"]["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        causes,
        [
            ("spec.targetResource".into(), "FieldValueInvalid".into()),
            ("spec.parameters[lower]".into(), "FieldValueInvalid".into()),
            ("spec.confidence".into(), "FieldValueInvalid".into()),
        ]
    );
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.targetResource: Invalid value: \"deployment\""),
        "{message}"
    );
}

#[tokio::test]
async fn validate_warns_about_a_non_semver_version() {
    let mut obj = wfe("w");
    obj["spec"]["workflowRef"]["version"] = json!("latest");
    let (_, answer) = call(
        &state(),
        "/validate",
        review("CREATE", obj, None, false).to_string(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(
        answer["response"]["warnings"][0],
        "spec.workflowRef.version: \"latest\" is not a semantic version (e.g. 1.2.0)"
    );
}

#[tokio::test]
async fn update_with_a_spec_change_is_denied_and_a_metadata_change_allowed() {
    let s = state();
    let old = wfe("u");
    let mut changed = old.clone();
    changed["spec"]["targetResource"] = json!("payments/deployment/other");
    let (_, answer) = call(
        &s,
        "/validate",
        review("UPDATE", changed, Some(old.clone()), false).to_string(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "spec.targetResource: Forbidden: spec is immutable after creation"
    );
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    relabelled["metadata"]["finalizers"] =
        json!(["workflowexecution.kubernaut.ai/workflowexecution-cleanup"]);
    let (_, answer) = call(
        &s,
        "/validate",
        review("UPDATE", relabelled, Some(old), false).to_string(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn dry_run_gets_the_same_answer_and_changes_nothing() {
    let s = state();
    let (_, real) = call(
        &s,
        "/mutate",
        review("CREATE", wfe("d"), None, false).to_string(),
    )
    .await;
    let (_, dry) = call(
        &s,
        "/mutate",
        review("CREATE", wfe("d"), None, true).to_string(),
    )
    .await;
    assert_eq!(
        real, dry,
        "dryRun admission is identical: the webhook has no side effects"
    );
    let mut bad = wfe("d");
    bad["spec"]["targetResource"] = json!("x");
    let (_, dry) = call(
        &s,
        "/validate",
        review("CREATE", bad, None, true).to_string(),
    )
    .await;
    assert_eq!(
        dry["response"]["allowed"], false,
        "dryRun is still validated"
    );
}

#[tokio::test]
async fn malformed_reviews_get_a_clear_answer_never_a_500() {
    let s = state();
    // Not JSON at all: 400 with a JSON AdmissionReview explaining why.
    let (status, answer) = call(&s, "/validate", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    // JSON without a request.
    let (status, answer) = call(
        &s,
        "/mutate",
        json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no request"),
        "{answer}"
    );
    // A request with a uid but a broken shape: denied, uid echoed.
    let mut broken = review("CREATE", wfe("m"), None, false);
    broken["request"]["operation"] = json!(42);
    let (status, answer) = call(&s, "/validate", broken.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], false);
    // An object of the right kind but wrong types: denied by /validate with the serde path.
    let mut typed = wfe("t");
    typed["spec"]["confidence"] = json!("very");
    let (_, answer) = call(
        &s,
        "/validate",
        review("CREATE", typed, None, false).to_string(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WorkflowExecution")
    );
    // Empty body.
    let (status, _) = call(&s, "/mutate", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_oversized_review_is_refused_with_413_and_a_reason() {
    let s = state();
    let mut big = wfe("big");
    big["spec"]["rationale"] = json!("x".repeat(70 * 1024));
    let (status, answer) = call(
        &s,
        "/validate",
        review("CREATE", big, None, false).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read the AdmissionReview"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_wrong_kind_is_denied() {
    let mut r = review("CREATE", wfe("p"), None, false);
    r["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let (_, answer) = call(&state(), "/mutate", r.to_string()).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "this webhook admits only kubernaut.ai WorkflowExecution, not /v1 Pod"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_endpoint_operation_and_result() {
    let s = state();
    call(
        &s,
        "/mutate",
        review("CREATE", wfe("a"), None, false).to_string(),
    )
    .await;
    let mut bad = wfe("b");
    bad["spec"]["targetResource"] = json!("x");
    call(
        &s,
        "/validate",
        review("CREATE", bad, None, false).to_string(),
    )
    .await;
    call(&s, "/validate", "garbage").await;
    let text = s.metrics.render();
    for line in [
        r#"wfe_webhook_admission_requests_total{endpoint="mutate",operation="CREATE",result="patched"} 1"#,
        r#"wfe_webhook_admission_requests_total{endpoint="validate",operation="CREATE",result="denied"} 1"#,
        r#"wfe_webhook_admission_requests_total{endpoint="validate",operation="unknown",result="malformed"} 1"#,
        r#"wfe_webhook_admission_duration_seconds_count{endpoint="validate"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn readiness_waits_for_a_certificate() {
    let response = admission_router(state())
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

fn failed(annotations: Value) -> Value {
    let mut w = wfe("broke");
    w["metadata"]["annotations"] = annotations;
    w["status"] = json!({"phase": "Failed"});
    w
}

#[tokio::test]
async fn a_block_clearance_is_stamped_with_the_authenticated_user() {
    let s = state();
    let reason = "restarted the node and checked the deployment by hand, it is healthy now";
    let old = failed(json!({}));
    let new = failed(json!({
        "kubernaut.ai/clear-execution-block": reason,
        "kubernaut.ai/clear-execution-block-by": "forged",
    }));
    let body = fixtures::review("UPDATE", new)
        .old(old)
        .user("alice@example.com")
        .json();
    let (status, answer) = call(&s, "/mutate", body.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], true);
    let patch = patch_of(&answer);
    let ops: Vec<(String, String, Value)> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["op"].as_str().unwrap().to_owned(),
                op["path"].as_str().unwrap().to_owned(),
                op["value"].clone(),
            )
        })
        .collect();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(ops.contains(&(
        "replace".into(),
        "/metadata/annotations/kubernaut.ai~1clear-execution-block-by".into(),
        json!("alice@example.com")
    )));
    assert!(ops.iter().any(|(op, path, value)| {
        op == "add"
            && path.ends_with("clear-execution-block-at")
            && value
                .as_str()
                .is_some_and(|v| v.parse::<k8s_openapi::jiff::Timestamp>().is_ok())
    }));
    // An update that touches no clearance is allowed unpatched.
    let plain = fixtures::review("UPDATE", wfe("x")).old(wfe("x")).json();
    let (_, answer) = call(&s, "/mutate", plain.to_string()).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["patch"].is_null());
}

#[tokio::test]
async fn a_short_clearance_reason_is_denied_with_the_field_named() {
    let s = state();
    let old = failed(json!({}));
    let new = failed(json!({"kubernaut.ai/clear-execution-block": "looks fine now"}));
    let body = fixtures::review("UPDATE", new).old(old).json();
    let (status, answer) = call(&s, "/validate", body.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false);
    let cause = &answer["response"]["status"]["details"]["causes"][0];
    assert_eq!(
        cause["field"],
        "metadata.annotations[kubernaut.ai/clear-execution-block]"
    );
    assert_eq!(
        cause["message"],
        "Invalid value: \"looks fine now\": must explain why the target is safe again in at least 10 words (3 given)"
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_counted() {
    let mut state = state();
    state.request_timeout = std::time::Duration::from_millis(200);
    // A client that sent its header and then never sends the body.
    let stalled = Body::from_stream(futures::stream::pending::<
        Result<bytes::Bytes, std::io::Error>,
    >());
    let response = admission_router(state.clone())
        .oneshot(
            Request::post("/validate")
                .header("content-type", "application/json")
                .body(stalled)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()["connection"], "close");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("did not arrive within 200ms"),
        "{body:?}"
    );
    assert!(state.metrics.render().contains(
        r#"wfe_webhook_admission_requests_total{endpoint="validate",operation="unknown",result="timeout"} 1"#
    ));
}
