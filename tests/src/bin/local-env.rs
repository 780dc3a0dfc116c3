//! The local environment: a private etcd + kube-apiserver with the WorkflowExecution and Tekton CRDs,
//! the admission webhook serving and registered for the demo namespace, an example WorkflowExecution
//! created (with its defaults) and a malformed one rejected, and instructions to reach it with kubectl.
//! Runs until Ctrl-C (or SIGTERM), then stops everything and removes its files.

use std::process::ExitCode;

use wfe_tests::webhook::LocalWebhook;
use wfe_tests::{ControlPlane, repo_root};

const NAMESPACE: &str = "wfe-demo";

fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let cp = match ControlPlane::start() {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("local-env: the control plane could not start: {e:#}");
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
        let webhook = demo(&cp).await?;
        println!(
            "\nThe control plane is up at {server}; the admission webhook serves https://{hook} for namespace {NAMESPACE}.\n\n  export KUBECONFIG={kc}\n  kubectl get wfe -n {NAMESPACE}\n  kubectl describe wfe -n {NAMESPACE} restart-payment-api\n  kubectl create -n {NAMESPACE} -f examples/workflowexecution.yaml   # (try editing it)\n",
            server = cp.server,
            hook = webhook.addr,
            kc = cp.kubeconfig.display(),
        );
        if !once {
            println!("Press Ctrl-C to stop it and remove its files.");
            wait_for_signal().await;
            println!("stopping");
        }
        anyhow::Ok(())
    });
    drop(runtime);
    drop(cp);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-env: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts and registers the webhook, then shows what a user sees with kubectl.
async fn demo(cp: &ControlPlane) -> anyhow::Result<LocalWebhook> {
    let run = |args: Vec<String>, expect_ok: bool| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cp.kubectl_run(&refs, None).await;
        if out.success != expect_ok {
            anyhow::bail!(
                "kubectl {} unexpectedly {}: {}",
                args.join(" "),
                if out.success { "succeeded" } else { "failed" },
                out.text()
            );
        }
        anyhow::Ok(out.text())
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let example = repo_root().join("examples/workflowexecution.yaml");
    let invalid = repo_root().join("examples/invalid-workflowexecution.yaml");
    let (example, invalid) = (example.to_string_lossy(), invalid.to_string_lossy());

    print!(
        "{}",
        run(s(&["create", "namespace", NAMESPACE]), true).await?
    );
    let webhook = LocalWebhook::start().await?;
    let client = cp.try_client().await?;
    webhook.register(&client, NAMESPACE).await?;
    println!(
        "admission webhook registered for namespace {NAMESPACE} (https://{})",
        webhook.addr
    );

    println!("\n$ kubectl create -n {NAMESPACE} -f examples/workflowexecution.yaml");
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &example]), true).await?
    );
    println!("$ kubectl get wfe -n {NAMESPACE}");
    print!("{}", run(s(&["get", "wfe", "-n", NAMESPACE]), true).await?);
    println!(
        "$ kubectl get wfe restart-payment-api -n {NAMESPACE} -o jsonpath='{{.spec.executionConfig}}'   # defaulted by the webhook"
    );
    println!(
        "{}",
        run(
            s(&[
                "get",
                "wfe",
                "restart-payment-api",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.spec.executionConfig}"
            ]),
            true
        )
        .await?
    );
    println!("\n$ kubectl create -n {NAMESPACE} -f examples/invalid-workflowexecution.yaml");
    print!(
        "{}",
        run(s(&["create", "-n", NAMESPACE, "-f", &invalid]), false).await?
    );
    Ok(webhook)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            eprintln!("local-env: cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
