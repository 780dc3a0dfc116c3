//! The WorkflowExecution API on a real kube-apiserver: storage, initial phase, schema and CEL rules,
//! printer columns, and the Tekton objects later tests drive by hand.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use wfe_shared::api::Phase;
use wfe_shared::fixtures::{ExecutionBuilder, execution};
use wfe_shared::tekton::{
    Param, ParamValue, PipelineRef, PipelineRun, PipelineRunSpec, TaskRun, TaskRunSpec,
};
use wfe_shared::{WorkflowExecution, WorkflowExecutionSpec};
use wfe_tools::shared;

fn spec(target: &str) -> WorkflowExecutionSpec {
    stored("spec")
        .target(target)
        .confidence(0.9)
        .remove("spec.executionConfig")
        .build()
        .spec
}

/// A valid manifest as JSON, to be broken field by field.
fn manifest(name: &str) -> Value {
    stored(name).json()
}

/// The suite's execution: version 1.0.0 of `restart:v1`, `REPLICAS=3`, 15m as `runner`, created in
/// the test's namespace.
fn stored(name: &str) -> ExecutionBuilder {
    execution(name)
        .remove("metadata.namespace")
        .workflow("restart-deployment", "1.0.0")
        .image("quay.io/kubernaut/workflows/restart:v1")
        .param("REPLICAS", "3")
        .timeout("15m")
        .service_account("runner")
}

async fn setup(prefix: &str) -> (Client, String, Api<WorkflowExecution>) {
    let cp = shared();
    let client = cp.client().await;
    let ns = cp.namespace(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, api)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd: Command = shared().kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl starts");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(input.as_bytes())
            .expect("write manifest to kubectl");
    }
    child.wait_with_output().expect("kubectl runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn created_with_kube_rs_reads_back_pending_with_no_controller() {
    let (_client, _ns, api) = setup("pending-kube").await;
    // Watch from before the create, so the very first event the API server sends is checked too.
    let mut events = api
        .watch(&WatchParams::default().timeout(20), "0")
        .await
        .expect("watch starts")
        .boxed();

    let created = api
        .create(
            &PostParams::default(),
            &WorkflowExecution::new("wfe-a", spec("ns1/deployment/app")),
        )
        .await
        .expect("valid WorkflowExecution is stored");
    // The create response already carries the phase...
    assert_eq!(
        created.status.as_ref().map(|s| s.phase),
        Some(Phase::Pending)
    );
    // ...so do a read...
    let got = api.get("wfe-a").await.expect("get");
    assert_eq!(got.status.map(|s| s.phase), Some(Phase::Pending));
    assert_eq!(
        got.spec,
        spec("ns1/deployment/app"),
        "spec stored unchanged"
    );
    // ...and the watch event.
    let first = loop {
        match events.next().await {
            Some(Ok(WatchEvent::Added(obj))) if obj.name_any() == "wfe-a" => break obj,
            Some(Ok(_)) => continue,
            other => panic!("no Added event for wfe-a: {other:?}"),
        }
    };
    assert_eq!(first.status.map(|s| s.phase), Some(Phase::Pending));
}

#[tokio::test]
async fn created_with_kubectl_reads_back_pending() {
    let (_client, ns, _api) = setup("pending-kubectl").await;
    let example =
        std::fs::read_to_string(wfe_tools::repo_root().join("examples/workflowexecution.yaml"))
            .expect("example manifest");
    let out = kubectl(&["create", "-n", &ns, "-f", "-"], Some(&example));
    assert!(
        out.status.success(),
        "kubectl create failed: {}",
        text(&out)
    );
    assert!(text(&out).contains("workflowexecution.kubernaut.ai/restart-payment-api created"));

    let out = kubectl(
        &[
            "get",
            "wfe",
            "restart-payment-api",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.phase}",
        ],
        None,
    );
    assert_eq!(text(&out), "Pending");
}

/// Create `body` (untyped: it may hold what the closed Rust types cannot) and expect a 422 whose
/// message contains every one of `expected`.
async fn assert_rejected(api: &Api<DynamicObject>, body: Value, expected: &[&str]) {
    let obj: DynamicObject = serde_json::from_value(body).expect("manifest is an object");
    let err = api
        .create(&PostParams::default(), &obj)
        .await
        .expect_err("API server must reject");
    check_rejection(err, expected);
}

fn check_rejection(err: kube::Error, expected: &[&str]) {
    let kube::Error::Api(status) = &err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 422, "{status:?}");
    for needle in expected {
        assert!(
            status.message.contains(needle),
            "rejection should mention {needle:?}: {}",
            status.message
        );
    }
}

#[tokio::test]
async fn schema_rejects_malformed_specs_naming_the_field() {
    let (client, ns, api) = setup("schema").await;
    let untyped: Api<DynamicObject> =
        Api::namespaced_with(client, &ns, &ApiResource::erase::<WorkflowExecution>(&()));
    let mut cases: Vec<(&str, Value, Vec<&str>)> = Vec::new();
    let mut add = |name: &str, edit: &dyn Fn(&mut Value), expect: &[&'static str]| {
        let mut m = manifest(name);
        edit(&mut m);
        cases.push((
            Box::leak(name.to_owned().into_boxed_str()),
            m,
            expect.to_vec(),
        ));
    };
    add(
        "missing-target",
        &|m| {
            m["spec"].as_object_mut().unwrap().remove("targetResource");
        },
        &["spec.targetResource: Required value"],
    );
    add(
        "missing-workflow-id",
        &|m| {
            m["spec"]["workflowRef"]
                .as_object_mut()
                .unwrap()
                .remove("workflowId");
        },
        &["spec.workflowRef.workflowId: Required value"],
    );
    add(
        "empty-rr-name",
        &|m| m["spec"]["remediationRequestRef"]["name"] = json!(""),
        &["spec.remediationRequestRef.name"],
    );
    add(
        "bad-target",
        &|m| m["spec"]["targetResource"] = json!("payments//payment-api"),
        &[
            "spec.targetResource",
            "must be namespace/kind/name (namespaced) or kind/name",
        ],
    );
    add(
        "bad-image",
        &|m| m["spec"]["workflowRef"]["containerImage"] = json!("not an image"),
        &[
            "spec.workflowRef.containerImage",
            "must be an OCI reference to a Tekton bundle",
        ],
    );
    add(
        "bad-digest",
        &|m| m["spec"]["workflowRef"]["containerDigest"] = json!("sha256:xyz"),
        &["spec.workflowRef.containerDigest"],
    );
    add(
        "lower-param",
        &|m| m["spec"]["parameters"] = json!({"replicas": "3"}),
        &["spec.parameters", "UPPER_SNAKE_CASE"],
    );
    add(
        "reserved-param",
        &|m| m["spec"]["parameters"] = json!({"TARGET_RESOURCE": "x"}),
        &["spec.parameters", "TARGET_RESOURCE is reserved"],
    );
    add(
        "confidence-high",
        &|m| m["spec"]["confidence"] = json!(1.5),
        &["spec.confidence", "less than or equal to 1"],
    );
    add(
        "timeout-long",
        &|m| m["spec"]["executionConfig"]["timeout"] = json!("25h"),
        &["spec.executionConfig.timeout", "at most 24h"],
    );
    add(
        "timeout-garbage",
        &|m| m["spec"]["executionConfig"]["timeout"] = json!("soon"),
        &["spec.executionConfig.timeout"],
    );
    add(
        "bad-sa",
        &|m| m["spec"]["executionConfig"]["serviceAccountName"] = json!("Runner_SA"),
        &["spec.executionConfig.serviceAccountName"],
    );
    add(
        "name-too-long-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &|_| {},
        &["metadata.name must be no more than 63 characters"],
    );
    add(
        "no-spec",
        &|m| {
            m.as_object_mut().unwrap().remove("spec");
        },
        &["spec: Required value"],
    );
    for (name, body, expected) in cases {
        eprintln!("case {name}");
        assert_rejected(&untyped, body, &expected).await;
    }
    // And none of them was stored.
    assert!(
        api.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

/// The CRD's duration pattern and the webhook's parser accept the same spellings (the fuzz target
/// `duration` found the pattern refusing `.5h` and `3µs`, which the webhook accepted).
#[tokio::test]
async fn schema_accepts_every_timeout_spelling_the_webhook_accepts() {
    let (_client, _ns, api) = setup("timeouts").await;
    for (i, timeout) in [
        "15m", "1h30m", "1.5h", ".5h", "500ms", "3µs", "3μs", "2us", "1h0.5m",
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            wfe_shared::admission::validation::check_timeout(timeout).is_ok(),
            "{timeout}"
        );
        let wfe = stored(&format!("timeout-{i}")).timeout(timeout).build();
        api.create(&PostParams::default(), &wfe)
            .await
            .unwrap_or_else(|e| panic!("timeout {timeout:?} refused by the CRD: {e}"));
    }
}

#[tokio::test]
async fn status_schema_rejects_unknown_phase_and_reasons() {
    let (_client, _ns, api) = setup("status-enum").await;
    api.create(
        &PostParams::default(),
        &WorkflowExecution::new("wfe-s", spec("ns1/deployment/app")),
    )
    .await
    .expect("create");
    let merge = |status: Value| Patch::Merge(json!({ "status": status }));
    let pp = PatchParams::default();

    for (status, needle) in [
        (
            json!({"phase": "Exploded"}),
            "status.phase: Unsupported value: \"Exploded\"",
        ),
        (
            json!({"phase": "Failed", "failureReason": "Gremlins"}),
            "status.failureReason: Unsupported value: \"Gremlins\"",
        ),
        (
            json!({"conditions": [{"type": "Bogus", "status": "True", "reason": "PipelineCreated",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            "status.conditions[0].type: Unsupported value: \"Bogus\"",
        ),
        (
            json!({"conditions": [{"type": "TektonPipelineCreated", "status": "Maybe",
                    "reason": "PipelineCreated", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            "status.conditions[0].status: Unsupported value: \"Maybe\"",
        ),
    ] {
        let err = api
            .patch_status("wfe-s", &pp, &merge(status.clone()))
            .await
            .expect_err("invalid status must be rejected");
        check_rejection(err, &[needle]);
    }
    // A valid status write is accepted and the object is otherwise untouched.
    let ok = api
        .patch_status("wfe-s", &pp, &merge(json!({"phase": "Running"})))
        .await
        .expect("valid status");
    assert_eq!(ok.status.map(|s| s.phase), Some(Phase::Running));
}

#[tokio::test]
async fn spec_is_immutable_after_creation() {
    let (_client, ns, api) = setup("immutable").await;
    api.create(
        &PostParams::default(),
        &WorkflowExecution::new("wfe-i", spec("ns1/deployment/app")),
    )
    .await
    .expect("create");
    let pp = PatchParams::default();
    for change in [
        json!({"spec": {"targetResource": "ns1/deployment/other"}}),
        json!({"spec": {"parameters": {"REPLICAS": "4"}}}),
        json!({"spec": {"executionConfig": {"timeout": "5m"}}}),
    ] {
        let err = api
            .patch("wfe-i", &pp, &Patch::Merge(change))
            .await
            .expect_err("spec change must be rejected");
        check_rejection(
            err,
            &["spec: Invalid value", "spec is immutable after creation"],
        );
    }
    // kubectl users see the same message.
    let out = kubectl(
        &[
            "patch",
            "wfe",
            "wfe-i",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"confidence":0.1}}"#,
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("spec is immutable after creation"),
        "{}",
        text(&out)
    );
    // Metadata stays editable.
    api.patch(
        "wfe-i",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"team": "payments"}}})),
    )
    .await
    .expect("labels may change");
}

#[tokio::test]
async fn printer_columns_show_in_kubectl_get() {
    let (_client, ns, api) = setup("columns").await;
    let pp = PatchParams::default();
    for name in ["wfe-pending", "wfe-failed", "wfe-skipped"] {
        api.create(
            &PostParams::default(),
            &WorkflowExecution::new(name, spec("ns1/deployment/app")),
        )
        .await
        .expect("create");
    }
    api.patch_status(
        "wfe-failed",
        &pp,
        &Patch::Merge(json!({"status": {
        "phase": "Failed", "duration": "2m5s", "failureReason": "OOMKilled",
        "failureDetails": {"failedTaskIndex": 0, "failedTaskName": "restart", "reason": "OOMKilled",
            "message": "step OOMKilled", "failedAt": "2026-01-01T00:00:00Z",
            "executionTimeBeforeFailure": "2m5s", "naturalLanguageSummary": "x",
            "wasExecutionFailure": true}}})),
    )
    .await
    .expect("failed status");
    api.patch_status(
        "wfe-skipped",
        &pp,
        &Patch::Merge(json!({"status": {
        "phase": "Skipped", "skipDetails": {"reason": "ResourceBusy", "message": "busy",
            "skippedAt": "2026-01-01T00:00:00Z"}}})),
    )
    .await
    .expect("skipped status");

    let out = kubectl(&["get", "wfe", "-n", &ns], None);
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME", "PHASE", "WORKFLOW", "TARGET", "REASON", "DURATION", "AGE"
        ],
        "{table}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l[0] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        row("wfe-failed")[1..6],
        [
            "Failed",
            "restart-deployment",
            "ns1/deployment/app",
            "OOMKilled",
            "2m5s"
        ],
        "{table}"
    );
    assert_eq!(
        row("wfe-skipped")[1..5],
        [
            "Skipped",
            "restart-deployment",
            "ns1/deployment/app",
            "ResourceBusy"
        ],
        "{table}"
    );
    assert_eq!(
        row("wfe-pending")[1..4],
        ["Pending", "restart-deployment", "ns1/deployment/app"],
        "{table}"
    );
    // The short name and category work too.
    let out = kubectl(&["get", "kubernaut", "-n", &ns, "-o", "name"], None);
    assert!(
        text(&out).contains("workflowexecution.kubernaut.ai/wfe-pending"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn tekton_runs_are_created_elsewhere_and_their_status_patched_through_the_subresource() {
    let cp = shared();
    let client = cp.client().await;
    let exec_ns = cp.namespace(&client, "kubernaut-workflows").await;
    let runs: Api<PipelineRun> = Api::namespaced(client.clone(), &exec_ns);

    let mut pr = PipelineRun::new(
        "wfe-0123456789abcdef",
        PipelineRunSpec {
            pipeline_ref: Some(PipelineRef {
                resolver: Some("bundles".into()),
                params: vec![
                    Param {
                        name: "bundle".into(),
                        value: ParamValue::String("quay.io/x/y:v1".into()),
                    },
                    Param {
                        name: "name".into(),
                        value: ParamValue::String("workflow".into()),
                    },
                    Param {
                        name: "kind".into(),
                        value: ParamValue::String("pipeline".into()),
                    },
                ],
                ..Default::default()
            }),
            params: vec![Param {
                name: "TARGET_RESOURCE".into(),
                value: ParamValue::String("ns1/deployment/app".into()),
            }],
            ..Default::default()
        },
    );
    pr.metadata.labels = Some(BTreeMap::from([(
        "kubernaut.ai/workflow-execution".into(),
        "wfe-a".into(),
    )]));
    let created = runs
        .create(&PostParams::default(), &pr)
        .await
        .expect("PipelineRun stored");
    assert_eq!(
        created.spec.pipeline_ref, pr.spec.pipeline_ref,
        "schema kept our fields"
    );
    assert!(
        created.status.is_none()
            || created
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.is_empty())
    );

    // Simulate Tekton: Running, then Succeeded, through /status.
    let pp = PatchParams::default();
    let running = runs
        .patch_status(&pr.name_any(), &pp, &Patch::Merge(json!({"status": {
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                "message": "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 1, Skipped: 0"}],
            "childReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
                "name": "wfe-0123456789abcdef-restart", "pipelineTaskName": "restart"}]}})))
        .await
        .expect("status patch");
    let status = running.status.expect("status set");
    assert_eq!(status.conditions[0].reason.as_deref(), Some("Running"));
    assert_eq!(
        status.child_references[0].pipeline_task_name.as_deref(),
        Some("restart")
    );

    let done = runs
        .patch_status(
            &pr.name_any(),
            &pp,
            &Patch::Merge(json!({"status": {
            "completionTime": "2026-01-01T00:01:30Z",
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded",
                "message": "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0"}]}})),
        )
        .await
        .expect("status patch");
    assert_eq!(
        done.status.as_ref().map(|s| s.conditions[0].status),
        Some(wfe_shared::api::ConditionStatus::True)
    );
    // A status write never touches the spec.
    assert_eq!(done.spec.params, pr.spec.params);

    // TaskRuns with step states, as failure classification will read them.
    let trs: Api<TaskRun> = Api::namespaced(client, &exec_ns);
    trs.create(
        &PostParams::default(),
        &TaskRun::new("wfe-0123456789abcdef-restart", TaskRunSpec::default()),
    )
    .await
    .expect("TaskRun stored");
    let tr = trs
        .patch_status(
            "wfe-0123456789abcdef-restart",
            &pp,
            &Patch::Merge(json!({"status": {
            "podName": "wfe-0123456789abcdef-restart-pod",
            "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed",
                "message": "\"step-restart\" exited with code 137"}],
            "steps": [{"name": "restart", "container": "step-restart",
                "terminated": {"exitCode": 137, "reason": "OOMKilled"}}]}})),
        )
        .await
        .expect("TaskRun status patch");
    let step = &tr.status.expect("status").steps[0];
    assert_eq!(step.terminated.as_ref().map(|t| t.exit_code), Some(137));
    assert_eq!(
        step.terminated.as_ref().and_then(|t| t.reason.as_deref()),
        Some("OOMKilled")
    );
}
