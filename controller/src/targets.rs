//! The executions on each target, kept from the WorkflowExecution watch: what a Pending
//! execution's safety rules read (`wfe_shared::safety::History`), without a LIST per reconcile.
//!
//! It holds the very objects the reflector's store holds (shared `Arc`s, refreshed with each watch
//! event once the store has applied it; rebuilt from the store when a (re-)list completes), keyed
//! by a 64-bit hash of the target (a collision only adds an execution the rules filter out by its
//! target): 40-odd bytes per execution, nothing copied. An entry the store no longer holds is
//! never returned, and [`Targets::prune`] drops it.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use wfe_shared::WorkflowExecution;

type Wfe = Arc<WorkflowExecution>;

/// The executions of one target: almost always one, so no allocation for it.
enum Slot {
    One(Wfe),
    Many(Vec<Wfe>),
}

impl Slot {
    fn iter(&self) -> impl Iterator<Item = &Wfe> {
        match self {
            Slot::One(w) => std::slice::from_ref(w).iter(),
            Slot::Many(v) => v.iter(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Slot::One(_) => 1,
            Slot::Many(v) => v.len(),
        }
    }

    /// Replaces the entry of `w`'s object, or adds it.
    fn put(&mut self, w: Wfe) {
        let same = |x: &Wfe| {
            x.metadata.name == w.metadata.name && x.metadata.namespace == w.metadata.namespace
        };
        match self {
            Slot::One(x) if same(x) => *x = w,
            Slot::One(x) => *self = Slot::Many(vec![x.clone(), w]),
            Slot::Many(v) => match v.iter_mut().find(|x| same(x)) {
                Some(x) => *x = w,
                None => v.push(w),
            },
        }
    }

    /// Keeps only the entries `keep` accepts; `None` when none is left.
    fn retain(self, mut keep: impl FnMut(&Wfe) -> Option<Wfe>) -> Option<Slot> {
        let mut kept: Vec<Wfe> = self.iter().filter_map(&mut keep).collect();
        match kept.len() {
            0 => None,
            1 => kept.pop().map(Slot::One),
            _ => Some(Slot::Many(kept)),
        }
    }
}

/// Executions by target.
pub struct Targets {
    store: Store<WorkflowExecution>,
    by_target: RwLock<HashMap<u64, Slot>>,
}

fn target_hash(target: &str) -> u64 {
    let mut h = DefaultHasher::new();
    target.hash(&mut h);
    h.finish()
}

impl Targets {
    pub fn new(store: Store<WorkflowExecution>) -> Self {
        Targets {
            store,
            by_target: RwLock::default(),
        }
    }

    /// Takes note of a watch event the store has applied. A listed object waits for the end of
    /// the list (the store swaps them in then), when the index is rebuilt from the store.
    pub fn on_event(&self, event: &watcher::Event<WorkflowExecution>) {
        match event {
            watcher::Event::Apply(w) | watcher::Event::Delete(w) => self.touched(w),
            watcher::Event::InitDone => self.rebuild(),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn rebuild(&self) {
        let mut index: HashMap<u64, Slot> = HashMap::new();
        for w in self.store.state() {
            let target = target_hash(&w.spec.target_resource);
            match index.get_mut(&target) {
                Some(slot) => slot.put(w),
                None => {
                    index.insert(target, Slot::One(w));
                }
            }
        }
        if let Ok(mut current) = self.by_target.write() {
            *current = index;
        }
    }

    /// The store's object for `wfe` now (`None` once it is gone).
    pub fn latest(&self, wfe: &WorkflowExecution) -> Option<Arc<WorkflowExecution>> {
        self.store.get(&ObjectRef::from_obj(wfe))
    }

    /// The store's object for `wfe` replaces its entry (a deleted one is dropped).
    fn touched(&self, wfe: &WorkflowExecution) {
        let target = target_hash(&wfe.spec.target_resource);
        let current = self.store.get(&ObjectRef::from_obj(wfe));
        let Ok(mut index) = self.by_target.write() else {
            return;
        };
        match current {
            Some(w) => match index.get_mut(&target) {
                Some(slot) => slot.put(w),
                None => {
                    index.insert(target, Slot::One(w));
                }
            },
            None => {
                if let Some(slot) = index.remove(&target) {
                    let gone = ObjectRef::from_obj(wfe);
                    let rest =
                        slot.retain(|x| (ObjectRef::from_obj(&**x) != gone).then(|| x.clone()));
                    if let Some(rest) = rest {
                        index.insert(target, rest);
                    }
                }
            }
        }
    }

    /// The executions on `target` (and, rarely, on a target with the same hash), as the store
    /// holds them now.
    pub fn on(&self, target: &str) -> Vec<Wfe> {
        let Ok(index) = self.by_target.read() else {
            return Vec::new();
        };
        index
            .get(&target_hash(target))
            .into_iter()
            .flat_map(Slot::iter)
            .filter_map(|w| self.store.get(&ObjectRef::from_obj(&**w)))
            .collect()
    }

    /// Drops the entries of executions the store no longer holds (deleted while the watch was
    /// down and re-listed); cheap unless there are some.
    pub fn prune(&self) {
        if self.len() <= self.store.len() {
            return;
        }
        let Ok(mut index) = self.by_target.write() else {
            return;
        };
        let old = std::mem::take(&mut *index);
        for (target, slot) in old {
            if let Some(slot) = slot.retain(|w| self.store.get(&ObjectRef::from_obj(&**w))) {
                index.insert(target, slot);
            }
        }
    }

    /// Executions indexed.
    pub fn len(&self) -> usize {
        self.by_target
            .read()
            .map(|i| i.values().map(Slot::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use wfe_shared::fixtures::execution;

    fn wfe(ns: &str, name: &str, target: &str, rv: &str) -> WorkflowExecution {
        execution(name)
            .namespace(ns)
            .target(target)
            .resource_version(rv)
            .build()
    }

    fn names(t: &Targets, target: &str) -> Vec<String> {
        let mut v: Vec<String> = t
            .on(target)
            .iter()
            .map(|w| {
                format!(
                    "{}/{}@{}",
                    w.metadata.namespace.as_deref().unwrap_or_default(),
                    w.metadata.name.as_deref().unwrap_or_default(),
                    w.metadata.resource_version.as_deref().unwrap_or_default()
                )
            })
            .collect();
        v.sort();
        v
    }

    /// What the watch does: the store applies the event, then the index takes note.
    fn event(
        writer: &mut Writer<WorkflowExecution>,
        t: &Targets,
        e: watcher::Event<WorkflowExecution>,
    ) {
        writer.apply_watcher_event(&e);
        t.on_event(&e);
    }

    #[test]
    fn executions_are_found_by_target_in_their_latest_version_until_deleted() {
        let mut writer = Writer::default();
        let t = Targets::new(writer.as_reader());
        let (a, b, c) = (
            wfe("team", "a", "ns/deployment/x", "1"),
            wfe("other", "b", "ns/deployment/x", "1"),
            wfe("team", "c", "ns/deployment/y", "1"),
        );
        for w in [&a, &b, &c] {
            event(&mut writer, &t, watcher::Event::Apply(w.clone()));
        }
        event(
            &mut writer,
            &t,
            watcher::Event::Apply(wfe("team", "a", "ns/deployment/x", "2")),
        );
        assert_eq!(names(&t, "ns/deployment/x"), ["other/b@1", "team/a@2"]);
        assert_eq!(names(&t, "ns/deployment/y"), ["team/c@1"]);
        assert_eq!(t.len(), 3, "an update does not add a second entry");
        // The index shares the store's objects.
        let from_index = t.on("ns/deployment/y").pop().unwrap();
        let from_store = writer.as_reader().get(&ObjectRef::from_obj(&c)).unwrap();
        assert!(Arc::ptr_eq(&from_index, &from_store));
        event(&mut writer, &t, watcher::Event::Delete(a));
        assert_eq!(names(&t, "ns/deployment/x"), ["other/b@1"]);
        event(&mut writer, &t, watcher::Event::Delete(c));
        assert!(names(&t, "ns/deployment/y").is_empty());
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
    }

    #[test]
    fn an_execution_gone_during_a_relist_is_not_found_and_is_pruned() {
        let mut writer = Writer::default();
        let t = Targets::new(writer.as_reader());
        let (a, b) = (
            wfe("team", "a", "ns/deployment/x", "1"),
            wfe("team", "b", "ns/deployment/x", "1"),
        );
        event(&mut writer, &t, watcher::Event::Apply(a.clone()));
        event(&mut writer, &t, watcher::Event::Init);
        event(&mut writer, &t, watcher::Event::InitApply(b));
        event(&mut writer, &t, watcher::Event::InitDone);
        // a was deleted while the watch was down: the list no longer has it.
        assert_eq!(names(&t, "ns/deployment/x"), ["team/b@1"]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_initial_list_is_indexed_once_complete_and_stale_entries_are_pruned() {
        let mut writer = Writer::default();
        let t = Targets::new(writer.as_reader());
        event(&mut writer, &t, watcher::Event::Init);
        for name in ["a", "b"] {
            let w = wfe("team", name, "ns/deployment/x", "1");
            event(&mut writer, &t, watcher::Event::InitApply(w));
        }
        assert!(t.is_empty(), "not before the list is complete");
        event(&mut writer, &t, watcher::Event::InitDone);
        assert_eq!(names(&t, "ns/deployment/x"), ["team/a@1", "team/b@1"]);
        // An entry whose object left the store without a Delete is never returned, and pruned.
        let mut other = Writer::default();
        let empty = Targets::new(other.as_reader());
        let w = wfe("team", "a", "ns/deployment/x", "1");
        other.apply_watcher_event(&watcher::Event::Apply(w.clone()));
        empty.on_event(&watcher::Event::Apply(w));
        other.apply_watcher_event(&watcher::Event::Init);
        other.apply_watcher_event(&watcher::Event::InitDone);
        assert!(empty.on("ns/deployment/x").is_empty());
        assert_eq!(empty.len(), 1);
        empty.prune();
        assert_eq!(empty.len(), 0);
    }
}
