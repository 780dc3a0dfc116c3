//! Tekton's own admission accepts the PipelineRuns our builder emits: each is fed to
//! `tekton-validate` (tests/tekton-validate, built from Tekton v1.15's Go module), which decodes it
//! as a `tekton.dev/v1` PipelineRun refusing unknown fields and runs Tekton's `SetDefaults` and
//! `Validate` as its webhook does on CREATE. A control case proves the validator can refuse.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use wfe_harness::Binaries;
use wfe_shared::fixtures::execution;
use wfe_shared::tekton::builder::build;

/// Runs the validator on `objects`; its exit success and one JSON result per object.
fn validate(objects: &[Value]) -> (bool, Vec<Value>) {
    let bins = Binaries::ensure().expect("the tools build (tests never skip)");
    let mut child = Command::new(&bins.tekton_validate)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tekton-validate runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(objects).expect("json"))
        .expect("write");
    let out = child.wait_with_output().expect("finishes");
    let results = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line per object"))
        .collect::<Vec<Value>>();
    assert_eq!(
        results.len(),
        objects.len(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), results)
}

/// Representative specs: every parameter shape, timeouts from 1s to 24h, service accounts,
/// namespaced and cluster-scoped targets, images by tag, by digest and behind a registry port.
fn representative() -> Vec<Value> {
    let long_value = "x".repeat(4096);
    let mut many = execution("many-params").target("payments/deployment/api");
    for i in 0..50 {
        many = many.param(&format!("P_{i:02}"), &format!("value {i}"));
    }
    let specs = vec![
        execution("defaults-only")
            .remove("spec.executionConfig")
            .target("payments/deployment/api"),
        execution("no-parameters").target("payments/deployment/api"),
        execution("shapes")
            .target("cache/statefulset/redis")
            .param("EMPTY", "")
            .param("SPACES", "memory leak suspected")
            .param("UNICODE", "größe — 大小 ✓")
            .param("JSONISH", r#"{"a": [1, 2], "b": "$(params.X)"}"#)
            .param("MULTILINE", "line one\nline two\n")
            .param("LONG", &long_value),
        many,
        execution("one-second")
            .timeout("1s")
            .target("a/deployment/b"),
        execution("ninety-minutes")
            .timeout("90m")
            .target("a/deployment/b"),
        execution("compound")
            .timeout("1h30m15s")
            .target("a/deployment/b"),
        execution("a-day").timeout("24h").target("a/deployment/b"),
        execution("custom-sa")
            .service_account("remediation-runner.payments")
            .target("a/deployment/b"),
        execution("cluster-scoped").target("node/worker-1"),
        execution("dotted-kind").target("ops/deployment.apps/api"),
        execution("by-digest")
            .image(&format!(
                "quay.io/kubernaut/restart@sha256:{}",
                "a".repeat(64)
            ))
            .set(
                "spec.workflowRef.containerDigest",
                format!("sha256:{}", "a".repeat(64)),
            )
            .target("a/deployment/b"),
        execution("registry-port")
            .image("registry.local:5000/team/workflows/restart:v1.2.0")
            .target("a/deployment/b"),
        execution("tag-and-digest")
            .image(&format!("ghcr.io/k/restart:v1@sha256:{}", "c".repeat(64)))
            .target("a/deployment/b"),
    ];
    specs
        .into_iter()
        .map(|b| {
            let wfe = b.build();
            let run = build(&wfe, "kubernaut-workflows");
            serde_json::to_value(&run).expect("PipelineRun serializes")
        })
        .collect()
}

#[test]
fn tekton_accepts_every_pipelinerun_our_builder_emits() {
    let objects = representative();
    assert!(objects.len() >= 14);
    let (ok, results) = validate(&objects);
    let refused: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("errors").is_some() || r.get("unknownFields").is_some())
        .collect();
    assert!(ok && refused.is_empty(), "Tekton refused: {refused:#?}");
}

#[test]
fn the_validator_refuses_what_tekton_refuses() {
    let good = representative().remove(0);
    let mut negative = good.clone();
    negative["spec"]["timeouts"]["pipeline"] = json!("-1h");
    let mut unknown = good.clone();
    unknown["spec"]["pipelinRef"] = json!({"name": "typo"});
    let mut neither = good.clone();
    neither["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("pipelineRef");
    let mut bad_param = good.clone();
    bad_param["spec"]["params"] = json!([{"name": "A", "value": "x"}, {"name": "A", "value": "y"}]);
    let (ok, results) = validate(&[good, negative, unknown, neither, bad_param]);
    assert!(!ok, "refusals make it exit 1");
    assert!(results[0].get("errors").is_none(), "{:?}", results[0]);
    assert!(
        results[1]["errors"]
            .as_str()
            .is_some_and(|e| e.contains("timeouts.pipeline")),
        "{:?}",
        results[1]
    );
    assert!(
        results[2]["unknownFields"]
            .as_str()
            .is_some_and(|e| e.contains("pipelinRef")),
        "{:?}",
        results[2]
    );
    assert!(
        results[3]["errors"]
            .as_str()
            .is_some_and(|e| e.contains("pipelineRef")),
        "{:?}",
        results[3]
    );
    assert!(
        results[4]["errors"]
            .as_str()
            .is_some_and(|e| e.contains("params")),
        "{:?}",
        results[4]
    );
}
