//! Every audit event the controller builds, checked against DataStorage's published document
//! (parsed now, not copied) and against this project's schema file. A change that breaks
//! compatibility fails here.

use serde_json::{Value, json};
use wfe_shared::WorkflowExecution;
use wfe_shared::api::AuditEventType as E;
use wfe_shared::audit::{self, AuditEvent};
use wfe_shared::fixtures::execution;
use wfe_tools::audit::contract::Contract;

const T0: &str = "2027-01-15T08:00:00Z";
const T1: &str = "2027-01-15T08:02:30Z";

fn base() -> wfe_shared::fixtures::ExecutionBuilder {
    execution("restart-api")
        .uid("3f6d2c1e-0000-4000-8000-000000000001")
        .remediation_request("rr-payment-api-oom")
        .param("REPLICAS", "3")
        .param("GRACE_PERIOD_SECONDS", "30")
}

fn with(status: Value) -> WorkflowExecution {
    base().status(status).build()
}

fn failure(reason: &str, during: bool) -> Value {
    json!({"failedTaskIndex": 0, "failedTaskName": "remediate", "failedStepName": "apply",
           "reason": reason, "message": "step apply: exit 137", "exitCode": 137, "failedAt": T1,
           "executionTimeBeforeFailure": "2m30s", "naturalLanguageSummary": "s",
           "wasExecutionFailure": during})
}

/// Every event of every kind of execution, built as the controller builds them.
fn all_events() -> Vec<AuditEvent> {
    let running = json!({"phase": "Running", "startTime": T0,
                         "pipelineRunRef": {"name": "wfe-0123456789abcdef"}});
    let mut completed = running.clone();
    completed["phase"] = json!("Completed");
    completed["completionTime"] = json!(T1);
    completed["duration"] = json!("2m30s");
    let mut oom = completed.clone();
    oom["phase"] = json!("Failed");
    oom["failureDetails"] = failure("OOMKilled", true);
    let mut cleared = oom.clone();
    cleared["blockClearance"] = json!({"clearedAt": T1, "clearedBy": "alice@example.com",
        "clearReason": "raised the memory limit and checked the deployment by hand", "clearMethod": "Annotation"});
    let pull = json!({"phase": "Failed", "startTime": T0, "completionTime": T1, "duration": "2m30s",
                      "pipelineRunRef": {"name": "wfe-0123456789abcdef"},
                      "failureDetails": failure("ImagePullBackOff", false)});
    let skipped = json!({"phase": "Skipped", "completionTime": T0,
        "skipDetails": {"reason": "RecentlyRemediated", "message": "cooldown", "skippedAt": T0}});
    let invalid = json!({"phase": "Failed", "completionTime": T0, "duration": "0s",
                         "failureDetails": failure("ConfigurationError", false)});
    let cases = [
        (running, vec![E::SelectionCompleted, E::ExecutionStarted]),
        (completed, vec![E::WorkflowCompleted]),
        (oom, vec![E::WorkflowFailed]),
        (cleared, vec![E::BlockCleared]),
        (pull, vec![E::WorkflowFailed]),
        (skipped, vec![E::SelectionCompleted, E::WorkflowSkipped]),
        (invalid, vec![E::WorkflowFailed]),
    ];
    let mut events = Vec::new();
    for (status, types) in cases {
        let w = with(status);
        events.extend(types.into_iter().map(|t| audit::build(&w, t)));
    }
    let running = with(json!({"phase": "Running", "startTime": T0,
                              "pipelineRunRef": {"name": "wfe-0123456789abcdef"}}));
    let deleted_at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(T1.parse().unwrap());
    events.push(audit::cancelled(&running, deleted_at));
    events
}

fn json_of(e: &AuditEvent) -> Value {
    serde_json::to_value(e).expect("serializes")
}

#[test]
fn every_event_type_datastorage_knows_validates_against_its_document() {
    let contract = Contract::load().expect("both documents load");
    let known = contract.reference_event_types();
    assert_eq!(
        known,
        [
            "workflowexecution.block.cleared",
            "workflowexecution.execution.started",
            "workflowexecution.selection.completed",
            "workflowexecution.workflow.completed",
            "workflowexecution.workflow.failed",
            "workflowexecution.workflow.started",
        ],
        "DataStorage's document changed what it knows of WorkflowExecution events"
    );
    let events = all_events();
    let mut checked = std::collections::BTreeSet::new();
    for e in &events {
        let v = json_of(e);
        match contract.check_reference(&v) {
            Ok(true) => {
                checked.insert(e.event_type.as_str());
            }
            Ok(false) => assert_eq!(e.event_type, E::WorkflowSkipped, "unknown: {v}"),
            Err(why) => panic!(
                "{} violates DataStorage's document: {why}\n{v:#}",
                e.event_type.as_str()
            ),
        }
    }
    // Every type it knows that the SPEC sends was checked; `workflow.started` is DataStorage's
    // older name for what SPEC 6 calls `execution.started`, which is what is sent.
    let sent: Vec<&str> = known
        .iter()
        .copied()
        .filter(|t| *t != "workflowexecution.workflow.started")
        .collect();
    assert_eq!(checked.into_iter().collect::<Vec<_>>(), sent);
}

#[test]
fn every_event_validates_against_the_projects_schema_one_by_one_and_as_a_batch() {
    let contract = Contract::load().expect("both documents load");
    let events = all_events();
    for e in &events {
        let v = json_of(e);
        if let Err(why) = contract.check_project_event(&v) {
            panic!(
                "{} violates the project's schema: {why}\n{v:#}",
                e.event_type.as_str()
            );
        }
    }
    let batch = serde_json::to_value(&events).unwrap();
    contract
        .check_project_batch(&batch)
        .expect("the batch body");
}

#[test]
fn the_extensions_are_exactly_what_the_project_schema_says() {
    let contract = Contract::load().expect("both documents load");
    let events = all_events();
    let skipped = events
        .iter()
        .find(|e| e.event_type == E::WorkflowSkipped)
        .unwrap();
    let v = json_of(skipped);
    assert_eq!(
        contract.check_reference(&v),
        Ok(false),
        "DataStorage maps no skipped event"
    );
    assert_eq!(v["event_data"]["phase"], "Skipped");
    assert_eq!(v["event_data"]["skip_reason"], "RecentlyRemediated");
    // Every payload carries its identity, a UUID, the same for the same execution and event.
    for e in &events {
        let key = e.idempotency_key();
        assert_eq!(key.len(), 36, "{key}");
        assert_eq!(
            key,
            audit::idempotency_key("3f6d2c1e-0000-4000-8000-000000000001", e.event_type)
        );
    }
    // Rebuilding gives the very same event (a resend is the same event).
    assert_eq!(all_events(), events);
}

#[test]
fn a_broken_event_fails_both_contracts() {
    let contract = Contract::load().expect("both documents load");
    let good = json_of(&all_events()[2]);
    let mut no_correlation = good.clone();
    no_correlation["correlation_id"] = json!("");
    assert!(contract.check_reference(&no_correlation).is_err());
    assert!(contract.check_project_event(&no_correlation).is_err());
    let mut bad_reason = good.clone();
    bad_reason["event_data"]["failure_reason"] = json!("Gremlins");
    bad_reason["event_type"] = json!("workflowexecution.workflow.failed");
    bad_reason["event_data"]["event_type"] = json!("workflowexecution.workflow.failed");
    assert!(contract.check_reference(&bad_reason).is_err());
    let mut bad_time = good.clone();
    bad_time["event_timestamp"] = json!("yesterday");
    let why = contract.check_reference(&bad_time).unwrap_err();
    assert!(why.contains("event_timestamp"), "{why}");
    let mut extra = good;
    extra["surprise"] = json!(1);
    assert!(
        contract.check_project_event(&extra).is_err(),
        "the project's schema says everything that is sent"
    );
}

#[test]
fn the_events_carry_what_spec_6_asks() {
    let events = all_events();
    let started = json_of(&events[1]);
    assert_eq!(started["event_type"], "workflowexecution.execution.started");
    assert_eq!(started["correlation_id"], "rr-payment-api-oom");
    assert_eq!(started["actor_type"], "service");
    assert_eq!(started["actor_id"], "workflowexecution-controller");
    assert_eq!(started["resource_type"], "WorkflowExecution");
    assert_eq!(started["event_category"], "workflowexecution");
    assert_eq!(started["version"], "1.0");
    assert_eq!(started["event_data"]["phase"], "Running");
    assert_eq!(
        started["event_data"]["pipelinerun_name"],
        "wfe-0123456789abcdef"
    );
    assert_eq!(
        started["event_data"]["parameters"],
        json!({"GRACE_PERIOD_SECONDS": "30", "REPLICAS": "3",
               "TARGET_RESOURCE": "payments/deployment/payment-api"})
    );
    let selection = json_of(&events[0]);
    assert_eq!(selection["event_data"]["phase"], "Pending");
    let oom = json_of(&events[3]);
    assert_eq!(oom["event_outcome"], "failure");
    assert_eq!(
        oom["event_data"]["error_details"],
        json!({"message": "step apply: exit 137", "code": "ERR_EXECUTION_OOM_KILLED",
               "component": "workflowexecution", "retry_possible": false})
    );
    assert_eq!(oom["event_data"]["failed_task_name"], "remediate");
    let cleared = json_of(&events[4]);
    assert_eq!(cleared["actor_type"], "user");
    assert_eq!(cleared["actor_id"], "alice@example.com");
    assert_eq!(cleared["event_data"]["previous_state"], "Blocked");
    let skipped = json_of(&events[7]);
    assert_eq!(skipped["event_outcome"], "pending");
    let cancelled = json_of(events.last().unwrap());
    assert!(
        cancelled["event_data"]["failure_message"]
            .as_str()
            .unwrap()
            .contains("deleted while Running"),
        "{cancelled}"
    );
}
