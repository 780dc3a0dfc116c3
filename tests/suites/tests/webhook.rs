//! The admission webhook through the real API server, driven with kubectl: defaults stored, malformed
//! manifests rejected with every field error, spec edits rejected, server-side dry run calls the
//! webhook and stores nothing, and a stopped webhook rejects creates instead of admitting them.

use kube::api::Api;
use serde_json::{Value, json};
use wfe_shared::WorkflowExecution;
use wfe_shared::fixtures::execution;
use wfe_tools::webhook::LocalWebhook;
use wfe_tools::{KubectlOutput, shared};

struct Env {
    ns: String,
    hook: LocalWebhook,
    api: Api<WorkflowExecution>,
}

async fn env(prefix: &str) -> Env {
    let cp = shared();
    let client = cp.client().await;
    let ns = cp.namespace(&client, prefix).await;
    let hook = LocalWebhook::start().await.expect("webhook starts");
    hook.register(&client, &ns)
        .await
        .expect("webhook registered");
    Env {
        api: Api::namespaced(client, &ns),
        ns,
        hook,
    }
}

fn manifest(name: &str) -> Value {
    execution(name)
        .remove("metadata.namespace")
        .remediation_request("rr-payment-api-oom")
        .param("GRACE_PERIOD_SECONDS", "30")
        .json()
}

async fn kubectl(args: &[&str], stdin: Option<&Value>) -> KubectlOutput {
    let input = stdin.map(Value::to_string);
    shared().kubectl_run(args, input.as_deref()).await
}

fn count(hook: &LocalWebhook, endpoint: &str, result: &str) -> u64 {
    hook.metrics
        .requests
        .with_label_values(&[endpoint, "CREATE", result])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_create_is_stored_with_defaults() {
    let e = env("wh-valid").await;
    let out = kubectl(
        &["create", "-n", &e.ns, "-f", "-"],
        Some(&manifest("restart-api")),
    )
    .await;
    assert!(out.success, "{}", out.text());
    assert_eq!(
        out.stdout.trim(),
        "workflowexecution.kubernaut.ai/restart-api created"
    );
    let stored = e.api.get("restart-api").await.expect("stored");
    let config = stored
        .spec
        .execution_config
        .expect("executionConfig defaulted");
    assert_eq!(config.timeout.as_deref(), Some("30m"));
    assert_eq!(
        config.service_account_name.as_deref(),
        Some("kubernaut-workflow-runner")
    );
    let labels = stored.metadata.labels.expect("labels");
    assert_eq!(labels["kubernaut.ai/workflow-id"], "restart-deployment");
    assert_eq!(
        labels["kubernaut.ai/target-resource"],
        "payments__deployment__payment-api"
    );
    assert_eq!(
        labels["kubernaut.ai/remediation-request"],
        "rr-payment-api-oom"
    );
    assert_eq!(
        stored.status.map(|s| s.phase),
        Some(wfe_shared::Phase::Pending)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_manifests_are_rejected_and_kubectl_shows_every_field_error() {
    let e = env("wh-invalid").await;

    // Rules the webhook alone can check: every violation in one answer.
    let mut m = manifest("digest-and-size");
    m["spec"]["workflowRef"]["containerImage"] = json!(format!(
        "quay.io/kubernaut/restart@sha256:{}",
        "a".repeat(64)
    ));
    m["spec"]["workflowRef"]["containerDigest"] = json!(format!("sha256:{}", "b".repeat(64)));
    m["spec"]["parameters"] = Value::Object(
        (0..9)
            .map(|i| (format!("P{i}"), json!("v".repeat(4000))))
            .collect(),
    );
    let denied = count(&e.hook, "validate", "denied");
    let out = kubectl(&["create", "-n", &e.ns, "-f", "-"], Some(&m)).await;
    eprintln!("--- kubectl create (webhook rejection):\n{}", out.text());
    assert!(!out.success);
    let text = out.text();
    assert_eq!(
        count(&e.hook, "validate", "denied"),
        denied + 1,
        "denied by the webhook"
    );
    assert!(
        text.contains("The WorkflowExecution \"digest-and-size\" is invalid"),
        "{text}"
    );
    assert!(
        text.contains("spec.workflowRef.containerDigest: Invalid value"),
        "{text}"
    );
    assert!(
        text.contains("must match the digest in spec.workflowRef.containerImage"),
        "{text}"
    );
    assert!(
        text.contains(
            "spec.parameters: Too long: keys and values together may not be more than 32768 bytes"
        ),
        "{text}"
    );

    // Rules the schema holds as well: the API server lists them all before the webhook is asked.
    let mut m = manifest("many-errors");
    m["spec"]["targetResource"] = json!("deployment");
    m["spec"]["parameters"] = json!({"grace": "30", "TARGET_RESOURCE": "x"});
    m["spec"]["confidence"] = json!(2);
    m["spec"]["executionConfig"] = json!({"timeout": "0s"});
    let out = kubectl(&["create", "-n", &e.ns, "-f", "-"], Some(&m)).await;
    eprintln!("--- kubectl create (schema rejection):\n{}", out.text());
    assert!(!out.success);
    let text = out.text();
    assert!(
        text.contains("The WorkflowExecution \"many-errors\" is invalid"),
        "{text}"
    );
    for field in [
        "spec.targetResource",
        "spec.parameters",
        "spec.confidence",
        "spec.executionConfig.timeout",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }

    // A missing required field.
    let mut m = manifest("no-target");
    m["spec"].as_object_mut().unwrap().remove("targetResource");
    let out = kubectl(&["create", "-n", &e.ns, "-f", "-"], Some(&m)).await;
    assert!(!out.success);
    assert!(
        out.text().contains("spec.targetResource: Required value"),
        "{}",
        out.text()
    );

    let stored = e.api.list(&Default::default()).await.unwrap();
    assert!(
        stored.items.is_empty(),
        "nothing half-written: {:?}",
        stored.items
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_or_patching_the_spec_is_rejected() {
    let e = env("wh-immutable").await;
    let out = kubectl(
        &["create", "-n", &e.ns, "-f", "-"],
        Some(&manifest("fixed")),
    )
    .await;
    assert!(out.success, "{}", out.text());

    let out = kubectl(
        &[
            "patch",
            "wfe",
            "fixed",
            "-n",
            &e.ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"targetResource":"payments/deployment/other"}}"#,
        ],
        None,
    )
    .await;
    assert!(!out.success);
    assert!(
        out.text().contains("spec is immutable after creation"),
        "{}",
        out.text()
    );

    // `kubectl edit` with a scripted editor, as a person would change the file and save.
    let editor = "sed -i s#payments/deployment/payment-api#payments/deployment/elsewhere#";
    let mut cmd = tokio::process::Command::new(&shared().binaries.kubectl);
    let out = cmd
        .env("KUBECONFIG", &shared().kubeconfig)
        .env("KUBE_EDITOR", editor)
        .args(["edit", "wfe", "fixed", "-n", &e.ns])
        .output()
        .await
        .expect("kubectl edit runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("workflowexecutions.kubernaut.ai \"fixed\" is invalid"),
        "{text}"
    );
    assert!(
        text.contains("Edit cancelled, no valid changes were saved"),
        "{text}"
    );

    let stored = e.api.get("fixed").await.unwrap();
    assert_eq!(
        stored.spec.target_resource,
        "payments/deployment/payment-api"
    );
    // Labels remain editable.
    let out = kubectl(
        &["label", "wfe", "fixed", "-n", &e.ns, "team=payments"],
        None,
    )
    .await;
    assert!(out.success, "{}", out.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_dry_run_calls_the_webhook_and_stores_nothing() {
    let e = env("wh-dry").await;
    let (mutated, validated) = (
        count(&e.hook, "mutate", "patched"),
        count(&e.hook, "validate", "allowed"),
    );
    let out = kubectl(
        &[
            "create",
            "-n",
            &e.ns,
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&manifest("dry")),
    )
    .await;
    assert!(out.success, "{}", out.text());
    let shown: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        shown["spec"]["executionConfig"]["timeout"], "30m",
        "defaults applied in the dry run"
    );
    assert_eq!(
        count(&e.hook, "mutate", "patched"),
        mutated + 1,
        "mutating webhook called"
    );
    assert_eq!(
        count(&e.hook, "validate", "allowed"),
        validated + 1,
        "validating webhook called"
    );
    assert!(
        e.api.get_opt("dry").await.unwrap().is_none(),
        "nothing stored"
    );

    let mut bad = manifest("dry-bad");
    bad["spec"]["workflowRef"]["containerImage"] =
        json!(format!("quay.io/a/b@sha256:{}", "a".repeat(64)));
    bad["spec"]["workflowRef"]["containerDigest"] = json!(format!("sha256:{}", "c".repeat(64)));
    let out = kubectl(
        &["create", "-n", &e.ns, "--dry-run=server", "-f", "-"],
        Some(&bad),
    )
    .await;
    assert!(!out.success, "a dry run is validated too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_stopped_creates_are_rejected_not_admitted() {
    let mut e = env("wh-down").await;
    e.hook.stop().await;
    let out = kubectl(
        &["create", "-n", &e.ns, "-f", "-"],
        Some(&manifest("unguarded")),
    )
    .await;
    eprintln!("--- kubectl create with the webhook down:\n{}", out.text());
    assert!(!out.success);
    assert!(
        out.text().contains("failed calling webhook"),
        "{}",
        out.text()
    );
    assert!(
        e.api.get_opt("unguarded").await.unwrap().is_none(),
        "not silently admitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_admissions_are_promtool_clean() {
    let e = env("wh-metrics").await;
    let out = kubectl(
        &["create", "-n", &e.ns, "-f", "-"],
        Some(&manifest("counted")),
    )
    .await;
    assert!(out.success, "{}", out.text());
    let exposition = e.hook.metrics.render();
    assert!(
        exposition.contains("wfe_webhook_certificate_expiry_timestamp_seconds "),
        "{exposition}"
    );
    assert!(count(&e.hook, "validate", "allowed") >= 1);
    shared()
        .binaries
        .promtool_check(&exposition)
        .expect("promtool check metrics is clean");
}
