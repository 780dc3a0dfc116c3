//! Running the admission webhook for tests: served in-process on 127.0.0.1 with a generated CA, and
//! registered with the test API server for one namespace only (so tests cannot see each other's).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;
use wfe_shared::WorkflowExecution;
use wfe_shared::admission::clearance::{MUTATE_MATCH_CONDITION, VALIDATE_MATCH_CONDITION};
use wfe_shared::admission::defaulting::Defaults;
use wfe_shared::fixtures::execution;
use wfe_webhook::metrics::Metrics;
use wfe_webhook::server::{ServerConfig, serve};
use wfe_webhook::tls::CertPaths;

/// Names of the two webhooks, as the API server reports them in errors.
pub const MUTATING_WEBHOOK: &str = "mutate.workflowexecution.kubernaut.ai";
pub const VALIDATING_WEBHOOK: &str = "validate.workflowexecution.kubernaut.ai";

/// A webhook served on the caller's tokio runtime.
pub struct LocalWebhook {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub metrics: Metrics,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl LocalWebhook {
    /// Generates a CA and a serving certificate for 127.0.0.1 and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let ca = wfe_certs::CertificateAuthority::generate("wfe-webhook-test-ca")?;
        let pair = ca.issue_server("wfe-webhook", &["localhost".into(), "127.0.0.1".into()])?;
        let certs = CertPaths {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        std::fs::write(&certs.cert, pair.cert_pem)?;
        std::fs::write(&certs.key, pair.key_pem)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let metrics = Metrics::new()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(
            ServerConfig {
                admission: listener,
                health: None,
                certs,
                reload_interval: Duration::from_secs(1),
                defaults: Defaults::default(),
                max_request_bytes: 4 << 20,
                shutdown_grace: Duration::from_secs(2),
                read_timeout: Duration::from_secs(120),
                request_timeout: Duration::from_secs(10),
                metrics: metrics.clone(),
            },
            stop.clone(),
        ));
        Ok(Self {
            addr,
            ca_pem: ca.cert_pem(),
            metrics,
            stop,
            task: Some(task),
            _dir: dir,
        })
    }

    /// Stops serving and waits until the port is closed.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Registers this webhook for `namespace` (see [`register`]).
    pub async fn register(&self, client: &Client, namespace: &str) -> anyhow::Result<()> {
        register(client, namespace, self.addr, &self.ca_pem).await
    }
}

impl Drop for LocalWebhook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Registers both webhooks, served at `https://<addr>`, for WorkflowExecutions in `namespace` only,
/// with the production settings (`failurePolicy: Fail`, `sideEffects: None`, short timeout), and waits
/// until the API server calls them.
pub async fn register(
    client: &Client,
    namespace: &str,
    addr: SocketAddr,
    ca_pem: &str,
) -> anyhow::Result<()> {
    let name = format!("wfe-test-{namespace}");
    let selector = LabelSelector {
        match_labels: Some(
            [(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let config = |path: &str| WebhookClientConfig {
        url: Some(format!("https://{addr}/{path}")),
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: None,
    };
    let rules = |ops: &[&str]| {
        Some(vec![RuleWithOperations {
            api_groups: Some(vec![wfe_shared::api::GROUP.into()]),
            api_versions: Some(vec![wfe_shared::api::VERSION.into()]),
            operations: Some(ops.iter().map(|s| s.to_string()).collect()),
            resources: Some(vec!["workflowexecutions".into()]),
            scope: Some("Namespaced".into()),
        }])
    };
    let mutating = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: config("mutate"),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(5),
            match_policy: Some("Equivalent".into()),
            reinvocation_policy: Some("Never".into()),
            namespace_selector: Some(selector.clone()),
            rules: rules(&["CREATE", "UPDATE"]),
            match_conditions: Some(vec![MatchCondition {
                name: "create-or-clearance".into(),
                expression: MUTATE_MATCH_CONDITION.into(),
            }]),
            ..Default::default()
        }]),
    };
    let validating = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: VALIDATING_WEBHOOK.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: config("validate"),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(5),
            match_policy: Some("Equivalent".into()),
            namespace_selector: Some(selector),
            rules: rules(&["CREATE", "UPDATE"]),
            match_conditions: Some(vec![MatchCondition {
                name: "create-spec-or-clearance".into(),
                expression: VALIDATE_MATCH_CONDITION.into(),
            }]),
            ..Default::default()
        }]),
    };
    let pp = PatchParams::apply("wfe-tests").force();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(&mutating))
        .await
        .context("registering the mutating webhook")?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(&validating))
        .await
        .context("registering the validating webhook")?;
    wait_effective(client, namespace).await
}

/// Configurations reach the API server through an informer: probe with dry-run creates until
/// both webhooks visibly act (a default appears; a digest mismatch, which only the webhook
/// checks, is denied).
pub async fn wait_effective(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<WorkflowExecution> = Api::namespaced(client.clone(), namespace);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let probe = |digest: &str| -> anyhow::Result<WorkflowExecution> {
        Ok(serde_json::from_value(
            execution("webhook-probe")
                .remove("metadata.namespace")
                .remediation_request("probe")
                .workflow("probe", "1.0.0")
                .image("quay.io/probe/probe:v1")
                .set("spec.workflowRef.containerDigest", digest)
                .target("probe/deployment/probe")
                .json(),
        )?)
    };
    let good = probe(&format!("sha256:{}", "a".repeat(64)))?;
    let mut bad = good.clone();
    bad.spec.workflow_ref.container_image =
        format!("quay.io/probe/probe@sha256:{}", "b".repeat(64));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mutated = api
            .create(&dry, &good)
            .await
            .ok()
            .and_then(|o| o.spec.execution_config)
            .is_some_and(|c| c.timeout.is_some());
        let validated = api.create(&dry, &bad).await.is_err();
        if mutated && validated {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "webhooks not effective after 30s (mutating: {mutated}, validating: {validated})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
