//! Running the controller for tests: in-process on the caller's runtime, scoped to one namespace of
//! WorkflowExecutions and one execution namespace, with its own leader Lease.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;
use wfe_controller::audit::{AuditConfig, AuditSink};
use wfe_controller::context::{Services, Settings, system_clock};
use wfe_controller::health::Health;
use wfe_controller::hooks::Hook;
use wfe_controller::leader::run;
use wfe_controller::metrics::Metrics;
use wfe_shared::safety::Rules;

/// Settings for a test: short lease, 1 s deadline grace, long cooldown.
pub fn settings(watch_ns: &str, exec_ns: &str, identity: &str) -> Settings {
    Settings {
        execution_namespace: exec_ns.to_owned(),
        watch_namespace: Some(watch_ns.to_owned()),
        rules: Rules {
            cooldown: Duration::from_secs(300),
            ..Rules::default()
        },
        deadline_grace: Duration::from_secs(1),
        pipeline_start_timeout: Duration::from_secs(300),
        concurrency: 8,
        lease_name: format!("wfe-controller-{watch_ns}"),
        lease_namespace: exec_ns.to_owned(),
        lease_duration_seconds: 3,
        lease_grace_seconds: 1,
        identity: identity.to_owned(),
        audit_deletion_grace: Duration::from_secs(60),
    }
}

/// Audit events as JSON lines into `file` (what a controller without `--audit-url` does).
pub fn audit_to_file(file: std::path::PathBuf) -> AuditConfig {
    AuditConfig {
        url: None,
        ca_file: None,
        token_file: None,
        timeout: Duration::from_secs(5),
        file: Some(file),
        buffer: 10_000,
        batch_max: 500,
    }
}

/// Audit events to a DataStorage-compatible receiver at `url`.
pub fn audit_to(url: &str) -> AuditConfig {
    AuditConfig {
        url: Some(url.to_owned()),
        file: None,
        ..audit_to_file(Default::default())
    }
}

/// A controller replica.
pub struct ControllerReplica {
    pub metrics: Metrics,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Where the audit events of a replica without a receiver go.
    _audit_dir: Option<tempfile::TempDir>,
}

impl ControllerReplica {
    /// A replica writing its audit events as JSON lines into a temporary file.
    pub fn start(client: Client, settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = audit_to_file(dir.path().join("audit.jsonl"));
        let mut replica = Self::start_with_audit(client, settings, config);
        replica._audit_dir = Some(dir);
        replica
    }

    /// A replica delivering audit events as `audit` says.
    pub fn start_with_audit(client: Client, settings: Settings, audit: AuditConfig) -> Self {
        Self::start_with(client, settings, audit, None)
    }

    /// A replica delivering audit events as `audit` says, calling `hook` at each hook point.
    pub fn start_with(
        client: Client,
        settings: Settings,
        audit: AuditConfig,
        hook: Option<Hook>,
    ) -> Self {
        let metrics = Metrics::new().expect("metrics register");
        let health = Health {
            metrics: metrics.clone(),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let sink = AuditSink::from_config(&audit, metrics.clone()).expect("audit sink");
        let stop = CancellationToken::new();
        let services = Services {
            clock: system_clock(),
            health,
            audit: sink,
            hook,
        };
        let task = tokio::spawn(run(client, settings, services, stop.clone()));
        Self {
            metrics,
            stop,
            task: Some(task),
            _audit_dir: None,
        }
    }

    /// Graceful stop (SIGTERM): drains and releases the lease.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Abrupt stop: every in-flight reconcile is cut wherever it is.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn counter(&self, name: &str, label: &str) -> u64 {
        let vec = match name {
            "status_writes" => &self.metrics.status_writes,
            "pipeline_runs" => &self.metrics.pipeline_runs,
            "executions" => &self.metrics.executions,
            "skips" => &self.metrics.skips,
            "audit_events" => &self.metrics.audit_events,
            other => panic!("unknown counter {other}"),
        };
        vec.with_label_values(&[label]).get()
    }
}

impl Drop for ControllerReplica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
