//! The exact API calls of a reconcile, scripted against a mock API server (tower-test): a call the
//! script does not expect — an extra status write, a repeated create — fails the test.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};
use wfe_controller::cache::Cached;
use wfe_controller::context::{Context, Settings};
use wfe_controller::metrics::Metrics;
use wfe_controller::reconcile::reconcile;
use wfe_shared::WorkflowExecution;
use wfe_shared::fixtures::execution;
use wfe_shared::tekton::PipelineRun;
use wfe_shared::tekton::observed::{ObservedRun, ObservedTaskRun};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NOW: i64 = 1_800_000_000;

fn settings() -> Settings {
    Settings {
        execution_namespace: "exec".into(),
        watch_namespace: None,
        rules: wfe_shared::safety::Rules::default(),
        deadline_grace: Duration::from_secs(60),
        pipeline_start_timeout: Duration::from_secs(300),
        audit_deletion_grace: Duration::from_secs(60),
        concurrency: 1,
        lease_name: "l".into(),
        lease_namespace: "exec".into(),
        lease_duration_seconds: 15,
        lease_grace_seconds: 5,
        identity: "test".into(),
    }
}

/// A context over a mock API server, with the given PipelineRuns already cached.
fn context(runs: Vec<PipelineRun>) -> (Arc<Context>, Handle) {
    context_with(runs, vec![])
}

/// Cached as the controller caches them: parsed from the JSON the API server would send.
fn cached<T: serde::Serialize, C: serde::de::DeserializeOwned>(obj: T) -> C {
    serde_json::from_value(serde_json::to_value(obj).unwrap()).unwrap()
}

/// A context with PipelineRuns and TaskRuns already cached.
fn context_with(runs: Vec<PipelineRun>, task_runs: Vec<Value>) -> (Arc<Context>, Handle) {
    let mut task_run_writer: Writer<Cached<ObservedTaskRun>> = Writer::default();
    for tr in task_runs {
        task_run_writer.apply_watcher_event(&watcher::Event::Apply(Cached(cached(tr))));
    }
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut writer: Writer<Cached<ObservedRun>> = Writer::default();
    for run in runs {
        writer.apply_watcher_event(&watcher::Event::Apply(Cached(cached::<_, ObservedRun>(
            run,
        ))));
    }
    let ctx = Context {
        reporter: Reporter {
            controller: "workflowexecution-controller".into(),
            instance: None,
        },
        client,
        settings: settings(),
        runs: writer.as_reader(),
        task_runs: task_run_writer.as_reader(),
        targets: Arc::new(wfe_controller::targets::Targets::new(
            Writer::default().as_reader(),
        )),
        audit: audit_sink(),
        metrics: Metrics::new().unwrap(),
        clock: Arc::new(|| k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap()),
        leading: Arc::new(AtomicBool::new(true)),
        own_writes: Default::default(),
        hook: None,
    };
    (Arc::new(ctx), handle)
}

/// Audit events as JSON lines into a file that outlives the test (no API calls).
fn audit_sink() -> Arc<wfe_controller::audit::AuditSink> {
    let file = std::env::temp_dir().join(format!("wfe-calls-audit-{}.jsonl", std::process::id()));
    let config = wfe_controller::audit::AuditConfig {
        url: None,
        ca_file: None,
        token_file: None,
        timeout: Duration::from_secs(5),
        file: Some(file),
        buffer: 100,
        batch_max: 100,
    };
    wfe_controller::audit::AuditSink::from_config(&config, Metrics::new().unwrap()).unwrap()
}

fn wfe(status: Value, finalized: bool) -> WorkflowExecution {
    let w = execution("restart-api")
        .resource_version("10")
        .generation(1)
        .uid("u1")
        .workflow("restart", "1.0.0")
        .image("quay.io/k/r:v1")
        .target("payments/deployment/api")
        .timeout("10m")
        .service_account("runner")
        .status(status);
    if finalized { w.finalized() } else { w }.build()
}

/// A Running execution and its PipelineRun (built as the controller builds it) with `run_status`.
fn running(run_status: Value) -> (WorkflowExecution, PipelineRun) {
    let mut obj = wfe(
        json!({"phase": "Running", "startTime": "2027-01-15T07:59:00Z", "pipelineRunRef": {"name": "x"}}),
        true,
    );
    let mut run = wfe_shared::tekton::builder::build(&obj, "exec");
    obj.status
        .as_mut()
        .unwrap()
        .pipeline_run_ref
        .as_mut()
        .unwrap()
        .name = run.metadata.name.clone().unwrap();
    run.status = serde_json::from_value(run_status).unwrap();
    (obj, run)
}

/// One expected call: method, path (without query), and the answer.
struct Call {
    method: &'static str,
    path: String,
    status: u16,
    reply: Value,
}

fn call(method: &'static str, path: &str, status: u16, reply: Value) -> Call {
    Call {
        method,
        path: path.into(),
        status,
        reply,
    }
}

/// Answers exactly `script`, in order; returns the request bodies; fails on any other call.
async fn serve(mut handle: Handle, script: Vec<Call>) -> Vec<Value> {
    let mut bodies = Vec::new();
    for expected in script {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "expected {} {} but no call came",
                    expected.method, expected.path
                )
            })
            .expect("client alive");
        let (method, path) = (
            request.method().to_string(),
            request.uri().path().to_owned(),
        );
        assert_eq!(
            (method.as_str(), path.as_str()),
            (expected.method, expected.path.as_str()),
            "unexpected call order"
        );
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        bodies.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        send.send_response(
            Response::builder()
                .status(expected.status)
                .body(Body::from(serde_json::to_vec(&expected.reply).unwrap()))
                .unwrap(),
        );
    }
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        panic!(
            "unexpected extra call: {} {}",
            request.method(),
            request.uri()
        );
    }
    bodies
}

/// The status write succeeding, answered with `obj`.
fn status_written(obj: &WorkflowExecution) -> Call {
    call(
        "PUT",
        &status_path(),
        200,
        serde_json::to_value(obj).unwrap(),
    )
}

fn status_path() -> String {
    "/apis/kubernaut.ai/v1alpha1/namespaces/team-a/workflowexecutions/restart-api/status".into()
}

const RUNS: &str = "/apis/tekton.dev/v1/namespaces/exec/pipelineruns";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
           "message": "the object has been modified; please apply your changes to the latest version and try again"})
}

fn event_reply() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "team-a"}, "eventTime": "2027-01-15T08:00:00.000000Z"})
}

#[tokio::test]
async fn pending_creates_the_pipeline_run_then_writes_status_once_and_one_event() {
    let obj = wfe(json!({"phase": "Pending"}), true);
    let run = wfe_shared::tekton::builder::build(&obj, "exec");
    let (ctx, handle) = context(vec![]);
    let verifier = tokio::spawn(serve(
        handle,
        vec![
            call("POST", RUNS, 201, serde_json::to_value(&run).unwrap()),
            status_written(&obj),
            call("POST", EVENTS, 201, event_reply()),
        ],
    ));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile");
    let bodies = verifier.await.unwrap();
    assert_eq!(
        bodies[0]["metadata"]["name"],
        run.metadata.name.clone().unwrap()
    );
    let status = &bodies[1];
    assert_eq!(
        status["metadata"]["resourceVersion"], "10",
        "optimistic concurrency"
    );
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(
        status["status"]["pipelineRunRef"]["name"],
        run.metadata.name.clone().unwrap()
    );
    assert_eq!(bodies[2]["reason"], "PipelineRunCreated");
}

#[tokio::test]
async fn a_409_on_the_status_write_is_reread_and_recomputed_without_repeating_the_create_or_the_event()
 {
    let obj = wfe(json!({"phase": "Pending"}), true);
    let run = wfe_shared::tekton::builder::build(&obj, "exec");
    let mut newer = obj.clone();
    newer.metadata.resource_version = Some("11".into());
    let (ctx, handle) = context(vec![]);
    let verifier = tokio::spawn(serve(
        handle,
        vec![
            call("POST", RUNS, 201, serde_json::to_value(&run).unwrap()),
            call("PUT", &status_path(), 409, conflict()),
            call(
                "GET",
                "/apis/kubernaut.ai/v1alpha1/namespaces/team-a/workflowexecutions/restart-api",
                200,
                serde_json::to_value(&newer).unwrap(),
            ),
            status_written(&newer),
            call("POST", EVENTS, 201, event_reply()),
        ],
    ));
    reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    let bodies = verifier.await.unwrap();
    assert_eq!(
        bodies[3]["metadata"]["resourceVersion"], "11",
        "retried on the re-read version"
    );
    assert_eq!(bodies[3]["status"]["phase"], "Running");
    assert_eq!(
        ctx.metrics
            .status_writes
            .with_label_values(&["conflict"])
            .get(),
        1
    );
    assert_eq!(
        ctx.metrics
            .status_writes
            .with_label_values(&["written"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_no_op_reconcile_makes_no_call_at_all() {
    let (obj, run) = running(json!({"startTime": "2027-01-15T07:59:01Z",
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}]}));
    let (ctx, handle) = context(vec![run]);
    let verifier = tokio::spawn(serve(handle, vec![]));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile");
    verifier.await.unwrap();
}

#[tokio::test]
async fn completion_is_one_status_write_and_one_event() {
    let (obj, run) = running(
        json!({"startTime": "2027-01-15T07:59:01Z", "completionTime": "2027-01-15T08:00:00Z",
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}),
    );
    let (ctx, handle) = context(vec![run]);
    let verifier = tokio::spawn(serve(
        handle,
        vec![
            status_written(&obj),
            call("POST", EVENTS, 201, event_reply()),
        ],
    ));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile");
    let bodies = verifier.await.unwrap();
    assert_eq!(bodies[0]["status"]["phase"], "Completed");
    assert_eq!(bodies[0]["status"]["duration"], "1m0s");
    assert_eq!(bodies[1]["reason"], "WorkflowCompleted");
}

#[tokio::test]
async fn without_leadership_nothing_is_written() {
    let obj = wfe(json!({"phase": "Pending"}), true);
    let (ctx, handle) = context(vec![]);
    ctx.leading
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let verifier = tokio::spawn(serve(handle, vec![]));
    let result = reconcile(Arc::new(obj), ctx).await;
    assert!(
        matches!(result, Err(wfe_controller::error::Error::NotLeader)),
        "{result:?}"
    );
    verifier.await.unwrap();
}

/// A Running execution whose PipelineRun failed in task `remediate` (TaskRun `<run>-remediate`).
fn failed_run() -> (WorkflowExecution, PipelineRun, Value) {
    let name = wfe_shared::api::names::pipeline_run_name("payments/deployment/api");
    let tr_name = format!("{name}-remediate");
    let (obj, run) = running(json!({
        "startTime": "2027-01-15T07:59:01Z", "completionTime": "2027-01-15T08:00:00Z",
        "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed", "message": "Tasks Completed: 1 (Failed: 1)"}],
        "childReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": tr_name, "pipelineTaskName": "remediate"}]
    }));
    let task_run = json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": tr_name, "namespace": "exec", "resourceVersion": "5",
                     "labels": {"tekton.dev/pipelineRun": name, "kubernaut.ai/workflow-execution": "restart-api",
                                "kubernaut.ai/source-namespace": "team-a"}},
        "spec": {},
        "status": {"conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed", "message": "step apply exited 137"}],
                   "steps": [{"name": "apply", "container": "step-apply", "terminated": {"exitCode": 137, "reason": "OOMKilled"}}]}
    });
    (obj, run, task_run)
}

#[tokio::test]
async fn a_failure_is_classified_from_cached_task_runs_without_reading_them() {
    let (obj, run, task_run) = failed_run();
    let (ctx, handle) = context_with(vec![run], vec![task_run]);
    let verifier = tokio::spawn(serve(
        handle,
        vec![
            status_written(&obj),
            call("POST", EVENTS, 201, event_reply()),
        ],
    ));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile");
    let bodies = verifier.await.unwrap();
    let details = &bodies[0]["status"]["failureDetails"];
    assert_eq!(bodies[0]["status"]["phase"], "Failed");
    assert_eq!(details["reason"], "OOMKilled");
    assert_eq!(details["failedTaskName"], "remediate");
    assert_eq!(details["exitCode"], 137);
}

#[tokio::test]
async fn task_runs_missing_from_the_cache_are_read_once() {
    let (obj, run, task_run) = failed_run();
    let (ctx, handle) = context_with(vec![run], vec![]);
    let verifier = tokio::spawn(serve(
        handle,
        vec![
            call(
                "GET",
                "/apis/tekton.dev/v1/namespaces/exec/taskruns",
                200,
                json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRunList", "metadata": {}, "items": [task_run]}),
            ),
            status_written(&obj),
            call("POST", EVENTS, 201, event_reply()),
        ],
    ));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile");
    let bodies = verifier.await.unwrap();
    assert_eq!(bodies[1]["status"]["failureDetails"]["reason"], "OOMKilled");
}
