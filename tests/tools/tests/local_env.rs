//! `local-env --once` (what `make up` runs, without waiting for Ctrl-C) brings up the product and
//! shows the examples reaching their outcome: with the Tekton stand-in, and with the real Tekton
//! (`REAL_TEKTON=1 make up`).

use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `local-env --once` with `args`; its whole output, after asserting it succeeded.
fn local_env(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_local-env"))
        .arg("--once")
        .args(args)
        .env_remove("REAL_TEKTON")
        .output()
        .expect("local-env runs");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    all
}

/// What a user sees whichever Tekton runs the PipelineRuns.
fn assert_the_examples_shown(all: &str) {
    assert!(
        all.contains("workflowexecution.kubernaut.ai/restart-payment-api created"),
        "{all}"
    );
    // The controller and Tekton take both examples to their outcome.
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
    // The safety rules skip a second run on the target whose workflow failed during execution.
    assert!(
        all.contains("restart-cache-again")
            && all.contains("failed during execution on target cache/statefulset/redis"),
        "{all}"
    );
    // The audit trail, as the receiver accepted it.
    for line in [
        "restart-payment-api  workflowexecution.selection.completed  success",
        "restart-payment-api  workflowexecution.workflow.completed   success",
        "restart-cache        workflowexecution.workflow.failed      failure",
        "restart-cache-again  workflowexecution.workflow.skipped     pending",
    ] {
        assert!(all.contains(line), "{line}:\n{all}");
    }
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

#[test]
fn local_environment_comes_up_and_shows_the_example() {
    let all = local_env(&[]);
    assert_the_examples_shown(&all);
    assert!(all.contains("the Tekton stand-in's log"), "{all}");
}

#[test]
fn local_environment_runs_the_examples_on_the_real_tekton() {
    let all = local_env(&["--real-tekton"]);
    assert_the_examples_shown(&all);
    // The examples ran bundles from the local registry...
    assert!(
        all.contains("/kubernaut/workflows/restart:succeed") && all.contains("restart:oom"),
        "{all}"
    );
    // ...through TaskRuns and Pods Tekton made, the OOMKilled step as Tekton reports it...
    assert!(all.contains("-remediate   False       StepOOM"), "{all}");
    assert!(all.contains("-remediate-pod   1/3     OOMKilled"), "{all}");
    // ...and the user is told how to look at them.
    assert!(
        all.contains("kubectl get pipelineruns,taskruns,pods -n kubernaut-workflows"),
        "{all}"
    );
    assert!(all.contains("real-tekton/tekton-controller.log"), "{all}");
}
