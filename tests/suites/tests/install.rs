//! Installing the product like a user, on the real API server: `helm install` of the chart; both
//! Deployments run as local processes from the unpacked images, with exactly the pod's arguments,
//! environment, mounted certificate and ServiceAccount token (`wfe_tools::pod`); a
//! WorkflowExecution from `kubectl create -f` defaulted and admitted through the chart's webhook
//! configurations and run to Completed; what each identity may not do, tried and refused; a real
//! Prometheus scraping both; `helm upgrade` keeping the certificate; `helm uninstall` leaving only
//! the CRD.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Node, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use wfe_shared::api::{Phase, WorkflowExecution};
use wfe_shared::tekton::PipelineRun;
use wfe_tools::chart::{Helm, LocalPorts, merge};
use wfe_tools::images;
use wfe_tools::pod::{LocalPod, token};
use wfe_tools::prometheus::{Prometheus, sample_value};
use wfe_tools::tekton::TektonStandIn;
use wfe_tools::{ControlPlane, eventually, repo_root, shared, unique_name};

/// One release of the chart for a test: its namespaces and the local ports it is given.
struct Release {
    name: String,
    namespace: String,
    execution_namespace: String,
    /// Where WorkflowExecutions are created (the only namespace this release's webhooks admit).
    apps: String,
    ports: LocalPorts,
}

impl Release {
    async fn new(cp: &ControlPlane, client: &Client) -> anyhow::Result<Self> {
        let name = unique_name("wfe");
        let apps = cp.namespace(client, "apps").await;
        // Only this release's webhooks admit in `apps` (other tests' releases share the API server).
        Api::<Namespace>::all(client.clone())
            .patch(
                &apps,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"wfe-release": name}}})),
            )
            .await?;
        Ok(Self {
            namespace: cp.namespace(client, "wfe-system").await,
            execution_namespace: unique_name("workflows"),
            apps,
            ports: LocalPorts::free()?,
            name,
        })
    }

    /// The local-run values, the webhooks scoped to this release's `apps` namespace, `extra`.
    fn values(&self, extra: Value) -> Value {
        let mut scoped =
            json!({"webhook": {"namespaceSelector": {"matchLabels": {"wfe-release": self.name}}}});
        merge(&mut scoped, extra);
        self.ports.values(&self.execution_namespace, scoped)
    }

    /// The chart's name prefix (a release named `wfe…` is used as it is).
    fn fullname(&self) -> String {
        self.name.clone()
    }
}

/// The two pods of a release, from the unpacked images.
struct Pods {
    webhook: LocalPod,
    controller: LocalPod,
    _images: tempfile::TempDir,
}

async fn start_pods(cp: &ControlPlane, client: &Client, release: &Release) -> Pods {
    let images = tempfile::tempdir().expect("tempdir");
    let unpack = |name: &str| {
        let image = images::unpack(name, &images.path().join(name))
            .unwrap_or_else(|e| panic!("unpacking {name}: {e:#}"));
        image.binary().expect("entrypoint")
    };
    let (webhook_bin, controller_bin) = (unpack("wfe-webhook"), unpack("wfe-controller"));
    let webhook = LocalPod::start(
        cp,
        client,
        &release.namespace,
        &format!("{}-webhook", release.fullname()),
        &webhook_bin,
    )
    .await
    .unwrap_or_else(|e| panic!("webhook pod: {e:#}"));
    let controller = LocalPod::start(
        cp,
        client,
        &release.namespace,
        &format!("{}-controller", release.fullname()),
        &controller_bin,
    )
    .await
    .unwrap_or_else(|e| panic!("controller pod: {e:#}"));
    Pods {
        webhook,
        controller,
        _images: images,
    }
}

async fn client_with_token(cp: &ControlPlane, token: &str) -> Client {
    let text = cp.kubeconfig_with_token(token).expect("kubeconfig");
    let kubeconfig: Kubeconfig = serde_saphyr::from_str(&text).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// `what` was refused with 403 Forbidden.
fn assert_forbidden<T: std::fmt::Debug>(who: &str, what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{who} should be forbidden to {what}, got {other:?}"),
    }
}

fn example_manifest(namespace: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/workflowexecution.yaml"))
        .expect("the example");
    text.replacen(
        "metadata:\n",
        &format!("metadata:\n  namespace: {namespace}\n"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_run_forbid_scrape_upgrade_uninstall() {
    let cp = shared();
    let client = cp.client().await;
    let helm = Helm::new(cp).expect("helm");
    let release = Release::new(cp, &client).await.expect("release");
    let values = release.values(json!({}));

    // helm install.
    let notes = helm
        .deploy("install", &release.name, &release.namespace, &values)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains(&format!(
            "PipelineRuns run in namespace {}",
            release.execution_namespace
        )),
        "NOTES.txt: {notes}"
    );

    let pods = start_pods(cp, &client, &release).await;
    assert!(
        !pods.webhook.has_token,
        "the webhook runs without any API credential"
    );
    assert!(
        pods.controller.has_token,
        "the controller runs as its ServiceAccount"
    );
    let _tekton = TektonStandIn::start(
        client.clone(),
        &release.execution_namespace,
        Duration::from_millis(300),
    );
    wfe_tools::webhook::wait_effective(&client, &release.apps)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the chart's webhook configurations: {e:#}\n{}",
                pods.webhook.log_text()
            )
        });

    // kubectl create -f: defaulted, admitted, run to Completed.
    let out = cp
        .kubectl_run(
            &["create", "-f", "-"],
            Some(&example_manifest(&release.apps)),
        )
        .await;
    assert!(out.success, "kubectl create: {}", out.text());
    let api: Api<WorkflowExecution> = Api::namespaced(client.clone(), &release.apps);
    let created = api.get("restart-payment-api").await.expect("created");
    let config = created
        .spec
        .execution_config
        .clone()
        .expect("executionConfig");
    assert_eq!(
        config.timeout.as_deref(),
        Some("15m"),
        "the example's own timeout is kept"
    );
    assert_eq!(
        config.service_account_name.as_deref(),
        Some("kubernaut-workflow-runner"),
        "defaulted by the webhook"
    );
    let done = eventually("the example Completed", Duration::from_secs(60), || async {
        api.get("restart-payment-api").await.ok().filter(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.phase == Phase::Completed)
        })
    })
    .await;
    assert!(done.status.is_some_and(|s| s.pipeline_run_ref.is_some()));

    // A malformed one is rejected by the webhook, naming the field.
    let bad = example_manifest(&release.apps)
        .replace("name: restart-payment-api", "name: malformed")
        .replace(
            "containerImage: quay.io/kubernaut/workflows/restart-deployment:v1.2.0",
            &format!("containerImage: quay.io/kubernaut/workflows/restart-deployment@sha256:{}\n    containerDigest: sha256:{}", "b".repeat(64), "a".repeat(64)),
        );
    let out = cp.kubectl_run(&["create", "-f", "-"], Some(&bad)).await;
    assert!(!out.success, "a malformed execution is refused");
    // Only the webhook compares the digest with the image's (the CRD schema cannot).
    assert!(
        out.stderr.contains("spec.workflowRef.containerDigest")
            && out.stderr.contains("must match the digest"),
        "{}",
        out.stderr
    );
    // The spec is immutable: an update that changes it reaches the webhook and is denied.
    let out = cp
        .kubectl_run(
            &[
                "patch",
                "wfe",
                "-n",
                &release.apps,
                "restart-payment-api",
                "--type=merge",
                "-p",
                r#"{"spec":{"confidence":0.5}}"#,
            ],
            None,
        )
        .await;
    assert!(
        !out.success && out.stderr.contains("immutable"),
        "{}",
        out.text()
    );

    // What each identity may not do, tried for real.
    let controller_token = token(
        &client,
        &release.namespace,
        &pods.controller.service_account,
    )
    .await
    .expect("token");
    let ctl = client_with_token(cp, &controller_token).await;
    let who = "the controller";
    let wfes_apps: Api<WorkflowExecution> = Api::namespaced(ctl.clone(), &release.apps);
    assert_forbidden(
        who,
        "create WorkflowExecutions",
        wfes_apps.create(&PostParams::default(), &created).await,
    );
    assert_forbidden(
        who,
        "replace (update) a WorkflowExecution",
        wfes_apps
            .replace(
                "restart-payment-api",
                &PostParams::default(),
                &api.get("restart-payment-api").await.expect("get"),
            )
            .await,
    );
    assert_forbidden(
        who,
        "delete a WorkflowExecution",
        wfes_apps
            .delete("restart-payment-api", &DeleteParams::default())
            .await,
    );
    assert_forbidden(
        who,
        "list Secrets in its own namespace",
        Api::<Secret>::namespaced(ctl.clone(), &release.namespace)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        who,
        "read the webhook's certificate",
        Api::<Secret>::namespaced(ctl.clone(), &release.namespace)
            .get(&format!("{}-webhook-tls", release.fullname()))
            .await,
    );
    assert_forbidden(
        who,
        "create ConfigMaps",
        Api::<ConfigMap>::namespaced(ctl.clone(), &release.namespace)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm"),
            )
            .await,
    );
    let run: PipelineRun = serde_json::from_value(json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "x"}, "spec": {"pipelineRef": {"name": "p"}}})).expect("run");
    assert_forbidden(
        who,
        "create PipelineRuns outside the execution namespace",
        Api::<PipelineRun>::namespaced(ctl.clone(), &release.apps)
            .create(&PostParams::default(), &run)
            .await,
    );
    let runs_exec: Api<PipelineRun> = Api::namespaced(ctl.clone(), &release.execution_namespace);
    let runs = runs_exec
        .list(&ListParams::default())
        .await
        .expect("the controller lists its PipelineRuns");
    let run_name = runs
        .items
        .first()
        .and_then(|r| r.metadata.name.clone())
        .expect("the lock (PipelineRun) is kept through the cooldown");
    assert_forbidden(
        who,
        "patch a PipelineRun",
        runs_exec
            .patch(
                &run_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await,
    );
    assert_forbidden(
        who,
        "list Pods in the execution namespace",
        Api::<Pod>::namespaced(ctl.clone(), &release.execution_namespace)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        who,
        "list Leases",
        Api::<Lease>::namespaced(ctl.clone(), &release.namespace)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        who,
        "create a Lease outside the release namespace",
        Api::<Lease>::namespaced(ctl.clone(), &release.execution_namespace)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("lease"),
            )
            .await,
    );
    assert_forbidden(
        who,
        "read another Lease",
        Api::<Lease>::namespaced(ctl.clone(), &release.namespace)
            .get("other")
            .await,
    );
    assert_forbidden(
        who,
        "create core/v1 Events",
        Api::<CoreEvent>::namespaced(ctl.clone(), &release.apps)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}, "involvedObject": {}}))
                    .expect("event"),
            )
            .await,
    );
    assert_forbidden(
        who,
        "list Nodes",
        Api::<Node>::all(ctl.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(who, "bind itself a ClusterRole", Api::<ClusterRoleBinding>::all(ctl.clone()).create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "x"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}})).expect("crb")).await);
    assert_forbidden(
        who,
        "change the webhook configuration",
        Api::<ValidatingWebhookConfiguration>::all(ctl.clone())
            .delete(
                &format!("{}-webhook", release.fullname()),
                &DeleteParams::default(),
            )
            .await,
    );
    // The webhook is given no token; even one issued for its ServiceAccount can do nothing.
    let webhook_token = token(&client, &release.namespace, &pods.webhook.service_account)
        .await
        .expect("token");
    let hook = client_with_token(cp, &webhook_token).await;
    let who = "the webhook's ServiceAccount";
    assert_forbidden(
        who,
        "read WorkflowExecutions",
        Api::<WorkflowExecution>::namespaced(hook.clone(), &release.apps)
            .get("restart-payment-api")
            .await,
    );
    assert_forbidden(
        who,
        "list Namespaces",
        Api::<Namespace>::all(hook.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        who,
        "read its own certificate",
        Api::<Secret>::namespaced(hook.clone(), &release.namespace)
            .get(&format!("{}-webhook-tls", release.fullname()))
            .await,
    );
    assert_forbidden(
        who,
        "read Leases",
        Api::<Lease>::namespaced(hook.clone(), &release.namespace)
            .get("wfe-controller-leader")
            .await,
    );

    // A real Prometheus scrapes both; every rule of the chart and every dashboard query evaluates.
    let prom_dir = cp.dir.join(unique_name("prometheus"));
    let chart = wfe_tools::chart::chart_dir();
    let prometheus = Prometheus::start(
        &cp.binaries.prometheus,
        &prom_dir,
        &[
            (
                "wfe-controller",
                pods.controller.port("metrics").expect("port"),
            ),
            ("wfe-webhook", pods.webhook.port("metrics").expect("port")),
        ],
        &[chart.join("files/prometheus-rules.yaml")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    for job in ["wfe-controller", "wfe-webhook"] {
        eventually(
            &format!("up{{job={job}}} == 1"),
            Duration::from_secs(30),
            || async {
                let r = prometheus
                    .query(&format!("up{{job=\"{job}\"}}"))
                    .await
                    .ok()?;
                (r.len() == 1 && sample_value(&r[0]) == Some(1.0)).then_some(())
            },
        )
        .await;
    }
    let completed = eventually(
        "the completed execution in a controller metric",
        Duration::from_secs(30),
        || async {
            let r = prometheus
                .query("sum(wfe_controller_executions_total{outcome=\"Completed\"})")
                .await
                .ok()?;
            r.first().and_then(sample_value).filter(|v| *v >= 1.0)
        },
    )
    .await;
    assert_eq!(completed, 1.0);
    let expiry = prometheus
        .query("min(wfe_webhook_certificate_expiry_timestamp_seconds) - time()")
        .await
        .expect("query");
    assert!(
        expiry
            .first()
            .and_then(sample_value)
            .is_some_and(|s| s > 300.0 * 86400.0),
        "the generated certificate lives 10 years: {expiry:?}"
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("files/dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            prometheus
                .query(expr)
                .await
                .unwrap_or_else(|e| panic!("panel {:?}: {e:#}", panel["title"]));
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} dashboard queries");
    let rules = eventually(
        "every alert rule evaluated without error, and silent (a rule evaluated before the first scrape may be pending for a moment)",
        Duration::from_secs(30),
        || async {
            let rules = prometheus.rules().await.ok()?;
            let healthy = rules.iter().all(|r| r["health"] == "ok");
            let silent = rules.iter().all(|r| r["state"] == "inactive");
            (!rules.is_empty() && healthy && silent).then_some(rules)
        },
    )
    .await;
    assert_eq!(rules.len(), 11, "{rules:?}");
    let firing: Vec<&Value> = rules
        .iter()
        .filter(|r| r["state"] == "firing" || r["state"] == "pending")
        .collect();
    assert!(
        firing.is_empty(),
        "a healthy install fires no alert: {firing:?}"
    );

    // helm upgrade keeps the generated certificate (and the CA in the configurations).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &release.namespace);
    let tls = format!("{}-webhook-tls", release.fullname());
    let before = secrets.get(&tls).await.expect("tls secret").data;
    let ca_before = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&format!("{}-webhook", release.fullname()))
        .await
        .expect("vwc")
        .webhooks
        .expect("webhooks")[0]
        .client_config
        .ca_bundle
        .clone();
    helm.deploy(
        "upgrade",
        &release.name,
        &release.namespace,
        &release.values(json!({"controller": {"flags": {"cooldown": "1m"}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        secrets.get(&tls).await.expect("tls secret").data,
        before,
        "helm upgrade keeps the certificate"
    );
    let ca_after = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&format!("{}-webhook", release.fullname()))
        .await
        .expect("vwc")
        .webhooks
        .expect("webhooks")[0]
        .client_config
        .ca_bundle
        .clone();
    assert_eq!(ca_after, ca_before, "and the CA the API server trusts");
    wfe_tools::webhook::wait_effective(&client, &release.apps)
        .await
        .expect("still admitting after the upgrade");

    // A name the certificate must carry changes (the webhook is now called as `localhost`): a new
    // certificate is issued by the same CA, so the caBundle stays; the pod picks it up.
    let mut by_name = release.values(json!({"controller": {"flags": {"cooldown": "1m"}}}));
    by_name["webhook"]["url"] = json!(format!("https://localhost:{}", release.ports.webhook));
    helm.deploy("upgrade", &release.name, &release.namespace, &by_name)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let reissued = secrets
        .get(&tls)
        .await
        .expect("tls secret")
        .data
        .expect("data");
    let before = before.expect("data");
    assert_eq!(reissued["ca.crt"], before["ca.crt"], "same CA");
    assert_ne!(
        reissued["tls.crt"], before["tls.crt"],
        "a new certificate for the new name"
    );
    let ca_renamed = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&format!("{}-webhook", release.fullname()))
        .await
        .expect("vwc")
        .webhooks
        .expect("webhooks")[0]
        .client_config
        .ca_bundle
        .clone();
    assert_eq!(
        ca_renamed, ca_before,
        "the CA the API server trusts is unchanged"
    );
    wfe_tools::webhook::wait_effective(&client, &release.apps)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "admitting at https://localhost: {e:#}\n{}",
                pods.webhook.log_text()
            )
        });

    // Graceful stop, then helm uninstall leaves nothing but the CRD.
    let Pods {
        mut webhook,
        mut controller,
        ..
    } = pods;
    assert!(
        controller.stop().await.expect("stops").success(),
        "{}",
        controller.log_text()
    );
    assert!(
        webhook.stop().await.expect("stops").success(),
        "{}",
        webhook.log_text()
    );
    drop(prometheus);
    let _ = api
        .delete("restart-payment-api", &DeleteParams::default())
        .await;
    helm.ok(&[
        "uninstall",
        &release.name,
        "--namespace",
        &release.namespace,
    ])
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let out = cp
        .kubectl_run(&["get", "all,secrets,configmaps,serviceaccounts,roles,rolebindings,leases,poddisruptionbudgets", "-n", &release.namespace, "-l", &selector, "-o", "name"], None)
        .await;
    assert!(
        out.success && out.stdout.trim().is_empty(),
        "left in the release namespace: {}",
        out.text()
    );
    let out = cp
        .kubectl_run(&["get", "clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations", "-l", &selector, "-o", "name"], None)
        .await;
    assert!(
        out.success && out.stdout.trim().is_empty(),
        "left cluster-wide: {}",
        out.text()
    );
    let out = cp
        .kubectl_run(
            &[
                "get",
                "roles,rolebindings",
                "-n",
                &release.execution_namespace,
                "-l",
                &selector,
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert!(
        out.stdout.trim().is_empty(),
        "left in the execution namespace: {}",
        out.text()
    );
    // The execution namespace is kept (helm.sh/resource-policy: keep): it holds the workflows'
    // ServiceAccounts and any PipelineRun still running. Nothing of the release is left in it.
    let exec_ns = Api::<Namespace>::all(client.clone())
        .get(&release.execution_namespace)
        .await
        .expect("the execution namespace is kept");
    assert!(
        exec_ns.metadata.deletion_timestamp.is_none(),
        "and not being deleted"
    );
    Api::<CustomResourceDefinition>::all(client.clone())
        .get("workflowexecutions.kubernaut.ai")
        .await
        .expect("the CRD stays");
}

/// A counter's value in a Prometheus text exposition (the sum over its series matching `labels`).
fn counter(exposition: &str, name: &str, labels: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(port: u16) -> String {
    wfe_harness::http_get(port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Runs a cert-manager binary (built from its Go module) against the control plane as admin.
fn cert_manager(
    cp: &ControlPlane,
    binary: &std::path::Path,
    args: &[String],
) -> std::process::Child {
    let mut cmd = std::process::Command::new(binary);
    cmd.arg(format!("--kubeconfig={}", cp.kubeconfig.display()))
        .args(args);
    let log = cp.dir.join(format!(
        "{}.log",
        unique_name(&binary.file_name().unwrap_or_default().to_string_lossy())
    ));
    wfe_harness::spawn_bound(cmd, &log).unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_manager_issues_injects_and_renews_without_a_failed_admission() {
    let cp = shared();
    let client = cp.client().await;
    let out = cp
        .kubectl_run(
            &[
                "apply",
                "--server-side",
                "-f",
                &cp.binaries.cert_manager_crds.display().to_string(),
            ],
            None,
        )
        .await;
    assert!(out.success, "cert-manager CRDs: {}", out.text());
    let out = cp
        .kubectl_run(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/certificates.cert-manager.io",
                "crd/issuers.cert-manager.io",
            ],
            None,
        )
        .await;
    assert!(out.success, "{}", out.text());
    let release = Release::new(cp, &client).await.expect("release");
    let mut controller = cert_manager(
        cp,
        &cp.binaries.cert_manager_controller,
        &[format!(
            "--cluster-resource-namespace={}",
            release.namespace
        )],
    );
    let mut cainjector = cert_manager(cp, &cp.binaries.cert_manager_cainjector, &[]);
    let helm = Helm::new(cp).expect("helm");
    // The webhook checks its files every second here (10 s by default).
    let values = release.values(json!({"webhook": {"tls": {"mode": "certManager"}, "flags": {"cert-reload-interval": "1s"}}}));
    helm.deploy("install", &release.name, &release.namespace, &values)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Issued, and the CA injected into both configurations.
    let certificate = format!("{}-webhook", release.fullname());
    let out = cp
        .kubectl_run(
            &[
                "wait",
                "-n",
                &release.namespace,
                "--for=condition=Ready",
                "--timeout=60s",
                &format!("certificate/{certificate}"),
            ],
            None,
        )
        .await;
    assert!(
        out.success,
        "the webhook's Certificate is issued: {}",
        out.text()
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &release.namespace);
    let tls = format!("{}-webhook-tls", release.fullname());
    let ca = secrets.get(&tls).await.expect("secret").data.expect("data")["ca.crt"]
        .0
        .clone();
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mwc: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    let name = format!("{}-webhook", release.fullname());
    eventually(
        "the CA injected into both webhook configurations",
        Duration::from_secs(30),
        || async {
            let v = vwc.get(&name).await.ok()?.webhooks?[0]
                .client_config
                .ca_bundle
                .clone()?;
            let m = mwc.get(&name).await.ok()?.webhooks?[0]
                .client_config
                .ca_bundle
                .clone()?;
            (v.0 == ca && m.0 == ca).then_some(())
        },
    )
    .await;

    let images = tempfile::tempdir().expect("tempdir");
    let binary = images::unpack("wfe-webhook", images.path())
        .expect("image")
        .binary()
        .expect("binary");
    let webhook = LocalPod::start(cp, &client, &release.namespace, &name, &binary)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    wfe_tools::webhook::wait_effective(&client, &release.apps)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "admissions through cert-manager's certificate: {e:#}\n{}",
                webhook.log_text()
            )
        });

    // Admissions run back to back while the certificate is renewed.
    let stop = tokio_util::sync::CancellationToken::new();
    let admissions = tokio::spawn({
        let (api, stop) = (
            Api::<WorkflowExecution>::namespaced(client.clone(), &release.apps),
            stop.clone(),
        );
        let manifest = example_manifest(&release.apps);
        async move {
            let wfe: WorkflowExecution = serde_saphyr::from_str(&manifest).expect("example");
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                match api.create(&dry, &wfe).await {
                    Ok(w)
                        if w.spec
                            .execution_config
                            .as_ref()
                            .is_some_and(|c| c.service_account_name.is_some()) =>
                    {
                        ok += 1
                    }
                    Ok(w) => failed.push(format!("not defaulted: {:?}", w.spec.execution_config)),
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        }
    });
    let metrics_port = webhook.port("metrics").expect("port");
    let reloads_before = counter(
        &scrape(metrics_port),
        "wfe_webhook_certificate_reloads_total",
        "success",
    );
    let cert_before = secrets.get(&tls).await.expect("secret").data.expect("data")["tls.crt"]
        .0
        .clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // What `cmctl renew` does.
    let patch = json!({"status": {"conditions": [{"type": "Issuing", "status": "True", "reason": "ManuallyTriggered", "message": "renewal forced by the test", "lastTransitionTime": now}]}});
    let out = cp
        .kubectl_run(
            &[
                "patch",
                "certificate",
                "-n",
                &release.namespace,
                &certificate,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch.to_string(),
            ],
            None,
        )
        .await;
    assert!(out.success, "{}", out.text());
    eventually("the Secret renewed", Duration::from_secs(30), || async {
        let cert = secrets.get(&tls).await.ok()?.data?["tls.crt"].0.clone();
        (cert != cert_before).then_some(())
    })
    .await;
    eventually(
        "the webhook reloaded the renewed certificate",
        Duration::from_secs(30),
        || async {
            let reloads = tokio::task::spawn_blocking(move || {
                counter(
                    &scrape(metrics_port),
                    "wfe_webhook_certificate_reloads_total",
                    "success",
                )
            })
            .await
            .ok()?;
            (reloads > reloads_before).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let (ok, failed) = admissions.await.expect("admissions");
    assert!(
        failed.is_empty(),
        "no admission fails during the renewal: {failed:?}"
    );
    assert!(ok >= 20, "{ok} admissions during the renewal");
    let ca_after = vwc
        .get(&name)
        .await
        .expect("vwc")
        .webhooks
        .expect("webhooks")[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("caBundle");
    assert_eq!(
        ca_after.0, ca,
        "renewing the serving certificate keeps the CA"
    );

    drop(webhook);
    helm.ok(&[
        "uninstall",
        &release.name,
        "--namespace",
        &release.namespace,
    ])
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let _ = controller.kill();
    let _ = controller.wait();
    let _ = cainjector.kill();
    let _ = cainjector.wait();
}
