//! What the controller keeps in memory: WorkflowExecutions, trimmed; PipelineRuns and TaskRuns as
//! `wfe_shared::tekton::observed` parses them, keyed by their identity ([`Cached`]).
//!
//! Executions keep their spec and status while they are Pending or Running (a reconcile builds the
//! PipelineRun from the spec and recomputes the whole status) and lose only metadata no reconcile
//! reads; once terminal, [`trim_execution`] trims them further: a terminal status is never
//! rewritten, so only what lock release, deletion and messages need remains.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Deref;

use kube::Resource;
use kube::runtime::reflector::Lookup;
use kube::runtime::watcher;
use wfe_shared::api::names::CLEAR_EXECUTION_BLOCK;
use wfe_shared::tekton::observed::{Observed, Watched};
use wfe_shared::{Phase, WorkflowExecution};

/// A cached PipelineRun or TaskRun: the observed form alone, without the object metadata its watch
/// needed (10,000 cached runs, 2.4 MB less; docs/benchmarks.md).
#[derive(Clone, Debug, PartialEq)]
pub struct Cached<T>(pub T);

impl<T> Deref for Cached<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Observed> Lookup for Cached<T> {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        <T::Kind as Resource>::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        <T::Kind as Resource>::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        <T::Kind as Resource>::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        <T::Kind as Resource>::plural(&())
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.0.identity().name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.0.identity().namespace))
    }
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.0
            .identity()
            .resource_version
            .as_deref()
            .map(Cow::Borrowed)
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        self.0.identity().uid.as_deref().map(Cow::Borrowed)
    }
}

/// A watch event as the cache keeps it: the observed object, its watch metadata dropped.
pub fn cached<T>(event: watcher::Event<Watched<T>>) -> watcher::Event<Cached<T>> {
    use watcher::Event as E;
    match event {
        E::Apply(w) => E::Apply(Cached(w.observed)),
        E::Delete(w) => E::Delete(Cached(w.observed)),
        E::Init => E::Init,
        E::InitApply(w) => E::InitApply(Cached(w.observed)),
        E::InitDone => E::InitDone,
    }
}

/// Drops what a terminal (Completed, Failed, Skipped) execution's reconcile never reads; keeps
/// identity, finalizers, deletion, the target and workflow, and the status fields that lock release
/// and the per-target history (phase, times, PipelineRun, failure class, counters) are made of.
/// Executions still in flight lose only the metadata no reconcile reads (managed fields, labels,
/// annotations — `kubectl apply`'s last-applied copy of the object among them).
pub fn trim_execution(wfe: &mut WorkflowExecution) {
    let m = &mut wfe.metadata;
    m.managed_fields = None;
    // Only a block clearance is read from the annotations.
    m.annotations = m
        .annotations
        .take()
        .map(|mut a| {
            a.retain(|k, _| k.starts_with(CLEAR_EXECUTION_BLOCK));
            a
        })
        .filter(|a| !a.is_empty());
    m.labels = None;
    m.owner_references = None;
    // An execution that still owes audit events keeps what they are built from (and is the
    // base of the whole-status write that records their delivery).
    let trimmable = wfe
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_terminal() && s.audit_pending.is_empty());
    if !trimmable {
        return;
    }
    let spec = &mut wfe.spec;
    spec.parameters = BTreeMap::new();
    spec.rationale = None;
    spec.confidence = None;
    spec.execution_config = None;
    spec.workflow_ref.container_image = String::new();
    spec.workflow_ref.container_digest = None;
    // A Failed execution keeps the audit correlation id (its block clearance's event needs it).
    let failed = wfe
        .status
        .as_ref()
        .is_some_and(|s| s.phase == Phase::Failed);
    spec.remediation_request_ref = wfe_shared::api::RemediationRequestReference {
        name: if failed {
            std::mem::take(&mut spec.remediation_request_ref.name)
        } else {
            String::new()
        },
        ..Default::default()
    };
    if let Some(s) = wfe.status.as_mut() {
        s.conditions = Vec::new();
        s.pipeline_run_status = None;
        if let Some(d) = s.failure_details.as_mut() {
            d.message = String::new();
            d.natural_language_summary = String::new();
            d.failed_task_name = String::new();
            d.failed_step_name = None;
        }
        if let Some(d) = s.skip_details.as_mut() {
            d.message = String::new();
            d.conflicting_workflow = None;
            d.recent_remediation = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wfe_shared::Phase;
    use wfe_shared::fixtures;

    fn execution(phase: &str) -> WorkflowExecution {
        fixtures::execution("w")
            .namespace("team")
            .resource_version("9")
            .uid("u")
            .finalized()
            .set("metadata.labels", json!({"a": "b"}))
            .set("metadata.managedFields", json!([{"manager": "m"}]))
            .remediation_request("rr")
            .workflow("restart", "1")
            .image("quay.io/x/y:v1")
            .target("ns/deployment/x")
            .param("A", "b")
            .timeout("30m")
            .status(json!({"phase": phase, "startTime": "2026-01-01T00:00:00Z",
                           "completionTime": "2026-01-01T00:01:00Z",
                           "pipelineRunRef": {"name": "wfe-0123456789abcdef"},
                           "conditions": [{"type": "TektonPipelineCreated", "status": "True", "reason": "PipelineCreated",
                                           "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .build()
    }

    #[test]
    fn a_cached_run_is_keyed_and_versioned_by_its_identity() {
        use kube::runtime::reflector::{ObjectRef, store::Writer};
        use wfe_shared::tekton::observed::{Identity, ObservedRun};
        let run = |rv: &str| {
            Cached(ObservedRun {
                identity: Identity {
                    name: "wfe-1".into(),
                    namespace: "exec".into(),
                    uid: Some("u".into()),
                    resource_version: Some(rv.into()),
                    deletion_timestamp: None,
                },
                ..Default::default()
            })
        };
        let key = run("1").to_object_ref(());
        assert_eq!(key, ObjectRef::new("wfe-1").within("exec"));
        assert_eq!(key.extra.resource_version.as_deref(), Some("1"));
        assert_eq!(key.extra.uid.as_deref(), Some("u"));
        assert_eq!(Cached::<ObservedRun>::plural(&()), "pipelineruns");
        assert_eq!(Cached::<ObservedRun>::group(&()), "tekton.dev");

        let mut writer = Writer::default();
        writer.apply_watcher_event(&watcher::Event::Apply(run("1")));
        writer.apply_watcher_event(&watcher::Event::Apply(run("2")));
        let store = writer.as_reader();
        assert_eq!(store.len(), 1, "one entry per name, the newest version");
        let got = store.get(&ObjectRef::new("wfe-1").within("exec")).unwrap();
        assert_eq!(got.identity.resource_version.as_deref(), Some("2"));
        writer.apply_watcher_event(&watcher::Event::Delete(run("3")));
        assert_eq!(writer.as_reader().len(), 0);
    }

    #[test]
    fn watch_events_keep_their_kind_and_lose_the_watch_metadata() {
        use wfe_shared::tekton::observed::{ObservedRun, Watched};
        let watched: Watched<ObservedRun> = serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": "wfe-1", "namespace": "exec", "resourceVersion": "4"}
        }))
        .unwrap();
        let observed = watched.observed.clone();
        let e = |e: watcher::Event<Watched<ObservedRun>>| match cached(e) {
            watcher::Event::Apply(c) => ("apply", Some(c)),
            watcher::Event::Delete(c) => ("delete", Some(c)),
            watcher::Event::InitApply(c) => ("init-apply", Some(c)),
            watcher::Event::Init => ("init", None),
            watcher::Event::InitDone => ("init-done", None),
        };
        let want = Some(Cached(observed));
        assert_eq!(
            e(watcher::Event::Apply(watched.clone())),
            ("apply", want.clone())
        );
        assert_eq!(
            e(watcher::Event::Delete(watched.clone())),
            ("delete", want.clone())
        );
        assert_eq!(e(watcher::Event::InitApply(watched)), ("init-apply", want));
        assert_eq!(e(watcher::Event::Init), ("init", None));
        assert_eq!(e(watcher::Event::InitDone), ("init-done", None));
    }

    #[test]
    fn executions_in_flight_lose_only_metadata_no_reconcile_reads() {
        for phase in ["Pending", "Running"] {
            let original = execution(phase);
            let mut w = original.clone();
            trim_execution(&mut w);
            assert!(w.metadata.managed_fields.is_none() && w.metadata.labels.is_none());
            w.metadata.managed_fields = original.metadata.managed_fields.clone();
            w.metadata.labels = original.metadata.labels.clone();
            assert_eq!(w, original, "{phase}");
        }
    }

    #[test]
    fn terminal_executions_keep_what_lock_release_and_deletion_read() {
        let mut w = execution("Completed");
        trim_execution(&mut w);
        assert_eq!(w.metadata.name.as_deref(), Some("w"));
        assert_eq!(w.metadata.resource_version.as_deref(), Some("9"));
        assert_eq!(
            w.metadata.finalizers.as_deref(),
            Some(&[wfe_shared::api::names::FINALIZER.to_owned()][..])
        );
        assert_eq!(w.spec.target_resource, "ns/deployment/x");
        assert_eq!(w.spec.workflow_ref.workflow_id, "restart");
        assert!(w.spec.parameters.is_empty() && w.spec.execution_config.is_none());
        let s = w.status.as_ref().unwrap();
        assert_eq!(s.phase, Phase::Completed);
        assert!(s.completion_time.is_some() && s.start_time.is_some());
        assert_eq!(
            s.pipeline_run_ref.as_ref().map(|r| r.name.as_str()),
            Some("wfe-0123456789abcdef")
        );
        assert!(s.conditions.is_empty());
    }
}
