//! The Helm chart's static checks, on the real API server: `helm lint --strict` and every rendered
//! manifest accepted by `kubectl apply --dry-run=server`, for the default values and for each
//! certificate mode and optional feature. (The chart's CRD equals the generated one:
//! `shared/tests/crd_drift.rs`.)

use serde_json::{Value, json};
use wfe_tools::chart::{Helm, KUBE_VERSION, chart_dir};
use wfe_tools::{ControlPlane, shared, unique_name};

/// The value sets checked, by name. `{exec}` is replaced by a fresh execution namespace.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("default", json!({})),
        (
            "cert-manager",
            json!({"webhook": {"tls": {"mode": "certManager"}}}),
        ),
        (
            "cert-manager-with-issuer",
            json!({"webhook": {"tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}}),
        ),
        (
            "user-secret",
            json!({"webhook": {"tls": {"mode": "secret", "secretName": "my-webhook-tls", "caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}}),
        ),
        (
            "url-and-everything-optional",
            json!({
                "webhook": {"url": "https://127.0.0.1:9443", "namespaceSelector": {"matchLabels": {"team": "sre"}}},
                "controller": {"flags": {"watch-namespace": "team-a", "audit-url": "https://datastorage.kubernaut.svc:8443"}},
                "serviceMonitor": {"enabled": true},
                "prometheusRule": {"enabled": true},
                "dashboard": {"enabled": true},
                "networkPolicy": {"enabled": true, "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
            }),
        ),
    ]
}

fn with_namespaces(mut values: Value, exec: &str) -> Value {
    values["executionNamespace"] = json!({"name": exec, "create": false});
    values
}

#[tokio::test]
async fn lint_strict_passes_for_every_value_set() {
    let cp = shared();
    let helm = Helm::new(cp).expect("helm");
    let chart = chart_dir().display().to_string();
    for (name, values) in cases() {
        let file = helm.values_file(&values).expect("values file");
        let out = helm
            .run(&[
                "lint",
                "--strict",
                "--kube-version",
                KUBE_VERSION,
                &chart,
                "-f",
                &file.display().to_string(),
            ])
            .await
            .expect("helm runs");
        assert!(out.success, "helm lint --strict ({name}):\n{}", out.text());
    }
}

#[tokio::test]
async fn bad_values_are_refused_naming_the_value() {
    let cp = shared();
    let helm = Helm::new(cp).expect("helm");
    for (values, expected) in [
        (
            json!({"controller": {"flags": {"cooldwn": "5m"}}}),
            "cooldwn",
        ),
        (
            json!({"controller": {"flags": {"cooldown": 5}}}),
            "/controller/flags/cooldown",
        ),
        (
            json!({"webhook": {"tls": {"mode": "selfsigned"}}}),
            "/webhook/tls/mode",
        ),
        (
            json!({"webhook": {"url": "http://insecure:9443"}}),
            "/webhook/url",
        ),
        (
            json!({"webhook": {"tls": {"mode": "secret"}}}),
            "webhook.tls.secretName",
        ),
        (
            json!({"webhook": {"tls": {"mode": "secret", "secretName": "x"}}}),
            "webhook.tls.caBundle",
        ),
        (
            json!({"webhook": {"tls": {"mode": "secret", "secretName": "x", "caBundle": "QUJD"}}}),
            "/webhook/tls/caBundle",
        ),
        (
            json!({"webhook": {"tls": {"mode": "certManager", "certManager": {"issuerRef": {"kind": "ClusterIssuer"}}}}}),
            "/webhook/tls/certManager/issuerRef",
        ),
        (
            json!({"controller": {"flags": {"lease-duration-seconds": 5}}}),
            "controller.flags.lease-grace-seconds (5) must be less than controller.flags.lease-duration-seconds (5)",
        ),
        (json!({"webhook": {"replicas": 0}}), "webhook.replicas is 0"),
        (json!({"listenHost": "localhost"}), "/listenHost"),
    ] {
        let err = helm
            .template("bad", "wfe-system", &values)
            .await
            .expect_err("refused");
        assert!(
            format!("{err:#}").contains(expected),
            "{values}: expected {expected:?} in: {err:#}"
        );
    }
}

async fn install_crds(cp: &ControlPlane) {
    let mut dirs = vec![
        cp.binaries.cert_manager_crds.clone(),
        cp.binaries.prometheus_operator_crds.clone(),
    ];
    dirs.sort();
    for dir in dirs {
        let out = cp
            .kubectl_run(
                &["apply", "--server-side", "-f", &dir.display().to_string()],
                None,
            )
            .await;
        assert!(
            out.success,
            "installing CRDs from {}: {}",
            dir.display(),
            out.text()
        );
    }
    for crd in [
        "certificates.cert-manager.io",
        "issuers.cert-manager.io",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ] {
        let out = cp
            .kubectl_run(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{crd}"),
                ],
                None,
            )
            .await;
        assert!(out.success, "{crd}: {}", out.text());
    }
}

/// What each value set must render, beyond the objects every set has.
fn expected_kinds(name: &str) -> Vec<&'static str> {
    match name {
        "default" => vec!["Secret"],
        "cert-manager" => vec!["Issuer", "Certificate"],
        "cert-manager-with-issuer" => vec!["Certificate"],
        "user-secret" => vec![],
        _ => vec![
            "Secret",
            "ServiceMonitor",
            "PrometheusRule",
            "ConfigMap",
            "NetworkPolicy",
        ],
    }
}

#[tokio::test]
async fn every_rendered_manifest_is_accepted_by_the_api_server() {
    let cp = shared();
    install_crds(cp).await;
    let client = cp.client().await;
    let helm = Helm::new(cp).expect("helm");
    for (name, values) in cases() {
        let release_ns = cp.namespace(&client, "chart-release").await;
        let exec_ns = cp.namespace(&client, "chart-exec").await;
        // The watched namespace of the last case must exist for its Role.
        let _ = cp
            .kubectl_run(&["create", "namespace", "team-a"], None)
            .await;
        let release = unique_name("r");
        let rendered = helm
            .template(&release, &release_ns, &with_namespaces(values, &exec_ns))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let kinds: Vec<&str> = rendered
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        for kind in [
            "ServiceAccount",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "RoleBinding",
        ]
        .into_iter()
        .chain(expected_kinds(name))
        {
            assert!(kinds.contains(&kind), "{name}: no {kind} in {kinds:?}");
        }
        let out = cp
            .kubectl_run(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered))
            .await;
        assert!(
            out.success,
            "{name}: the API server refused the chart:\n{}",
            out.text()
        );
        let applied = out.stdout.lines().count();
        assert_eq!(
            applied,
            kinds.len(),
            "{name}: every object applied:\n{}",
            out.stdout
        );
    }
}

#[test]
fn the_readme_values_table_is_current() {
    use wfe_tools::chart::{values_table, with_values_table};
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    let readme = std::fs::read_to_string(wfe_tools::repo_root().join("README.md")).expect("README");
    let table = values_table(&values);
    assert!(table.lines().count() > 80, "{table}");
    let expected = with_values_table(&readme, &table).expect("README has the table's markers");
    assert!(
        readme == expected,
        "README.md's values table is out of date: run `make chart-docs`"
    );
}

/// The flags the chart sets itself (from other values), by binary.
const CHART_SET_FLAGS: [(&str, &[&str]); 2] = [
    (
        "wfe-controller",
        &[
            "health-addr",
            "execution-namespace",
            "lease-namespace",
            "identity",
        ],
    ),
    (
        "wfe-webhook",
        &[
            "listen-addr",
            "health-addr",
            "tls-cert-file",
            "tls-key-file",
        ],
    ),
];

#[test]
fn every_flag_of_each_binary_is_reachable_from_the_values() {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values parse");
    for (binary, chart_set) in CHART_SET_FLAGS {
        let dir = tempfile::tempdir().expect("tempdir");
        let image =
            wfe_tools::images::unpack(binary, dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let help = std::process::Command::new(image.binary().expect("binary"))
            .arg("--help")
            .output()
            .expect("--help");
        let help = String::from_utf8_lossy(&help.stdout);
        // Option lines start with `--name` (or `-x, --name`); descriptions mention flags too.
        let mut flags: Vec<String> = help
            .lines()
            .map(str::trim_start)
            .filter_map(|l| {
                l.strip_prefix("--").or_else(|| {
                    l.get(4..)?
                        .strip_prefix("--")
                        .filter(|_| l.starts_with('-'))
                })
            })
            .filter_map(|f| f.split(['=', ' ', ',', '<']).next().map(str::to_owned))
            .filter(|f| !f.is_empty() && f != "help" && f != "version")
            .collect();
        flags.sort();
        flags.dedup();
        let component = binary.trim_start_matches("wfe-");
        let mut reachable: Vec<String> = values[component]["flags"]
            .as_object()
            .expect("flags")
            .keys()
            .cloned()
            .chain(chart_set.iter().map(|s| s.to_string()))
            .collect();
        reachable.sort();
        assert_eq!(
            flags, reachable,
            "{binary}: flags of --help vs values.{component}.flags + what the chart sets"
        );
    }
}
