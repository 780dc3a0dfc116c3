//! Numeric bounds of the API, shared by the CRD schema and the admission validator.

/// `remediationRequestRef.name` and `workflowRef.workflowId`.
pub const MAX_REFERENCE_NAME_LEN: usize = 255;
/// `workflowRef.containerImage`.
pub const MAX_CONTAINER_IMAGE_LEN: usize = 512;
/// `targetResource` (namespace 63 + kind + name 253, with separators).
pub const MAX_TARGET_RESOURCE_LEN: usize = 400;
/// Number of entries in `parameters`.
pub const MAX_PARAMETER_COUNT: usize = 64;
/// Bytes in one parameter value.
pub const MAX_PARAMETER_VALUE_LEN: usize = 4096;
/// Bytes in all parameter keys and values together.
pub const MAX_PARAMETERS_TOTAL_LEN: usize = 32 * 1024;
/// `rationale` (audit only; bounded so one object cannot bloat etcd).
pub const MAX_RATIONALE_LEN: usize = 8192;
/// Upper bound of `executionConfig.timeout`, in seconds (24h).
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 60 * 60;
/// Default of `executionConfig.timeout`.
pub const DEFAULT_TIMEOUT: &str = "30m";
/// Default of `executionConfig.serviceAccountName`.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "kubernaut-workflow-runner";
/// Longest WorkflowExecution name: it becomes a label value on the PipelineRun.
pub const MAX_NAME_LEN: usize = 63;
/// `metav1.Condition.message`.
pub const MAX_CONDITION_MESSAGE_LEN: usize = 32768;
/// Words in the reason of a block clearance (SOC 2 attribution asks for a real explanation).
pub const MIN_CLEAR_REASON_WORDS: usize = 10;
/// Bytes in the reason of a block clearance.
pub const MAX_CLEAR_REASON_LEN: usize = 4096;
