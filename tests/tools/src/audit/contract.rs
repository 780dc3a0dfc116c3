//! The two contracts an audit event is checked against, both read at run time, never copied:
//! DataStorage's published OpenAPI document (`../shared/reference/data-storage-v1.yaml`: the
//! `AuditEventRequest` envelope with the payload its discriminator maps the event type to), and
//! this project's schema of what it sends (`docs/audit/workflowexecution-audit-events.schema.json`,
//! which also covers the extensions DataStorage does not know).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

use crate::repo_root;

/// Where DataStorage's document is: the team kit beside the repository.
pub fn reference_path() -> PathBuf {
    repo_root().join("../shared/reference/data-storage-v1.yaml")
}

/// This project's schema file.
pub fn project_schema_path() -> PathBuf {
    repo_root().join("docs/audit/workflowexecution-audit-events.schema.json")
}

pub struct Contract {
    /// Per WorkflowExecution event type DataStorage maps: the envelope with that payload.
    reference: BTreeMap<String, Validator>,
    project: Validator,
    /// The project's schema of one event.
    project_event: Validator,
}

impl Contract {
    /// Reads and compiles both documents; fails (naming the file) when one is missing.
    pub fn load() -> anyhow::Result<Self> {
        let path = reference_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading DataStorage's document {}", path.display()))?;
        let doc: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let schemas = doc
            .pointer("/components/schemas")
            .context("no components.schemas in DataStorage's document")?;
        let mapping = schemas
            .pointer("/AuditEventRequest/properties/event_data/discriminator/mapping")
            .and_then(Value::as_object)
            .context("no event_data discriminator in AuditEventRequest")?;
        let mut reference = BTreeMap::new();
        for (event_type, target) in mapping {
            if !event_type.starts_with("workflowexecution.") {
                continue;
            }
            let target = target.as_str().context("a mapping that is not a $ref")?;
            let mut schemas = schemas.clone();
            // The envelope with exactly the payload the discriminator names.
            schemas["AuditEventRequest"]["properties"]["event_data"] = json!({"$ref": target});
            let root = json!({
                "$ref": "#/components/schemas/AuditEventRequest",
                "components": {"schemas": schemas},
            });
            let validator = jsonschema::options()
                .with_draft(Draft::Draft4)
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| {
                    anyhow::anyhow!("compiling DataStorage's schema for {event_type}: {e}")
                })?;
            reference.insert(event_type.clone(), validator);
        }
        let path = project_schema_path();
        let project: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let compile = |schema: &Value| {
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(schema)
                .map_err(|e| anyhow::anyhow!("compiling {}: {e}", path.display()))
        };
        let mut one = project.clone();
        one["$ref"] = json!("#/$defs/AuditEvent");
        if let Some(o) = one.as_object_mut() {
            o.remove("type");
            o.remove("items");
        }
        Ok(Contract {
            reference,
            project: compile(&project)?,
            project_event: compile(&one)?,
        })
    }

    /// The WorkflowExecution event types DataStorage's document knows.
    pub fn reference_event_types(&self) -> Vec<&str> {
        self.reference.keys().map(String::as_str).collect()
    }

    /// `event` against DataStorage's document: `Ok(false)` when the document does not know its
    /// type (an extension), an error listing every violation otherwise.
    pub fn check_reference(&self, event: &Value) -> Result<bool, String> {
        let event_type = event["event_type"].as_str().unwrap_or_default();
        let Some(validator) = self.reference.get(event_type) else {
            return Ok(false);
        };
        errors(validator, event).map(|()| true)
    }

    /// One event against this project's schema.
    pub fn check_project_event(&self, event: &Value) -> Result<(), String> {
        errors(&self.project_event, event)
    }

    /// A whole batch (a JSON array) against this project's schema.
    pub fn check_project_batch(&self, batch: &Value) -> Result<(), String> {
        errors(&self.project, batch)
    }

    /// What a DataStorage-compatible receiver accepts: every event DataStorage's document knows
    /// valid against it; any other valid against this project's schema (a documented extension).
    pub fn check_received(&self, event: &Value) -> Result<(), String> {
        match self.check_reference(event)? {
            true => Ok(()),
            false => self
                .check_project_event(event)
                .map_err(|e| format!("unknown to DataStorage's document and {e}")),
        }
    }
}

fn errors(validator: &Validator, instance: &Value) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
