use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::limits;
use super::status::WorkflowExecutionStatus;
use crate::admission::patterns;
// targetResource and containerImage get CEL rules with readable messages in `crd::crd()`.

/// Desired execution of one remediation workflow against one target resource. Immutable once created.
// Every printer column repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[skip_serializing_none]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubernaut.ai",
    version = "v1alpha1",
    kind = "WorkflowExecution",
    plural = "workflowexecutions",
    singular = "workflowexecution",
    shortname = "wfe",
    category = "kubernaut",
    namespaced,
    status = "WorkflowExecutionStatus",
    derive = "PartialEq",
    doc = "Runs one remediation workflow as a Tekton PipelineRun, one at a time per target resource.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Workflow",
        type_ = "string",
        json_path = ".spec.workflowRef.workflowId"
    ),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetResource"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Failure or skip reason",
        json_path = ".status['failureDetails','skipDetails'].reason"
    ),
    printcolumn(name = "Duration", type_ = "string", json_path = ".status.duration"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf", "message": "spec is immutable after creation"}
]))]
pub struct WorkflowExecutionSpec {
    /// The RemediationRequest this execution belongs to; its name is the audit correlation id.
    pub remediation_request_ref: RemediationRequestReference,

    /// The workflow to run.
    pub workflow_ref: WorkflowReference,

    /// The resource the workflow acts on, `namespace/kind/name` or `kind/name` (cluster-scoped).
    /// This string is the lock key: one execution at a time per target.
    #[schemars(length(min = 1, max = limits::MAX_TARGET_RESOURCE_LEN))]
    pub target_resource: String,

    /// Workflow parameters. Keys are UPPER_SNAKE_CASE; `TARGET_RESOURCE` is injected by the controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 64,
        "additionalProperties" = {"type": "string", "maxLength": 4096},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.matches('^[A-Z][A-Z0-9_]*$'))",
             "message": "parameter keys must be UPPER_SNAKE_CASE (matching ^[A-Z][A-Z0-9_]*$)"},
            {"rule": "!('TARGET_RESOURCE' in self)",
             "message": "TARGET_RESOURCE is reserved: the controller sets it from spec.targetResource"}
        ]
    ))]
    pub parameters: BTreeMap<String, String>,

    /// Confidence of the selection, 0.0–1.0 (audit only).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: Option<f64>,

    /// Why this workflow was selected (audit only).
    #[schemars(length(max = limits::MAX_RATIONALE_LEN))]
    pub rationale: Option<String>,

    /// How to run the workflow.
    pub execution_config: Option<ExecutionConfig>,
}

/// Reference to the RemediationRequest (a core `ObjectReference` with a required name).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRequestReference {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    /// Name of the RemediationRequest: the audit correlation id.
    #[schemars(length(min = 1, max = limits::MAX_REFERENCE_NAME_LEN))]
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub field_path: Option<String>,
}

/// The workflow (a Tekton bundle) to run.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowReference {
    /// Catalog identifier of the workflow.
    #[schemars(length(min = 1, max = limits::MAX_REFERENCE_NAME_LEN))]
    pub workflow_id: String,
    /// Version of the workflow (semantic version expected).
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
    /// OCI reference of the Tekton bundle: `registry/repo[:tag][@sha256:<64 hex>]`.
    #[schemars(length(min = 1, max = limits::MAX_CONTAINER_IMAGE_LEN))]
    pub container_image: String,
    /// Digest of the bundle, `sha256:<64 hex>`; must agree with a digest in `containerImage`.
    #[schemars(pattern(patterns::SHA256_DIGEST))]
    pub container_digest: Option<String>,
}

/// Execution settings; the admission webhook fills the defaults.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionConfig {
    /// PipelineRun timeout and the controller's own deadline, a Go duration (`30m`, `1h30m`), ≤ 24h.
    #[schemars(
        pattern(patterns::GO_DURATION),
        extend("x-kubernetes-validations" = [
            {"rule": "duration(self) > duration('0s') && duration(self) <= duration('24h')",
             "message": "timeout must be greater than 0s and at most 24h"}
        ])
    )]
    pub timeout: Option<String>,
    /// ServiceAccount the workflow's TaskRuns run as.
    #[schemars(length(min = 1, max = 253), pattern(patterns::DNS1123_SUBDOMAIN))]
    pub service_account_name: Option<String>,
}
