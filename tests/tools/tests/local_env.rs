//! `local-env --once` (what `make up` runs, without waiting for Ctrl-C) brings up the product and
//! shows the examples reaching their outcome.

use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn local_environment_comes_up_and_shows_the_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_local-env"))
        .arg("--once")
        .output()
        .expect("local-env runs");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("workflowexecution.kubernaut.ai/restart-payment-api created"),
        "{all}"
    );
    // The controller and the Tekton stand-in take both examples to their outcome.
    assert!(
        all.contains("restart-payment-api   Completed   restart-deployment"),
        "{all}"
    );
    let failed_row = "restart-cache         Failed      restart-deployment   cache/statefulset/redis           OOMKilled";
    assert!(all.contains(failed_row), "{all}");
    assert!(
        all.contains("Failed in task remediate, step apply, exit code 137."),
        "{all}"
    );
    assert!(all.contains("export KUBECONFIG="), "{all}");
    // The webhook defaulted the example...
    assert!(
        all.contains(r#"{"serviceAccountName":"kubernaut-workflow-runner","timeout":"15m"}"#),
        "{all}"
    );
    // ...and rejected the malformed one, naming the field.
    assert!(
        all.contains("The WorkflowExecution \"broken-restart\" is invalid"),
        "{all}"
    );
    assert!(
        all.contains("spec.workflowRef.containerDigest: Invalid value"),
        "{all}"
    );
}
