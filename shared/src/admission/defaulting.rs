//! Defaulting of a WorkflowExecution at admission (SPEC 7): `executionConfig.timeout`,
//! `executionConfig.serviceAccountName`, labels that make WorkflowExecutions easy to select, and the
//! controller's cleanup finalizer — added here, in the create request, it saves the controller a
//! write per execution (the controller still adds it to objects that bypassed admission).
//!
//! Works on the raw JSON of the request so that nothing it does not know about is lost, and returns
//! the change as an RFC 6902 patch computed by diffing, so that applying the patch gives exactly the
//! defaulted object. Defaulting its own output changes nothing (an empty patch).

use serde_json::{Map, Value};

use crate::api::limits::{DEFAULT_SERVICE_ACCOUNT, DEFAULT_TIMEOUT};
use crate::api::names;
use crate::api::names::FINALIZER;

/// The values filled in when absent (configurable per installation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub timeout: String,
    pub service_account_name: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT.to_owned(),
            service_account_name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        }
    }
}

/// The object with defaults applied. Objects whose `spec` is not an object are returned unchanged:
/// validation reports them.
pub fn apply_defaults(raw: &Value, defaults: &Defaults) -> Value {
    let mut obj = raw.clone();
    let Some(root) = obj.as_object_mut() else {
        return obj;
    };
    let Some(spec) = root.get_mut("spec").and_then(Value::as_object_mut) else {
        return obj;
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let workflow_id = text(spec.get("workflowRef").and_then(|w| w.get("workflowId")));
    let target = text(spec.get("targetResource"));
    let request = text(
        spec.get("remediationRequestRef")
            .and_then(|r| r.get("name")),
    );

    if let Some(config) = object_entry(spec, "executionConfig") {
        set_if_absent(config, "timeout", &defaults.timeout);
        set_if_absent(config, "serviceAccountName", &defaults.service_account_name);
    }

    let Some(metadata) = object_entry(root, "metadata") else {
        return obj;
    };
    add_finalizer(metadata);
    let Some(labels) = object_entry(metadata, "labels") else {
        return obj;
    };
    for (key, value) in [
        (
            names::WORKFLOW_ID,
            workflow_id.as_deref().map(names::label_value),
        ),
        (
            names::TARGET_RESOURCE,
            target.as_deref().map(names::target_label_value),
        ),
        (
            names::REMEDIATION_REQUEST,
            request.as_deref().map(names::label_value),
        ),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            set_if_absent(labels, key, &value);
        }
    }
    obj
}

/// The RFC 6902 patch that turns `raw` into [`apply_defaults`]`(raw)`; empty when nothing is missing.
pub fn default_patch(raw: &Value, defaults: &Defaults) -> json_patch::Patch {
    json_patch::diff(raw, &apply_defaults(raw, defaults))
}

/// `map[key]` as an object, creating it (or replacing a `null`) when absent; `None` when something
/// else is there (left for schema validation to reject).
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let entry = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// Appends the controller's finalizer unless present (or `finalizers` is not a list: the API server
/// rejects that).
fn add_finalizer(metadata: &mut Map<String, Value>) {
    let entry = metadata
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if entry.is_null() {
        *entry = Value::Array(Vec::new());
    }
    if let Some(list) = entry.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(FINALIZER))
    {
        list.push(Value::String(FINALIZER.to_owned()));
    }
}

fn set_if_absent(map: &mut Map<String, Value>, key: &str, value: &str) {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
        Some(_) => {}
    }
}
