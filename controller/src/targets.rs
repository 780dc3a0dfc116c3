//! The executions on each target, kept from the WorkflowExecution watch: what a Pending
//! execution's safety rules read (`wfe_shared::safety::History`), without a LIST per reconcile.
//!
//! It holds keys only; the objects stay in the reflector's store. Targets are keyed by a 64-bit
//! hash (a collision only adds an execution the rules filter out by its target), namespaces are
//! shared between the keys that name them: a few dozen bytes per execution.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use wfe_shared::WorkflowExecution;

/// (namespace, name) of an execution.
type Key = (Arc<str>, Box<str>);

#[derive(Default)]
struct Inner {
    by_target: HashMap<u64, Vec<Key>>,
    namespaces: HashSet<Arc<str>>,
    /// While the watch re-lists: the index being rebuilt, swapped in when the list is complete
    /// (as the reflector's store does), so executions deleted meanwhile do not linger.
    relisting: Option<HashMap<u64, Vec<Key>>>,
}

/// Executions by target.
#[derive(Default)]
pub struct Targets {
    inner: RwLock<Inner>,
}

fn target_hash(target: &str) -> u64 {
    let mut h = DefaultHasher::new();
    target.hash(&mut h);
    h.finish()
}

impl Inner {
    fn key(&mut self, wfe: &WorkflowExecution) -> Key {
        let ns = wfe.namespace().unwrap_or_default();
        let ns = match self.namespaces.get(ns.as_str()) {
            Some(ns) => ns.clone(),
            None => {
                let ns: Arc<str> = ns.into();
                self.namespaces.insert(ns.clone());
                ns
            }
        };
        (ns, wfe.name_any().into_boxed_str())
    }
}

fn insert(index: &mut HashMap<u64, Vec<Key>>, target: u64, key: Key) {
    let keys = index.entry(target).or_default();
    if !keys.contains(&key) {
        keys.push(key);
        keys.shrink_to_fit();
    }
}

impl Targets {
    /// Applies one watch event (before the reflector stores it).
    pub fn apply(&self, event: &watcher::Event<WorkflowExecution>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        match event {
            watcher::Event::Apply(wfe) => {
                let key = inner.key(wfe);
                let target = target_hash(&wfe.spec.target_resource);
                insert(&mut inner.by_target, target, key);
            }
            watcher::Event::Delete(wfe) => {
                let key = inner.key(wfe);
                let target = target_hash(&wfe.spec.target_resource);
                if let Some(keys) = inner.by_target.get_mut(&target) {
                    keys.retain(|k| *k != key);
                    if keys.is_empty() {
                        inner.by_target.remove(&target);
                    }
                }
            }
            watcher::Event::Init => inner.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(wfe) => {
                let key = inner.key(wfe);
                let target = target_hash(&wfe.spec.target_resource);
                let index = inner.relisting.get_or_insert_with(HashMap::new);
                insert(index, target, key);
            }
            watcher::Event::InitDone => {
                if let Some(index) = inner.relisting.take() {
                    inner.by_target = index;
                }
            }
        }
    }

    /// The executions on `target` (and, rarely, on a target with the same hash).
    pub fn on(&self, target: &str) -> Vec<ObjectRef<WorkflowExecution>> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        inner
            .by_target
            .get(&target_hash(target))
            .into_iter()
            .flatten()
            .map(|(ns, name)| ObjectRef::new(name).within(ns))
            .collect()
    }

    /// Executions indexed.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map(|i| i.by_target.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfe_shared::fixtures::execution;

    fn wfe(ns: &str, name: &str, target: &str) -> WorkflowExecution {
        execution(name).namespace(ns).target(target).build()
    }

    fn names(t: &Targets, target: &str) -> Vec<String> {
        let mut v: Vec<String> = t
            .on(target)
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn executions_are_found_by_target_until_deleted() {
        let t = Targets::default();
        let (a, b, c) = (
            wfe("team", "a", "ns/deployment/x"),
            wfe("other", "b", "ns/deployment/x"),
            wfe("team", "c", "ns/deployment/y"),
        );
        for w in [&a, &b, &c, &a] {
            t.apply(&watcher::Event::Apply(w.clone()));
        }
        assert_eq!(names(&t, "ns/deployment/x"), ["other/b", "team/a"]);
        assert_eq!(names(&t, "ns/deployment/y"), ["team/c"]);
        assert_eq!(t.len(), 3, "an update does not add a second entry");
        t.apply(&watcher::Event::Delete(a));
        assert_eq!(names(&t, "ns/deployment/x"), ["other/b"]);
        t.apply(&watcher::Event::Delete(c));
        assert!(names(&t, "ns/deployment/y").is_empty());
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_once_complete() {
        let t = Targets::default();
        let (a, b) = (
            wfe("team", "a", "ns/deployment/x"),
            wfe("team", "b", "ns/deployment/x"),
        );
        t.apply(&watcher::Event::Apply(a.clone()));
        t.apply(&watcher::Event::Init);
        t.apply(&watcher::Event::InitApply(b));
        // Until the list is complete, the old index answers.
        assert_eq!(names(&t, "ns/deployment/x"), ["team/a"]);
        t.apply(&watcher::Event::InitDone);
        // a was deleted while the watch was down: gone.
        assert_eq!(names(&t, "ns/deployment/x"), ["team/b"]);
    }
}
