//! What every reconcile shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use wfe_shared::plan;
use wfe_shared::safety::Rules;
use wfe_shared::tekton::observed::{ObservedRun, ObservedTaskRun};

use crate::audit::AuditSink;
use crate::cache::Cached;
use crate::hooks::Hook;
use crate::targets::Targets;

use crate::metrics::Metrics;
use crate::own_writes::OwnWrites;

/// Tunables.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace the PipelineRuns run in.
    pub execution_namespace: String,
    /// Only WorkflowExecutions in this namespace (all namespaces when `None`).
    pub watch_namespace: Option<String>,
    /// Cooldown (also how long a Completed/Failed execution keeps the target's lock), backoff and
    /// the failure threshold.
    pub rules: Rules,
    /// Added to `executionConfig.timeout` before the controller's own deadline fires.
    pub deadline_grace: Duration,
    /// How long a created PipelineRun may stay unstarted before `TektonPipelineRunning` turns False.
    pub pipeline_start_timeout: Duration,
    /// How long a deleted execution waits for its audit events before it goes without them.
    pub audit_deletion_grace: Duration,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Name of the leader Lease (in `lease_namespace`).
    pub lease_name: String,
    pub lease_namespace: String,
    /// Lease duration and renew grace, in seconds.
    pub lease_duration_seconds: u64,
    pub lease_grace_seconds: u64,
    /// This replica's identity (pod name).
    pub identity: String,
}

/// Injectable clock, so tests need no sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub runs: Store<Cached<ObservedRun>>,
    /// Which watched executions are on each target.
    pub targets: Arc<Targets>,
    pub task_runs: Store<Cached<ObservedTaskRun>>,
    /// Who publishes Events. Each Event is published once (one per transition), so no recorder —
    /// and no recorder cache, which would only grow — is kept between events.
    pub reporter: Reporter,
    pub metrics: Metrics,
    /// Where audit events go.
    pub audit: Arc<AuditSink>,
    pub clock: Clock,
    /// Our own writes the cache has not caught up with yet.
    pub own_writes: OwnWrites,
    /// Cleared the moment leadership is lost: every write checks it first.
    pub leading: Arc<AtomicBool>,
    /// A test's hook (none in production).
    pub hook: Option<Hook>,
}

/// What a running controller is given besides its client and settings.
#[derive(Clone)]
pub struct Services {
    pub clock: Clock,
    pub health: crate::health::Health,
    pub audit: Arc<AuditSink>,
    pub hook: Option<Hook>,
}

impl Context {
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Calls the test hook at `point`, if there is one.
    pub async fn at(&self, point: crate::hooks::Point) {
        if let Some(hook) = &self.hook {
            hook(point).await;
        }
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// The clock and tunables the plan is made with, read now.
    pub fn plan_context(&self) -> plan::Context<'_> {
        plan::Context {
            now: self.now(),
            execution_namespace: &self.settings.execution_namespace,
            rules: &self.settings.rules,
            deadline_grace: self.settings.deadline_grace,
            start_timeout: self.settings.pipeline_start_timeout,
            audit_deletion_grace: self.settings.audit_deletion_grace,
        }
    }
}
