//! The local environment: a private etcd + kube-apiserver with the WorkflowExecution and Tekton CRDs,
//! an example WorkflowExecution created in it, and instructions to reach it with kubectl.
//! Runs until Ctrl-C (or SIGTERM), then stops everything and removes its files.

use std::process::ExitCode;

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
    if let Err(e) = demo(&cp) {
        eprintln!("local-env: {e:#}");
        return ExitCode::FAILURE;
    }
    println!(
        "\nThe control plane is up at {server}.\n\n  export KUBECONFIG={kc}\n  kubectl get wfe -n {NAMESPACE}\n  kubectl describe wfe -n {NAMESPACE} restart-payment-api\n  kubectl create -n {NAMESPACE} -f examples/workflowexecution.yaml   # (try editing it)\n",
        server = cp.server,
        kc = cp.kubeconfig.display(),
    );
    if once {
        return ExitCode::SUCCESS;
    }
    println!("Press Ctrl-C to stop it and remove its files.");
    wait_for_signal();
    println!("stopping");
    drop(cp);
    ExitCode::SUCCESS
}

/// Creates the example WorkflowExecution and shows it with kubectl.
fn demo(cp: &ControlPlane) -> anyhow::Result<()> {
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = cp.kubectl().args(args).output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            anyhow::bail!("kubectl {} failed: {text}", args.join(" "));
        }
        Ok(text)
    };
    let example = repo_root().join("examples/workflowexecution.yaml");
    let example = example.to_string_lossy();
    print!("{}", run(&["create", "namespace", NAMESPACE])?);
    print!("{}", run(&["create", "-n", NAMESPACE, "-f", &example])?);
    println!("$ kubectl get wfe -n {NAMESPACE}");
    print!("{}", run(&["get", "wfe", "-n", NAMESPACE])?);
    Ok(())
}

fn wait_for_signal() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("local-env: cannot wait for signals ({e}); stopping");
            return;
        }
    };
    runtime.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("local-env: cannot listen for SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
