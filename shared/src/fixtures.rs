//! Test fixtures: one WorkflowExecution builder and one AdmissionReview builder, used by every
//! crate's tests instead of objects written out by hand (feature `fixtures`).
//!
//! ```
//! use wfe_shared::fixtures::{execution, review};
//! let wfe = execution("restart-api").target("payments/deployment/api").param("A", "b").build();
//! let body = review("CREATE", execution("x").json()).dry_run().json();
//! # let _ = (wfe, body);
//! ```

use serde_json::{Value, json};

use crate::api::WorkflowExecution;
use crate::api::names::FINALIZER;

/// A WorkflowExecution under construction, kept as JSON so a test can also build objects the
/// typed API would refuse (invalid values, missing fields).
#[derive(Clone, Debug)]
pub struct ExecutionBuilder(Value);

/// A valid execution named `name` in namespace `team-a`: remediation request `rr-1`, workflow
/// `restart-deployment` 1.2.0 from `quay.io/kubernaut/workflows/restart:v1.2.0`, target
/// `payments/deployment/payment-api`; no parameters, no execution config, no status.
pub fn execution(name: &str) -> ExecutionBuilder {
    ExecutionBuilder(json!({
        "apiVersion": "kubernaut.ai/v1alpha1",
        "kind": "WorkflowExecution",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "remediationRequestRef": {"name": "rr-1"},
            "workflowRef": {
                "workflowId": "restart-deployment",
                "version": "1.2.0",
                "containerImage": "quay.io/kubernaut/workflows/restart:v1.2.0"
            },
            "targetResource": "payments/deployment/payment-api"
        }
    }))
}

impl ExecutionBuilder {
    /// Sets the value at a dotted path (`spec.workflowRef.version`), creating objects on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let mut cur = &mut self.0;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            if !cur.get(*p).is_some_and(Value::is_object) {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        cur[parts[parts.len() - 1]] = value.into();
        self
    }

    /// Removes the field at a dotted path, if present.
    pub fn remove(mut self, path: &str) -> Self {
        let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
        let mut cur = &mut self.0;
        for p in parent.split('.').filter(|p| !p.is_empty()) {
            cur = &mut cur[p];
        }
        if let Some(map) = cur.as_object_mut() {
            map.remove(last);
        }
        self
    }

    pub fn namespace(self, ns: &str) -> Self {
        self.set("metadata.namespace", ns)
    }

    pub fn generation(self, generation: i64) -> Self {
        self.set("metadata.generation", generation)
    }

    pub fn uid(self, uid: &str) -> Self {
        self.set("metadata.uid", uid)
    }

    pub fn resource_version(self, rv: &str) -> Self {
        self.set("metadata.resourceVersion", rv)
    }

    /// With the controller's cleanup finalizer (as the mutating webhook adds it).
    pub fn finalized(self) -> Self {
        self.set("metadata.finalizers", json!([FINALIZER]))
    }

    pub fn remediation_request(self, name: &str) -> Self {
        self.set("spec.remediationRequestRef", json!({"name": name}))
    }

    pub fn workflow(self, id: &str, version: &str) -> Self {
        self.set("spec.workflowRef.workflowId", id)
            .set("spec.workflowRef.version", version)
    }

    pub fn image(self, image: &str) -> Self {
        self.set("spec.workflowRef.containerImage", image)
    }

    pub fn target(self, target: &str) -> Self {
        self.set("spec.targetResource", target)
    }

    pub fn param(self, key: &str, value: &str) -> Self {
        let path = format!("spec.parameters.{key}");
        self.set(&path, value)
    }

    pub fn confidence(self, confidence: f64) -> Self {
        self.set("spec.confidence", confidence)
    }

    pub fn timeout(self, timeout: &str) -> Self {
        self.set("spec.executionConfig.timeout", timeout)
    }

    pub fn service_account(self, name: &str) -> Self {
        self.set("spec.executionConfig.serviceAccountName", name)
    }

    /// The whole status.
    pub fn status(self, status: Value) -> Self {
        self.set("status", status)
    }

    pub fn json(self) -> Value {
        self.0
    }

    /// The typed object; panics (it is a fixture) if the JSON is not a WorkflowExecution.
    pub fn build(self) -> WorkflowExecution {
        serde_json::from_value(self.0).unwrap_or_else(|e| panic!("fixture is not typed: {e}"))
    }
}

/// An `admission.k8s.io/v1` AdmissionReview under construction.
#[derive(Clone, Debug)]
pub struct ReviewBuilder {
    operation: String,
    object: Value,
    old: Option<Value>,
    dry_run: bool,
    uid: String,
    username: String,
}

/// A review of `operation` (`CREATE`, `UPDATE`, …) on `object`, by user `admin`, for a
/// WorkflowExecution in the object's namespace (`team-a` when it has none).
pub fn review(operation: &str, object: Value) -> ReviewBuilder {
    ReviewBuilder {
        operation: operation.to_owned(),
        object,
        old: None,
        dry_run: false,
        uid: "705ab4f5-6393-11e8-b7cc-42010a800002".to_owned(),
        username: "admin".to_owned(),
    }
}

impl ReviewBuilder {
    pub fn old(mut self, old: Value) -> Self {
        self.old = Some(old);
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        uid.clone_into(&mut self.uid);
        self
    }

    pub fn user(mut self, username: &str) -> Self {
        username.clone_into(&mut self.username);
        self
    }

    pub fn json(self) -> Value {
        let namespace = self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("team-a")
            .to_owned();
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": self.uid,
                "kind": {"group": "kubernaut.ai", "version": "v1alpha1", "kind": "WorkflowExecution"},
                "resource": {"group": "kubernaut.ai", "version": "v1alpha1", "resource": "workflowexecutions"},
                "name": self.object["metadata"]["name"],
                "namespace": namespace,
                "operation": self.operation,
                "userInfo": {"username": self.username},
                "object": self.object,
                "oldObject": self.old,
                "dryRun": self.dry_run
            }
        })
    }
}
