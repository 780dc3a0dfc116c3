//! A block clearance as the controller reads it: the operator's reason and the webhook's stamp of
//! who and when (`crate::admission::clearance` writes the stamp). Without a complete stamp the
//! clearance is not attributed and clears nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::names::{
    CLEAR_EXECUTION_BLOCK, CLEAR_EXECUTION_BLOCK_AT, CLEAR_EXECUTION_BLOCK_BY,
};
use crate::api::{BlockClearance, ClearMethod, WorkflowExecution};

/// What an execution's annotations say about clearing its block.
#[derive(Clone, Debug, PartialEq)]
pub enum Clearance {
    /// No clearance asked for.
    Absent,
    /// Asked for, and stamped by the mutating webhook.
    Stamped(BlockClearance),
    /// A reason without a valid stamp (the webhook did not see the change): ignored, with why.
    Unattributed(String),
}

/// The clearance `wfe`'s annotations ask for.
pub fn clearance(wfe: &WorkflowExecution) -> Clearance {
    let annotation = |key: &str| {
        wfe.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    };
    let Some(reason) = annotation(CLEAR_EXECUTION_BLOCK) else {
        return Clearance::Absent;
    };
    let by = annotation(CLEAR_EXECUTION_BLOCK_BY).filter(|b| !b.is_empty());
    let at = annotation(CLEAR_EXECUTION_BLOCK_AT).and_then(|a| a.parse::<Timestamp>().ok());
    match (by, at) {
        (Some(by), Some(at)) => Clearance::Stamped(BlockClearance {
            cleared_at: Time(at),
            cleared_by: by.to_owned(),
            clear_reason: reason.to_owned(),
            clear_method: ClearMethod::Annotation,
        }),
        _ => Clearance::Unattributed(format!(
            "{CLEAR_EXECUTION_BLOCK} is set but not stamped with who and when ({CLEAR_EXECUTION_BLOCK_BY}, {CLEAR_EXECUTION_BLOCK_AT}): the mutating webhook must admit UPDATEs of WorkflowExecutions for a clearance to count"
        )),
    }
}
