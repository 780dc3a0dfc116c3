//! Names derived from the API: label keys, the finalizer, the PipelineRun's lock name, and valid
//! label values derived from arbitrary strings.

use sha2::{Digest, Sha256};

pub const WORKFLOW_EXECUTION: &str = "kubernaut.ai/workflow-execution";
pub const SOURCE_NAMESPACE: &str = "kubernaut.ai/source-namespace";
pub const WORKFLOW_ID: &str = "kubernaut.ai/workflow-id";
pub const TARGET_RESOURCE: &str = "kubernaut.ai/target-resource";
pub const REMEDIATION_REQUEST: &str = "kubernaut.ai/remediation-request";

/// An operator's reason for clearing a failed execution's block (at least
/// [`crate::api::limits::MIN_CLEAR_REASON_WORDS`] words).
pub const CLEAR_EXECUTION_BLOCK: &str = "kubernaut.ai/clear-execution-block";
/// Who cleared it: stamped by the mutating webhook from the admission request's user, never taken
/// from the user.
pub const CLEAR_EXECUTION_BLOCK_BY: &str = "kubernaut.ai/clear-execution-block-by";
/// When it was cleared (RFC 3339): stamped by the mutating webhook.
pub const CLEAR_EXECUTION_BLOCK_AT: &str = "kubernaut.ai/clear-execution-block-at";

/// Finalizer linking a WorkflowExecution to its PipelineRun (they live in different namespaces, so
/// owner references cannot).
pub const FINALIZER: &str = "workflowexecution.kubernaut.ai/workflowexecution-cleanup";

/// Default namespace PipelineRuns run in.
pub const DEFAULT_EXECUTION_NAMESPACE: &str = "kubernaut-workflows";

/// The deterministic PipelineRun name of a target: `wfe-` + 16 hex of sha256(target). Two executions
/// on one target collide on it, and the API server's `AlreadyExists` is the lock.
pub fn pipeline_run_name(target_resource: &str) -> String {
    format!("wfe-{}", short_hash(target_resource))
}

const MAX_LABEL_VALUE: usize = 63;
const HASH_HEX: usize = 16;

/// First 16 hex characters of sha256(s).
pub fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A valid label value (≤ 63, `[A-Za-z0-9]` at both ends, `-_.` inside) derived from any string.
/// Characters outside the alphabet become `-`. When the result would be too long it is cut and a
/// hash of the *raw* input is appended, so different long inputs stay different.
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    // An input with nothing usable (e.g. "///") still gets a distinct, valid value: its hash.
    if trimmed.len() <= MAX_LABEL_VALUE && (!trimmed.is_empty() || raw.is_empty()) {
        return trimmed.to_owned();
    }
    let keep = MAX_LABEL_VALUE - HASH_HEX - 1;
    let head =
        trimmed[..trimmed.len().min(keep)].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        short_hash(raw)
    } else {
        format!("{head}-{}", short_hash(raw))
    }
}

/// The target resource as a label value: `/` becomes `__` (SPEC 5), then [`label_value`].
pub fn target_label_value(target: &str) -> String {
    label_value(&target.replace('/', "__"))
}

/// True when `s` is a valid Kubernetes label value.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_LABEL_VALUE
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_values_and_repairs_the_rest() {
        assert_eq!(label_value("restart-deployment"), "restart-deployment");
        assert_eq!(label_value("Restart Deployment!"), "Restart-Deployment");
        assert_eq!(
            target_label_value("payments/deployment/api"),
            "payments__deployment__api"
        );
        assert_eq!(label_value("///"), short_hash("///"));
        assert_eq!(label_value(""), "");
    }

    #[test]
    fn long_values_are_cut_and_stay_distinct() {
        let a = "a".repeat(100);
        let b = format!("{}b", "a".repeat(99));
        let (la, lb) = (label_value(&a), label_value(&b));
        assert_eq!(la.len(), 63);
        assert_ne!(la, lb);
        assert!(is_label_value(&la) && is_label_value(&lb));
    }

    #[test]
    fn every_output_is_a_valid_label_value() {
        let samples = [
            "ns/deployment/app",
            "x",
            "-x-",
            "__a__",
            "a.b.c",
            "ÄÖÜ/ß",
            &"z".repeat(300),
            "ns/deployment.apps/some.very.long.name.that.goes.on.and.on.and.on.forever.and.ever",
        ];
        for s in samples {
            assert!(
                is_label_value(&label_value(s)),
                "{s:?} -> {:?}",
                label_value(s)
            );
            assert!(is_label_value(&target_label_value(s)));
        }
    }

    #[test]
    fn the_label_value_check_applies_each_rule() {
        for ok in ["", "a", "0", "a-b_c.d", "A9", &"a".repeat(63), "x--y"] {
            assert!(is_label_value(ok), "{ok:?} is a label value");
        }
        for bad in [
            &"a".repeat(64),
            "-a",
            "a-",
            "_a",
            "a.",
            ".",
            "a b",
            "a/b",
            "ä",
            "aä",
            "äa",
        ] {
            assert!(!is_label_value(bad), "{bad:?} is not a label value");
        }
    }

    #[test]
    fn a_cut_value_keeps_63_bytes_and_ends_before_the_hash_on_an_alphanumeric() {
        // 46 characters kept (63 - 16 hex - 1 dash); a separator at the cut is dropped.
        let raw = format!("{}-{}", "a".repeat(45), "b".repeat(40));
        let v = label_value(&raw);
        assert_eq!(v, format!("{}-{}", "a".repeat(45), short_hash(&raw)));
        assert!(is_label_value(&v));
        // Exactly 63 usable characters are kept as they are; 64 are cut.
        assert_eq!(label_value(&"c".repeat(63)), "c".repeat(63));
        let cut = label_value(&"c".repeat(64));
        assert_eq!(
            cut,
            format!("{}-{}", "c".repeat(46), short_hash(&"c".repeat(64)))
        );
        // Nothing usable in a long input: the hash alone.
        assert_eq!(label_value(&"/".repeat(70)), short_hash(&"/".repeat(70)));
        assert_eq!(pipeline_run_name("ns/deployment/x").len(), 20);
        assert!(pipeline_run_name("ns/deployment/x").starts_with("wfe-"));
        assert_eq!(short_hash("x").len(), 16);
    }
}
