//! Who holds a target's lock. The lock is the PipelineRun under the target's deterministic name
//! ([`crate::api::names::pipeline_run_name`]); its owner labels say whose it is. This one model is
//! used by the builder (it writes the labels), the controller's cache (it reads them), the plan
//! (adopt, skip or fail) and the lock sweep.

use std::collections::BTreeMap;

use crate::api::WorkflowExecution;
use crate::api::names::{self, label_value};

/// The WorkflowExecution a PipelineRun's owner labels name, as label values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// `kubernaut.ai/source-namespace` (empty when the label is missing).
    pub namespace: String,
    /// `kubernaut.ai/workflow-execution`.
    pub name: String,
}

/// Whose a PipelineRun is, seen from one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Labelled for this execution.
    Ours,
    /// Labelled for another execution: it holds the target.
    Another(Owner),
    /// No owner label: not created by this controller.
    Unowned,
}

impl Owner {
    /// The owner of everything `wfe` creates.
    pub fn of(wfe: &WorkflowExecution) -> Owner {
        Owner::named(
            wfe.metadata.namespace.as_deref().unwrap_or_default(),
            wfe.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The owner labels' values for the execution `namespace/name`.
    pub fn named(namespace: &str, name: &str) -> Owner {
        Owner {
            namespace: label_value(namespace),
            name: label_value(name),
        }
    }

    /// Read from an object's labels. The execution label alone makes a run someone's (a lock
    /// holder); the namespace label completes the name.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Owner> {
        let name = labels.get(names::WORKFLOW_EXECUTION)?;
        Some(Owner {
            namespace: labels
                .get(names::SOURCE_NAMESPACE)
                .cloned()
                .unwrap_or_default(),
            name: name.clone(),
        })
    }

    /// The labels that make an object this owner's.
    pub fn labels(&self) -> [(String, String); 2] {
        [
            (names::WORKFLOW_EXECUTION.to_owned(), self.name.clone()),
            (names::SOURCE_NAMESPACE.to_owned(), self.namespace.clone()),
        ]
    }

    /// Whose an object with this owner label (or none) is, seen from `self`.
    pub fn sees(&self, owner: Option<&Owner>) -> Holder {
        match owner {
            Some(o) if o == self => Holder::Ours,
            Some(o) => Holder::Another(o.clone()),
            None => Holder::Unowned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_ours_only_when_both_labels_name_us() {
        let me = Owner::named("team", "w");
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ours = labels(&[
            (names::WORKFLOW_EXECUTION, "w"),
            (names::SOURCE_NAMESPACE, "team"),
        ]);
        assert_eq!(me.sees(Owner::from_labels(&ours).as_ref()), Holder::Ours);
        let no_ns = labels(&[(names::WORKFLOW_EXECUTION, "w")]);
        assert_eq!(
            me.sees(Owner::from_labels(&no_ns).as_ref()),
            Holder::Another(Owner {
                namespace: String::new(),
                name: "w".into()
            })
        );
        assert_eq!(
            me.sees(Owner::from_labels(&labels(&[])).as_ref()),
            Holder::Unowned
        );
        assert_eq!(
            Owner::from_labels(&me.labels().into_iter().collect()),
            Some(me)
        );
    }
}
