//! Validation of a WorkflowExecution (SPEC 2.1), shared by the admission webhook and the controller.
//!
//! Every violation is reported, each with its field path and the rule broken, worded like
//! Kubernetes' own field errors (`spec.targetResource: Invalid value: "x": must be ...`).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::admission::duration::parse_go_duration;
use crate::admission::patterns;
use crate::admission::target::{
    DNS1123_SUBDOMAIN_MSG, TargetResource, compile, is_dns1123_subdomain,
};
use crate::api::WorkflowExecution;
use crate::api::limits::*;

pub use super::report::{ErrorType, FieldError, Report};

static OCI_REFERENCE: LazyLock<Regex> = LazyLock::new(|| compile(patterns::OCI_REFERENCE));
static SHA256_DIGEST: LazyLock<Regex> = LazyLock::new(|| compile(patterns::SHA256_DIGEST));
static PARAMETER_KEY: LazyLock<Regex> = LazyLock::new(|| compile(patterns::PARAMETER_KEY));
static SEMVER: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
    )
});

/// The reserved parameter the controller injects.
pub const RESERVED_PARAMETER: &str = "TARGET_RESOURCE";

/// Validates a WorkflowExecution being created (or re-validated by the controller).
pub fn validate(wfe: &WorkflowExecution) -> Report {
    let mut r = Report::default();
    validate_name(wfe, &mut r);
    let spec = &wfe.spec;

    r.bounded_required(
        "spec.remediationRequestRef.name",
        &spec.remediation_request_ref.name,
        MAX_REFERENCE_NAME_LEN,
    );

    let wf = &spec.workflow_ref;
    r.bounded_required(
        "spec.workflowRef.workflowId",
        &wf.workflow_id,
        MAX_REFERENCE_NAME_LEN,
    );
    r.bounded_required("spec.workflowRef.version", &wf.version, 128);
    if !wf.version.is_empty() && !SEMVER.is_match(&wf.version) {
        r.warnings.push(format!(
            "spec.workflowRef.version: {:?} is not a semantic version (e.g. 1.2.0)",
            wf.version
        ));
    }
    validate_image(
        wf.container_image.as_str(),
        wf.container_digest.as_deref(),
        &mut r,
    );

    match TargetResource::parse(&spec.target_resource) {
        _ if spec.target_resource.is_empty() => r.required("spec.targetResource"),
        _ if spec.target_resource.len() > MAX_TARGET_RESOURCE_LEN => {
            r.too_long("spec.targetResource", MAX_TARGET_RESOURCE_LEN)
        }
        Ok(_) => {}
        Err(e) => r.invalid("spec.targetResource", &spec.target_resource, e.to_string()),
    }

    validate_parameters(&spec.parameters, &mut r);

    if let Some(c) = spec.confidence
        && !(0.0..=1.0).contains(&c)
    {
        r.push(
            "spec.confidence",
            ErrorType::Invalid,
            Some(c.to_string()),
            "must be between 0 and 1 inclusive",
        );
    }
    if let Some(rationale) = &spec.rationale
        && rationale.len() > MAX_RATIONALE_LEN
    {
        r.too_long("spec.rationale", MAX_RATIONALE_LEN);
    }

    if let Some(cfg) = &spec.execution_config {
        if let Some(timeout) = &cfg.timeout {
            validate_timeout(timeout, &mut r);
        }
        if let Some(sa) = &cfg.service_account_name
            && !is_dns1123_subdomain(sa)
        {
            r.invalid(
                "spec.executionConfig.serviceAccountName",
                sa,
                DNS1123_SUBDOMAIN_MSG,
            );
        }
    }
    r
}

fn validate_name(wfe: &WorkflowExecution, r: &mut Report) {
    let meta = &wfe.metadata;
    let name = meta.name.as_deref().filter(|n| !n.is_empty());
    match (name, meta.generate_name.as_deref()) {
        (Some(name), _) if name.len() > MAX_NAME_LEN => r.push(
            "metadata.name",
            ErrorType::TooLong,
            None,
            format!(
                "may not be more than {MAX_NAME_LEN} bytes: the name is used as a label value on the PipelineRun"
            ),
        ),
        // The API server appends 5 random characters to generateName (used only without a name).
        (None, Some(prefix)) if prefix.len() + 5 > MAX_NAME_LEN => r.push(
            "metadata.generateName",
            ErrorType::TooLong,
            None,
            format!(
                "may not be more than {} bytes: 5 random characters are appended and the name may not be more than {MAX_NAME_LEN}",
                MAX_NAME_LEN - 5
            ),
        ),
        _ => {}
    }
}

fn validate_image(image: &str, digest: Option<&str>, r: &mut Report) {
    const FIELD: &str = "spec.workflowRef.containerImage";
    if image.is_empty() {
        r.required(FIELD);
    } else if image.len() > MAX_CONTAINER_IMAGE_LEN {
        r.too_long(FIELD, MAX_CONTAINER_IMAGE_LEN);
    } else if !OCI_REFERENCE.is_match(image) {
        r.invalid(
            FIELD,
            image,
            "must be an OCI reference to a Tekton bundle: registry/repository[:tag][@sha256:<64 hex digits>]",
        );
    }
    let Some(digest) = digest else { return };
    const DIGEST_FIELD: &str = "spec.workflowRef.containerDigest";
    if !SHA256_DIGEST.is_match(digest) {
        r.invalid(
            DIGEST_FIELD,
            digest,
            "must be sha256:<64 lowercase hex digits>",
        );
    } else if let Some((_, in_image)) = image.rsplit_once('@')
        && in_image != digest
    {
        r.invalid(
            DIGEST_FIELD,
            digest,
            format!("must match the digest in {FIELD} ({in_image})"),
        );
    }
}

fn validate_parameters(params: &std::collections::BTreeMap<String, String>, r: &mut Report) {
    if params.len() > MAX_PARAMETER_COUNT {
        r.push(
            "spec.parameters",
            ErrorType::TooMany,
            None,
            format!(
                "{}: must have at most {MAX_PARAMETER_COUNT} items",
                params.len()
            ),
        );
    }
    let mut total = 0usize;
    for (key, value) in params {
        total += key.len() + value.len();
        let field = format!("spec.parameters[{key}]");
        if key == RESERVED_PARAMETER {
            r.push(
                field,
                ErrorType::Forbidden,
                None,
                "TARGET_RESOURCE is reserved: the controller sets it from spec.targetResource",
            );
            continue;
        }
        if !PARAMETER_KEY.is_match(key) {
            r.invalid(
                field.clone(),
                key,
                "parameter keys must be UPPER_SNAKE_CASE (matching ^[A-Z][A-Z0-9_]*$)",
            );
        }
        if value.len() > MAX_PARAMETER_VALUE_LEN {
            r.too_long(field, MAX_PARAMETER_VALUE_LEN);
        }
    }
    if total > MAX_PARAMETERS_TOTAL_LEN {
        r.push(
            "spec.parameters",
            ErrorType::TooLong,
            None,
            format!("keys and values together may not be more than {MAX_PARAMETERS_TOTAL_LEN} bytes (got {total})"),
        );
    }
}

fn validate_timeout(timeout: &str, r: &mut Report) {
    if let Err(detail) = check_timeout(timeout) {
        r.invalid("spec.executionConfig.timeout", timeout, detail);
    }
}

/// The rule for `executionConfig.timeout`: a Go duration, > 0 and ≤ 24h. `Err` carries the rule
/// broken, in words.
pub fn check_timeout(timeout: &str) -> Result<std::time::Duration, String> {
    match parse_go_duration(timeout) {
        Err(e) => Err(format!("not a Go duration: {e}")),
        Ok(d) if d.is_zero() => Err("must be greater than 0s".into()),
        Ok(d) if d.as_secs_f64() > MAX_TIMEOUT_SECONDS as f64 => Err("must be at most 24h".into()),
        Ok(d) => Ok(d),
    }
}

/// On UPDATE: `spec` may not change. Compared on the raw JSON so that nothing escapes the check;
/// each changed field is named.
pub fn validate_update(old_spec: Option<&Value>, new_spec: Option<&Value>) -> Report {
    let mut r = Report::default();
    if old_spec == new_spec {
        return r;
    }
    let empty = serde_json::Map::new();
    let as_map = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (old, new) = (as_map(old_spec), as_map(new_spec));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if old.get(key) != new.get(key) {
            r.push(
                format!("spec.{key}"),
                ErrorType::Forbidden,
                None,
                "spec is immutable after creation",
            );
        }
    }
    if r.errors.is_empty() {
        // Same fields, different shape (e.g. spec replaced by a non-object).
        r.push(
            "spec",
            ErrorType::Forbidden,
            None,
            "spec is immutable after creation",
        );
    }
    r
}
