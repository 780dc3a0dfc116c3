//! End to end through the webhook, the controller and the real Tekton (its controller and bundles
//! resolver, see `wfe_harness::RealTekton`): each WorkflowExecution's `workflowRef.containerImage`
//! is a real Tekton bundle in a local registry; Tekton resolves it and makes the TaskRuns and Pods,
//! and KWOK plays each pod's outcome. Every asserted reason, step and exit code is what Tekton wrote.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use wfe_harness::RealTekton;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names::pipeline_run_name;
use wfe_shared::api::{ConditionStatus, FailureDetails, FailureReason, Phase};
use wfe_shared::tekton::{PipelineRun, TaskRun};
use wfe_tools::controller::{ControllerReplica, settings};
use wfe_tools::env::{Env, env, spec};
use wfe_tools::eventually;
use wfe_tools::real_tekton::{self, FAILING_STEP, FAILING_TASK, Outcome, bundle};
use wfe_tools::webhook::LocalWebhook;

/// Long enough for Tekton's pace here (resolution, pods, KWOK's stage delays) on a busy machine.
const WAIT: Duration = Duration::from_secs(120);

struct RealEnv {
    e: Env,
    tekton: &'static RealTekton,
    _webhook: LocalWebhook,
    _controller: ControllerReplica,
}

/// A test's namespaces with the webhook registered for them, a controller, and the ServiceAccount
/// the PipelineRuns run as (no ServiceAccount controller runs here; Tekton reads it).
async fn real_env(prefix: &str) -> RealEnv {
    let (_, tekton) = tokio::task::spawn_blocking(real_tekton::shared)
        .await
        .expect("the real Tekton starts");
    let e = env(prefix).await;
    let webhook = LocalWebhook::start().await.expect("webhook starts");
    webhook
        .register(&e.client, &e.ns)
        .await
        .expect("webhook registered");
    let accounts: Api<ServiceAccount> = Api::namespaced(e.client.clone(), &e.exec_ns);
    let runner = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("runner".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &runner)
        .await
        .expect("ServiceAccount runner");
    let mut s = settings(&e.ns, &e.exec_ns, "replica-a");
    // Tekton's own timeout must be what ends a hanging run, not the controller's deadline.
    s.deadline_grace = Duration::from_secs(600);
    let controller = ControllerReplica::start(e.client.clone(), s);
    RealEnv {
        e,
        tekton,
        _webhook: webhook,
        _controller: controller,
    }
}

impl RealEnv {
    /// Creates `name` (through the webhook) running the `outcome` bundle on `target`.
    async fn create(&self, name: &str, target: &str, outcome: Outcome, timeout: &str) {
        let image = bundle(self.tekton, outcome);
        self.create_with_image(name, target, &image, timeout).await;
    }

    async fn create_with_image(&self, name: &str, target: &str, image: &str, timeout: &str) {
        let builder = spec(name, target, None).image(image).timeout(timeout);
        self.e.create_from(name, builder).await;
    }

    async fn wait_phase(&self, name: &str, phase: Phase) -> WorkflowExecution {
        let api = self.e.wfes.clone();
        let found = eventually(&format!("{name} to be {phase:?}"), WAIT, || {
            let api = api.clone();
            async move {
                let w = api.get(name).await.ok()?;
                let now = w.status.as_ref().map(|s| s.phase);
                (now == Some(phase) || now.is_some_and(Phase::is_terminal)).then_some(w)
            }
        })
        .await;
        let now = found.status.as_ref().map(|s| s.phase);
        if now.is_some_and(Phase::is_terminal) {
            self.save_what_tekton_wrote(name, &found).await;
        }
        assert_eq!(
            now,
            Some(phase),
            "{name} ended otherwise: {:#?}\n{}",
            found.status,
            self.tekton.log_tail("tekton-controller")
        );
        found
    }

    /// With `WFE_SAVE_TEKTON_STATUSES=<dir>`: the PipelineRun and TaskRuns of a finished execution
    /// as Tekton wrote them, in the fuzz target `tekton_status`'s input shape (its corpus was
    /// seeded this way).
    async fn save_what_tekton_wrote(&self, name: &str, wfe: &WorkflowExecution) {
        let Some(dir) = std::env::var_os("WFE_SAVE_TEKTON_STATUSES") else {
            return;
        };
        let target = wfe.spec.target_resource.as_str();
        // Untyped: every field Tekton wrote, not only what our types know.
        let api = |kind: &str| {
            let gvk = kube::api::GroupVersionKind::gvk("tekton.dev", "v1", kind);
            let resource = kube::api::ApiResource::from_gvk(&gvk);
            Api::<kube::api::DynamicObject>::namespaced_with(
                self.e.client.clone(),
                &self.e.exec_ns,
                &resource,
            )
        };
        let run_name = pipeline_run_name(target);
        let Ok(Some(run)) = api("PipelineRun").get_opt(&run_name).await else {
            return;
        };
        let selector = format!("tekton.dev/pipelineRun={run_name}");
        let task_runs = api("TaskRun")
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let input = serde_json::json!({"pipelineRun": run, "taskRuns": task_runs});
        let path = std::path::Path::new(&dir).join(format!("real-tekton-{name}.json"));
        std::fs::create_dir_all(&dir).expect("the statuses directory");
        std::fs::write(&path, serde_json::to_vec_pretty(&input).expect("JSON"))
            .expect("writing the statuses");
    }

    async fn failed(&self, name: &str) -> FailureDetails {
        let wfe = self.wait_phase(name, Phase::Failed).await;
        *wfe.status
            .and_then(|s| s.failure_details)
            .expect("a Failed execution has failureDetails")
    }

    async fn task_runs(&self, target: &str) -> Vec<TaskRun> {
        let api: Api<TaskRun> = Api::namespaced(self.e.client.clone(), &self.e.exec_ns);
        let selector = format!("tekton.dev/pipelineRun={}", pipeline_run_name(target));
        api.list(&ListParams::default().labels(&selector))
            .await
            .expect("list TaskRuns")
            .items
    }

    async fn pods(&self, target: &str) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.e.client.clone(), &self.e.exec_ns);
        let selector = format!("tekton.dev/pipelineRun={}", pipeline_run_name(target));
        api.list(&ListParams::default().labels(&selector))
            .await
            .expect("list Pods")
            .items
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeding_bundle_completes_with_the_task_counts_tekton_reports() {
    let r = real_env("rt-ok").await;
    let target = "payments/deployment/payment-api";
    r.create("restart-ok", target, Outcome::Succeed, "5m").await;
    let done = r.wait_phase("restart-ok", Phase::Completed).await;
    let summary = done
        .status
        .and_then(|s| s.pipeline_run_status)
        .expect("pipelineRunStatus");
    assert_eq!(summary.status, ConditionStatus::True);
    assert_eq!(summary.reason.as_deref(), Some("Succeeded"));
    assert_eq!(
        summary.message.as_deref(),
        Some("Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0")
    );
    assert_eq!((summary.completed_tasks, summary.total_tasks), (2, 2));
    // Tekton made a TaskRun per pipeline task and a pod for each, which KWOK ran.
    let mut tasks: Vec<String> = r
        .task_runs(target)
        .await
        .iter()
        .filter_map(|tr| {
            tr.metadata
                .labels
                .as_ref()?
                .get("tekton.dev/pipelineTask")
                .cloned()
        })
        .collect();
    tasks.sort();
    assert_eq!(tasks, ["check", FAILING_TASK]);
    let pods = r.pods(target).await;
    assert_eq!(pods.len(), 2);
    for pod in pods {
        let phase = pod.status.and_then(|s| s.phase);
        assert_eq!(phase.as_deref(), Some("Succeeded"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_exiting_1_fails_the_task_with_tektons_step_and_exit_code() {
    let r = real_env("rt-exit1").await;
    r.create(
        "restart-exit1",
        "payments/deployment/exit1",
        Outcome::Exit1,
        "5m",
    )
    .await;
    let d = r.failed("restart-exit1").await;
    assert_eq!(d.reason, FailureReason::TaskFailed, "{d:#?}");
    assert_eq!(d.failed_task_name, FAILING_TASK);
    assert_eq!(d.failed_task_index, 1, "the second task: check ran first");
    assert_eq!(d.failed_step_name.as_deref(), Some(FAILING_STEP));
    assert_eq!(d.exit_code, Some(1));
    assert!(
        d.message.contains("\"step-apply\" exited with code 1"),
        "Tekton's message: {}",
        d.message
    );
    assert!(d.was_execution_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_step_is_oom_killed_with_exit_code_137() {
    let r = real_env("rt-oom").await;
    r.create(
        "restart-oom",
        "payments/deployment/oom",
        Outcome::OomKilled,
        "5m",
    )
    .await;
    let d = r.failed("restart-oom").await;
    assert_eq!(d.reason, FailureReason::OOMKilled, "{d:#?}");
    assert_eq!(d.failed_task_name, FAILING_TASK);
    assert_eq!(d.failed_step_name.as_deref(), Some(FAILING_STEP));
    assert_eq!(d.exit_code, Some(137));
    assert!(d.message.contains("OOMKilled"), "{}", d.message);
    assert!(d.was_execution_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pull_failure_is_not_an_execution_failure() {
    let r = real_env("rt-pull").await;
    r.create(
        "restart-pull",
        "payments/deployment/pull",
        Outcome::ImagePullFails,
        "5m",
    )
    .await;
    let d = r.failed("restart-pull").await;
    assert_eq!(d.reason, FailureReason::ImagePullBackOff, "{d:#?}");
    assert_eq!(d.failed_task_name, FAILING_TASK);
    assert_eq!(d.failed_step_name.as_deref(), Some(FAILING_STEP));
    assert_eq!(d.exit_code, None, "no step ran: Tekton's exit 1 is its own");
    assert!(!d.was_execution_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tektons_timeout_is_deadline_exceeded() {
    let r = real_env("rt-timeout").await;
    let target = "payments/deployment/hang";
    r.create("restart-hang", target, Outcome::Hangs, "10s")
        .await;
    let wfe = r.wait_phase("restart-hang", Phase::Failed).await;
    let status = wfe.status.expect("status");
    let summary = status.pipeline_run_status.expect("pipelineRunStatus");
    assert_eq!(
        summary.reason.as_deref(),
        Some("PipelineRunTimeout"),
        "Tekton's timeout fired (the controller's deadline is 10 min away)"
    );
    let d = status.failure_details.expect("failureDetails");
    assert_eq!(d.reason, FailureReason::DeadlineExceeded, "{d:#?}");
    assert_eq!(d.failed_task_name, FAILING_TASK);
    assert_eq!(
        d.exit_code, None,
        "cancelled steps did not exit by themselves"
    );
    assert!(
        d.message.contains("failed to finish within"),
        "{}",
        d.message
    );
    assert!(d.was_execution_failure, "the workflow was running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_that_does_not_exist_is_a_configuration_error_naming_it() {
    let r = real_env("rt-missing").await;
    let image = format!("{}/kubernaut/workflows/absent:v9", r.tekton.registry);
    r.create_with_image(
        "restart-missing",
        "payments/deployment/missing",
        &image,
        "5m",
    )
    .await;
    let d = r.failed("restart-missing").await;
    assert_eq!(d.reason, FailureReason::ConfigurationError, "{d:#?}");
    assert!(
        d.message
            .starts_with(&format!("workflow bundle {image} could not be resolved: ")),
        "the message names the bundle: {}",
        d.message
    );
    assert!(
        d.message.contains("NAME_UNKNOWN"),
        "and says what the registry answered: {}",
        d.message
    );
    assert_eq!(d.failed_task_index, -1);
    assert!(!d.was_execution_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_execution_removes_its_pipeline_run_task_runs_and_pods() {
    let r = real_env("rt-delete").await;
    let target = "payments/deployment/delete";
    r.create("restart-delete", target, Outcome::Hangs, "5m")
        .await;
    r.wait_phase("restart-delete", Phase::Running).await;
    // Wait until Tekton runs the hanging step's pod.
    eventually("the remediate pod to run", WAIT, || async {
        let pods = r.pods(target).await;
        pods.iter()
            .any(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("tekton.dev/pipelineTask"))
                    == Some(&FAILING_TASK.to_owned())
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .then_some(())
    })
    .await;
    r.e.wfes
        .delete("restart-delete", &DeleteParams::default())
        .await
        .expect("delete");
    let runs: Api<PipelineRun> = r.e.runs.clone();
    eventually(
        "the execution, its PipelineRun, TaskRuns and Pods to be gone",
        WAIT,
        || async {
            let wfe_gone = r.e.wfes.get_opt("restart-delete").await.ok()?.is_none();
            let run_gone = runs
                .get_opt(&pipeline_run_name(target))
                .await
                .ok()?
                .is_none();
            (wfe_gone
                && run_gone
                && r.task_runs(target).await.is_empty()
                && r.pods(target).await.is_empty())
            .then_some(())
        },
    )
    .await;
}
