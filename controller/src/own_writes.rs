//! The controller's own latest writes, kept until the watch cache has caught up with them.
//!
//! A PipelineRun that finishes right after the Running write triggers a reconcile while the cache
//! may still hold the Pending version of the WorkflowExecution. Reconciling that stale copy costs a
//! doomed write (409), a re-read and a recomputation. The API server already returned the new
//! version with the write, so the reconcile starts from it instead — but only while the cache holds
//! a version this controller itself superseded; any other version in the cache wins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use wfe_shared::WorkflowExecution;

struct Written {
    /// Versions older than `latest`: ours was written on top of them.
    superseded: Vec<String>,
    latest: Arc<WorkflowExecution>,
}

/// Keyed by (namespace, name). Entries live from a write until the next reconcile of that object
/// sees the cache at (or past) the written version, which the write's own watch event triggers.
#[derive(Default)]
pub struct OwnWrites {
    entries: Mutex<HashMap<(String, String), Written>>,
}

fn key(wfe: &WorkflowExecution) -> (String, String) {
    (wfe.namespace().unwrap_or_default(), wfe.name_any())
}

impl OwnWrites {
    /// The version to reconcile: our own later write when `cached` is one it superseded,
    /// otherwise `cached` (and the entry, now outdated, is dropped).
    pub fn freshest(&self, cached: Arc<WorkflowExecution>) -> Arc<WorkflowExecution> {
        let Ok(mut entries) = self.entries.lock() else {
            return cached;
        };
        if entries.is_empty() {
            return cached;
        }
        let k = key(&cached);
        let rv = cached.resource_version().unwrap_or_default();
        match entries.get(&k) {
            Some(w) if w.superseded.contains(&rv) => w.latest.clone(),
            Some(_) => {
                entries.remove(&k);
                cached
            }
            None => cached,
        }
    }

    /// Records that `written` (the API server's response) replaced the versions `superseded`.
    pub fn record(&self, superseded: Vec<String>, mut written: WorkflowExecution) {
        // Kept as the cache would keep it.
        crate::cache::trim_execution(&mut written);
        if let Ok(mut entries) = self.entries.lock() {
            let k = key(&written);
            let mut all = entries.remove(&k).map(|w| w.superseded).unwrap_or_default();
            all.extend(superseded);
            entries.insert(
                k,
                Written {
                    superseded: all,
                    latest: Arc::new(written),
                },
            );
        }
    }

    /// Drops entries whose object is gone (deleted before its next reconcile).
    pub fn retain(&self, exists: impl Fn(&str, &str) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(ns, name), _| exists(ns, name));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wfe_shared::fixtures::execution;

    fn version(rv: &str, phase: &str) -> WorkflowExecution {
        execution("w")
            .namespace("team")
            .resource_version(rv)
            .status(json!({"phase": phase}))
            .build()
    }

    #[test]
    fn a_stale_cached_version_is_replaced_by_our_later_write() {
        let own = OwnWrites::default();
        own.record(vec!["1".into()], version("2", "Running"));
        let got = own.freshest(Arc::new(version("1", "Pending")));
        assert_eq!(got.resource_version().as_deref(), Some("2"));
        assert_eq!(own.len(), 1, "kept until the cache catches up");
    }

    #[test]
    fn chained_writes_supersede_every_earlier_version() {
        let own = OwnWrites::default();
        own.record(vec!["1".into()], version("2", "Pending"));
        own.record(vec!["2".into()], version("3", "Running"));
        for stale in ["1", "2"] {
            let got = own.freshest(Arc::new(version(stale, "Pending")));
            assert_eq!(got.resource_version().as_deref(), Some("3"));
        }
    }

    #[test]
    fn any_version_we_did_not_supersede_wins_and_ends_the_entry() {
        let own = OwnWrites::default();
        own.record(vec!["1".into()], version("2", "Running"));
        for current in ["2", "5"] {
            own.record(vec!["1".into()], version("2", "Running"));
            let got = own.freshest(Arc::new(version(current, "Completed")));
            assert_eq!(got.resource_version().as_deref(), Some(current));
            assert!(own.is_empty());
        }
    }

    #[test]
    fn entries_of_deleted_objects_are_dropped() {
        let own = OwnWrites::default();
        own.record(vec!["1".into()], version("2", "Running"));
        own.retain(|_, _| false);
        assert!(own.is_empty());
    }
}
