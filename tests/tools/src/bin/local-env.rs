//! The local environment: a private etcd + kube-apiserver with the WorkflowExecution and Tekton CRDs,
//! the product installed with its Helm chart (`helm install`, the webhook called at a local URL),
//! the webhook and the controller run as local processes with exactly the configuration and
//! ServiceAccount identity the chart gives their pods (`wfe_tools::pod`), and a Tekton stand-in.
//! It creates the example WorkflowExecution (defaulted by the webhook) and shows it reach Completed,
//! shows an OOMKilled one fail with its explanation, a second one on that target skipped by the
//! safety rules, a malformed one rejected, the audit trail a DataStorage-compatible receiver took
//! in, and prints how to reach it all with kubectl.
//! With `REAL_TEKTON=1` (or `--real-tekton`) the real Tekton runs instead of the stand-in
//! (`wfe_harness::RealTekton`: Tekton's controller and bundles resolver, a local registry holding the
//! examples' workflow bundles, KWOK playing the pods), and the examples point at those bundles.
//! Runs until Ctrl-C (or SIGTERM), then stops everything and removes its files.

use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use wfe_shared::api::names::pipeline_run_name;
use wfe_tools::audit::receiver::Receiver;
use wfe_tools::chart::{Helm, LocalPorts};
use wfe_tools::pod::LocalPod;
use wfe_tools::real_tekton::{Outcome, try_bundle};
use wfe_tools::tekton::TektonStandIn;
use wfe_tools::{ControlPlane, RealTekton, repo_root};

const NAMESPACE: &str = "wfe-demo";
const EXECUTION_NAMESPACE: &str = "kubernaut-workflows";
const RELEASE: &str = "wfe";
const RELEASE_NAMESPACE: &str = "wfe-system";

/// What keeps running until Ctrl-C.
struct Product {
    webhook: LocalPod,
    controller: LocalPod,
    receiver: Receiver,
    /// The example to edit and create again.
    example: std::path::PathBuf,
    _stand_in: Option<TektonStandIn>,
}

/// The image every example names; with the real Tekton it is replaced by a local bundle.
const EXAMPLE_IMAGE: &str = "quay.io/kubernaut/workflows/restart-deployment:v1.2.0";

/// Which Tekton runs the PipelineRuns.
enum Tekton {
    /// `wfe_tools::tekton::TektonStandIn`, started once the product runs.
    StandIn,
    /// The real one, with the bundles the examples run: (success, OOMKilled).
    Real {
        tekton: RealTekton,
        succeeds: String,
        oom_killed: String,
    },
}

impl Tekton {
    /// `REAL_TEKTON=1` or `--real-tekton`: the real Tekton, started against `cp` on this thread
    /// (its processes are bound to it) with the examples' bundles pushed.
    fn choose(cp: &ControlPlane) -> anyhow::Result<Self> {
        let real = std::env::args().any(|a| a == "--real-tekton")
            || std::env::var("REAL_TEKTON").is_ok_and(|v| !v.is_empty() && v != "0");
        if !real {
            return Ok(Self::StandIn);
        }
        println!(
            "starting the real Tekton (controller, bundles resolver, registry, scheduler, KWOK)"
        );
        let tekton = RealTekton::start(cp).context("the real Tekton")?;
        let succeeds = try_bundle(&tekton, Outcome::Succeed)?;
        let oom_killed = try_bundle(&tekton, Outcome::OomKilled)?;
        Ok(Self::Real {
            tekton,
            succeeds,
            oom_killed,
        })
    }

    /// The workflow bundle an example runs instead of [`EXAMPLE_IMAGE`], if it changes.
    fn bundle_for(&self, example: &str) -> Option<&str> {
        match self {
            Self::StandIn => None,
            Self::Real {
                succeeds,
                oom_killed,
                ..
            } => Some(if example.contains("oom") || example.contains("retry") {
                oom_killed
            } else {
                succeeds
            }),
        }
    }
}

/// The binaries the local pods run: `WFE_BIN_DIR`, by default the workspace's debug build
/// (`make up` builds it first).
fn binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::var_os("WFE_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug"));
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p wfe-controller -p wfe-webhook` (make up does), or set WFE_BIN_DIR",
        path.display()
    );
    Ok(path)
}

fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let cp = match wfe_tools::start() {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("local-env: the control plane could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The controller's and webhook's log goes to a file beside the kubeconfig: one line per
    // transition and side effect (WFE_LOG_LEVEL, WFE_LOG_FORMAT=json to change it).
    let log = cp.dir.join("product.log");
    if let Err(e) = init_log(&log) {
        eprintln!("local-env: cannot write {}: {e:#}", log.display());
        return ExitCode::FAILURE;
    }
    let tekton = match Tekton::choose(&cp) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("local-env: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("local-env: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let product = demo(&cp, &tekton).await?;
        let (which, tekton_lines) = match &tekton {
            Tekton::StandIn => (
                "the Tekton stand-in".to_owned(),
                format!("  tail -f {}   # the Tekton stand-in's log\n", log.display()),
            ),
            Tekton::Real {
                tekton,
                succeeds,
                oom_killed,
            } => (
                format!(
                    "the real Tekton (its controller and bundles resolver; KWOK plays the pods; bundles in the registry at {})",
                    tekton.registry
                ),
                format!(
                    "  kubectl get pipelineruns,taskruns,pods -n {EXECUTION_NAMESPACE}   # what Tekton made for each execution\n  kubectl get taskruns -n {EXECUTION_NAMESPACE} -l tekton.dev/pipelineRun={failed_run} -o 'custom-columns=TASK:.metadata.labels.tekton\\.dev/pipelineTask,REASON:.status.conditions[0].reason,MESSAGE:.status.conditions[0].message'\n  kubectl get pods -n {EXECUTION_NAMESPACE} -l tekton.dev/pipelineRun={failed_run} -o 'custom-columns=POD:.metadata.name,PHASE:.status.phase,STEPS:.status.containerStatuses[*].state.terminated.reason'\n  kubectl describe pipelinerun -n {EXECUTION_NAMESPACE} {failed_run}\n  tail -f {dir}/tekton-controller.log {dir}/tekton-resolvers.log {dir}/kwok.log\n  # workflow bundles in the registry (set an example's containerImage to one): {succeeds} (succeeds), {oom_killed} (step apply OOMKilled)\n",
                    dir = tekton.dir.display(),
                    failed_run = pipeline_run_name(OOM_TARGET),
                ),
            ),
        };
        println!(
            "\nThe control plane is up at {server}; the chart is installed as release {RELEASE} in {RELEASE_NAMESPACE}; its webhook (https://127.0.0.1:{hook}) and controller run as local processes with the chart's configuration and ServiceAccounts; {which} and the audit receiver ({audit}) run.\n\n  export KUBECONFIG={kc}\n  kubectl get wfe -n {NAMESPACE}\n  kubectl describe wfe -n {NAMESPACE} restart-payment-api\n  kubectl create -n {NAMESPACE} -f {example}   # (try editing it)\n  kubectl get deploy,sa,lease -n {RELEASE_NAMESPACE}   # what helm installed\n  tail -f {controller_log} {webhook_log}\n  curl -s 127.0.0.1:{controller_metrics}/metrics | grep wfe_controller_executions_total\n{tekton_lines}",
            example = product.example.display(),
            server = cp.server,
            hook = product.webhook.port("https").unwrap_or_default(),
            kc = cp.kubeconfig.display(),
            audit = product.receiver.url(),
            controller_log = product.controller.log.display(),
            webhook_log = product.webhook.log.display(),
            controller_metrics = product.controller.port("metrics").unwrap_or_default(),
        );
        if !once {
            println!("Press Ctrl-C to stop it and remove its files.");
            wfe_ops::signal::shutdown_signal().await;
            println!("stopping");
        }
        anyhow::Ok(())
    });
    drop(runtime);
    drop(tekton);
    drop(cp);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-env: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the webhook, the controller and (unless the real one runs) the Tekton stand-in, then
/// shows what a user sees.
async fn demo(cp: &ControlPlane, tekton: &Tekton) -> anyhow::Result<Product> {
    let run = |args: Vec<String>, expect_ok: bool| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cp.kubectl_run(&refs, None).await;
        if out.success != expect_ok {
            let what = if out.success { "succeeded" } else { "failed" };
            anyhow::bail!(
                "kubectl {} unexpectedly {what}: {}",
                args.join(" "),
                out.text()
            );
        }
        anyhow::Ok(out.text())
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let examples = Examples::prepare(cp, tekton)?;
    let file = |name: &str| examples.path(name).to_string_lossy().into_owned();
    let (example, oom, retry, invalid) = (
        file("workflowexecution.yaml"),
        file("workflowexecution-oom.yaml"),
        file("workflowexecution-retry.yaml"),
        file("invalid-workflowexecution.yaml"),
    );

    print!(
        "{}",
        run(s(&["create", "namespace", NAMESPACE]), true).await?
    );
    print!(
        "{}",
        run(s(&["create", "namespace", RELEASE_NAMESPACE]), true).await?
    );
    let client = cp.try_client().await?;
    let receiver = Receiver::start().await?;
    println!(
        "audit receiver (DataStorage-compatible, validating every batch against its OpenAPI document) at {}",
        receiver.url()
    );
    let ports = LocalPorts::free()?;
    let values = ports.values(
        EXECUTION_NAMESPACE,
        json!({
            "webhook": {"flags": {"log-format": "text"}},
            "controller": {"flags": {"log-format": "text", "audit-url": receiver.url()}},
        }),
    );
    let helm = Helm::new(cp)?;
    println!(
        "$ helm install {RELEASE} charts/workflowexecution-operator -n {RELEASE_NAMESPACE} --set webhook.url=https://127.0.0.1:{} ...",
        ports.webhook
    );
    let installed = helm
        .deploy("install", RELEASE, RELEASE_NAMESPACE, &values)
        .await?;
    print!(
        "{}",
        installed
            .lines()
            .filter(|l| l.starts_with("NAME:") || l.starts_with("STATUS:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let webhook = LocalPod::start(
        cp,
        &client,
        RELEASE_NAMESPACE,
        "wfe-webhook",
        &binary("wfe-webhook")?,
    )
    .await
    .context("the webhook's pod")?;
    let controller = LocalPod::start(
        cp,
        &client,
        RELEASE_NAMESPACE,
        "wfe-controller",
        &binary("wfe-controller")?,
    )
    .await
    .context("the controller's pod")?;
    wfe_tools::webhook::wait_effective(&client, NAMESPACE).await?;
    println!(
        "the chart's webhook (no API credentials) and controller (ServiceAccount {}, token from a TokenRequest) run as local processes",
        controller.service_account
    );
    let stand_in = match tekton {
        Tekton::StandIn => {
            println!(
                "PipelineRuns go to {EXECUTION_NAMESPACE}; the Tekton stand-in finishes each PipelineRun after 2s"
            );
            Some(TektonStandIn::start(
                client,
                EXECUTION_NAMESPACE,
                Duration::from_secs(2),
            ))
        }
        Tekton::Real { .. } => {
            // The chart leaves the PipelineRuns' ServiceAccount to the operator; Tekton needs it.
            let runner = [
                "create",
                "serviceaccount",
                RUNNER,
                "-n",
                EXECUTION_NAMESPACE,
            ];
            print!("{}", run(s(&runner), true).await?);
            println!(
                "PipelineRuns go to {EXECUTION_NAMESPACE} as ServiceAccount {RUNNER}; the real Tekton resolves each bundle and runs its TaskRuns, KWOK plays their pods"
            );
            None
        }
    };

    examples.explain();
    println!("\n$ kubectl create -n {NAMESPACE} -f examples/workflowexecution.yaml");
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &example]), true).await?
    );
    println!("$ kubectl create -n {NAMESPACE} -f examples/workflowexecution-oom.yaml");
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &oom]), true).await?
    );
    println!("$ kubectl get wfe -n {NAMESPACE}");
    print!("{}", run(s(&["get", "wfe", "-n", NAMESPACE]), true).await?);
    for (name, phase) in [
        ("restart-payment-api", "Completed"),
        ("restart-cache", "Failed"),
    ] {
        let wait = [
            "wait",
            "-n",
            NAMESPACE,
            &format!("wfe/{name}"),
            &format!("--for=jsonpath={{.status.phase}}={phase}"),
            "--timeout=120s",
        ];
        run(s(&wait), true).await?;
    }
    println!("$ kubectl get wfe -n {NAMESPACE}   # a few seconds later");
    print!("{}", run(s(&["get", "wfe", "-n", NAMESPACE]), true).await?);
    println!(
        "$ kubectl get wfe restart-payment-api -n {NAMESPACE} -o jsonpath='{{.spec.executionConfig}}'   # defaulted by the webhook"
    );
    let config = [
        "get",
        "wfe",
        "restart-payment-api",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.executionConfig}",
    ];
    println!("{}", run(s(&config), true).await?);
    println!(
        "$ kubectl get wfe restart-cache -n {NAMESPACE} -o jsonpath='{{.status.failureDetails.naturalLanguageSummary}}'"
    );
    let summary = [
        "get",
        "wfe",
        "restart-cache",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.failureDetails.naturalLanguageSummary}",
    ];
    println!("{}", run(s(&summary), true).await?);
    println!(
        "\n$ kubectl create -n {NAMESPACE} -f examples/workflowexecution-retry.yaml   # the same target again"
    );
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &retry]), true).await?
    );
    let skipped = [
        "wait",
        "-n",
        NAMESPACE,
        "wfe/restart-cache-again",
        "--for=jsonpath={.status.phase}=Skipped",
        "--timeout=60s",
    ];
    run(s(&skipped), true).await?;
    println!(
        "$ kubectl get wfe restart-cache-again -n {NAMESPACE} -o jsonpath='{{.status.skipDetails.message}}'"
    );
    let why = [
        "get",
        "wfe",
        "restart-cache-again",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.skipDetails.message}",
    ];
    println!("{}", run(s(&why), true).await?);
    println!("$ kubectl get pipelineruns -n {EXECUTION_NAMESPACE}");
    print!(
        "{}",
        run(s(&["get", "pipelineruns", "-n", EXECUTION_NAMESPACE]), true).await?
    );
    if let Tekton::Real { .. } = tekton {
        println!(
            "$ kubectl get taskruns,pods -n {EXECUTION_NAMESPACE}   # made by Tekton, played by KWOK"
        );
        let made = ["get", "taskruns,pods", "-n", EXECUTION_NAMESPACE];
        print!("{}", run(s(&made), true).await?);
    }

    println!("\n$ kubectl create -n {NAMESPACE} -f examples/invalid-workflowexecution.yaml");
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &invalid]), false).await?
    );
    print_audit_trail(&receiver).await;
    Ok(Product {
        webhook,
        controller,
        receiver,
        _stand_in: stand_in,
        example: examples.path("workflowexecution.yaml"),
    })
}

/// The ServiceAccount the chart's default `executionConfig.serviceAccountName` names.
const RUNNER: &str = "kubernaut-workflow-runner";
/// The target of `examples/workflowexecution-oom.yaml`.
const OOM_TARGET: &str = "cache/statefulset/redis";

/// The example files the demo creates: `examples/` itself, or with the real Tekton copies whose
/// `containerImage` names a bundle in the local registry.
struct Examples {
    dir: std::path::PathBuf,
    rewritten: Vec<(String, String)>,
}

impl Examples {
    const NAMES: [&str; 4] = [
        "workflowexecution.yaml",
        "workflowexecution-oom.yaml",
        "workflowexecution-retry.yaml",
        "invalid-workflowexecution.yaml",
    ];

    fn prepare(cp: &ControlPlane, tekton: &Tekton) -> anyhow::Result<Self> {
        let source = repo_root().join("examples");
        if let Tekton::StandIn = tekton {
            return Ok(Self {
                dir: source,
                rewritten: Vec::new(),
            });
        }
        let dir = cp.dir.join("examples");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut rewritten = Vec::new();
        for name in Self::NAMES {
            let from = source.join(name);
            let text = std::fs::read_to_string(&from)
                .with_context(|| format!("reading {}", from.display()))?;
            let text = match tekton.bundle_for(name) {
                Some(image) if text.contains(EXAMPLE_IMAGE) => {
                    rewritten.push((name.to_owned(), image.to_owned()));
                    text.replace(EXAMPLE_IMAGE, image)
                }
                _ => text,
            };
            let to = dir.join(name);
            std::fs::write(&to, text).with_context(|| format!("writing {}", to.display()))?;
        }
        Ok(Self { dir, rewritten })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// Says which examples run which bundle, when they were rewritten.
    fn explain(&self) {
        if self.rewritten.is_empty() {
            return;
        }
        println!(
            "\nThe examples run here from {} with containerImage {EXAMPLE_IMAGE} replaced by a local bundle:",
            self.dir.display()
        );
        for (name, image) in &self.rewritten {
            println!("  {name:<32} {image}");
        }
    }
}

/// The events the receiver took in for the examples, once the last one is there.
async fn print_audit_trail(receiver: &Receiver) {
    let expected = 3 + 3 + 2;
    for _ in 0..100 {
        if receiver.events().len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\nThe audit trail the receiver at {} accepted (POST /api/v1/audit/events/batch):",
        receiver.url()
    );
    for e in receiver.events() {
        let data = &e["event_data"];
        let detail = ["failure_reason", "skip_reason", "pipelinerun_name"]
            .iter()
            .find_map(|k| data[*k].as_str().map(|v| format!("{k}={v}")))
            .unwrap_or_default();
        println!(
            "  {:<20} {:<38} {:<8} {} {}",
            e["resource_id"].as_str().unwrap_or_default(),
            e["event_type"].as_str().unwrap_or_default(),
            e["event_outcome"].as_str().unwrap_or_default(),
            e["event_timestamp"].as_str().unwrap_or_default(),
            detail
        );
    }
}

/// Logs of the in-process controller and webhook, to `path`.
fn init_log(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let level = std::env::var("WFE_LOG_LEVEL")
        .unwrap_or_else(|_| "info,kube=warn,kube_lease_manager=warn".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(level)?)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file));
    match std::env::var("WFE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        _ => builder.init(),
    }
    Ok(())
}
