//! Prometheus metrics of the controller. Labels come from closed sets, never object names.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use wfe_shared::api::Phase;
use wfe_shared::plan::Urgency;
use wfe_shared::status::overdue::PastDeadline;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Executions that reached a terminal phase, by outcome (`Completed`, `Failed`, `Skipped`).
    pub executions: IntCounterVec,
    /// Duration of finished executions, by outcome.
    pub execution_duration: HistogramVec,
    /// PipelineRun creations by result (`created`, `adopted`, `locked`, `unowned`, `error`).
    pub pipeline_runs: IntCounterVec,
    /// Status writes by result (`written`, `conflict`, `error`).
    pub status_writes: IntCounterVec,
    /// Reconciles by result (`ok`, `error`).
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// Time a due reconcile waited for a slot, by urgency (`under_way`, `new`).
    pub reconcile_wait: HistogramVec,
    /// Reconciles waiting for a slot now, by urgency.
    pub reconciles_waiting: IntGaugeVec,
    /// Tasks alive in the controller's async runtime (flat over time when nothing leaks).
    pub runtime_tasks: IntGauge,
    /// PipelineRuns currently holding a target's lock (cached).
    pub lock_holders: IntGauge,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Events published.
    pub events: IntCounter,
    /// Executions Skipped by the safety rules or the lock, by reason.
    pub skips: IntCounterVec,
    /// Block clearances recorded.
    pub block_clearances: IntCounter,
    /// Audit events by result of their delivery attempt (delivered, deferred, rejected).
    pub audit_events: IntCounterVec,
    /// Audit events refused because the buffer was full (they stay owed in their status).
    pub audit_dropped: IntCounter,
    /// Audit events queued or in flight.
    pub audit_depth: IntGauge,
    /// Most audit events the buffer holds (`--audit-buffer`).
    pub audit_capacity: IntGauge,
    /// Failed executions by failure reason.
    pub failures: IntCounterVec,
    /// Executions Pending or Running past their deadline, by phase (the controller ends every
    /// execution by then: any is a controller that is not doing its job).
    pub past_deadline: IntGaugeVec,
    /// Duration of one delivery request (a batch).
    pub audit_request_duration: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Self {
            executions: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_executions_total",
                    "WorkflowExecutions that reached a terminal phase, by outcome.",
                ),
                &["outcome"],
            )?,
            execution_duration: HistogramVec::new(
                HistogramOpts::new(
                    "wfe_controller_execution_duration_seconds",
                    "Start to completion of finished WorkflowExecutions, by outcome.",
                )
                // Up to the longest timeout (24h).
                .buckets(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                    14400.0, 43200.0, 86400.0,
                ]),
                &["outcome"],
            )?,
            pipeline_runs: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_pipelinerun_creations_total",
                    "PipelineRun creation attempts, by result (created, adopted, locked, unowned, error).",
                ),
                &["result"],
            )?,
            status_writes: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_status_writes_total",
                    "Status writes, by result (written, conflict, error). A conflict is re-read and recomputed.",
                ),
                &["result"],
            )?,
            reconciles: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_reconciles_total",
                    "Reconciles, by result (ok, error).",
                ),
                &["result"],
            )?,
            reconcile_duration: HistogramVec::new(
                HistogramOpts::new(
                    "wfe_controller_reconcile_duration_seconds",
                    "Time spent in one reconcile, by phase at its start.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
                &["phase"],
            )?,
            reconcile_wait: HistogramVec::new(
                HistogramOpts::new(
                    "wfe_controller_reconcile_wait_seconds",
                    "Time a due reconcile waited for one of --concurrency slots, by urgency (under_way: Running, finished or deleted executions, which go first; new: Pending ones).",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["urgency"],
            )?,
            reconciles_waiting: IntGaugeVec::new(
                Opts::new(
                    "wfe_controller_reconciles_waiting",
                    "Reconciles waiting for a slot, by urgency.",
                ),
                &["urgency"],
            )?,
            runtime_tasks: IntGauge::new(
                "wfe_controller_runtime_tasks",
                "Tasks alive in the controller's async runtime.",
            )?,
            lock_holders: IntGauge::new(
                "wfe_controller_lock_holders",
                "PipelineRuns of this controller currently holding a target lock.",
            )?,
            leader: IntGauge::new(
                "wfe_controller_leader",
                "1 while this replica holds the leader lease, else 0.",
            )?,
            events: IntCounter::new(
                "wfe_controller_events_total",
                "Kubernetes Events published.",
            )?,
            skips: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_skips_total",
                    "WorkflowExecutions Skipped, by reason (ResourceBusy, RecentlyRemediated, ExhaustedRetries, PreviousExecutionFailed).",
                ),
                &["reason"],
            )?,
            block_clearances: IntCounter::new(
                "wfe_controller_block_clearances_total",
                "Block clearances of failed WorkflowExecutions recorded (kubernaut.ai/clear-execution-block).",
            )?,
            audit_events: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_audit_events_total",
                    "Audit events by result of a delivery attempt (delivered; deferred: retried later; rejected: refused by the receiver, not retried).",
                ),
                &["result"],
            )?,
            audit_dropped: IntCounter::new(
                "wfe_controller_audit_events_dropped_total",
                "Audit events refused because the buffer was full; they stay owed in their execution's status and are sent again.",
            )?,
            audit_depth: IntGauge::new(
                "wfe_controller_audit_buffer_events",
                "Audit events queued or in flight.",
            )?,
            audit_capacity: IntGauge::new(
                "wfe_controller_audit_buffer_capacity_events",
                "Most audit events the buffer holds (--audit-buffer).",
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "wfe_controller_failures_total",
                    "Failed WorkflowExecutions, by failure reason (OOMKilled, DeadlineExceeded, Forbidden, ResourceExhausted, ConfigurationError, ImagePullBackOff, TaskFailed, Unknown).",
                ),
                &["reason"],
            )?,
            past_deadline: IntGaugeVec::new(
                Opts::new(
                    "wfe_controller_executions_past_deadline",
                    "WorkflowExecutions still Pending or Running past their deadline (timeout + --deadline-grace), by phase; the controller should have ended them.",
                ),
                &["phase"],
            )?,
            audit_request_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "wfe_controller_audit_request_duration_seconds",
                    "Duration of one audit delivery (a batch).",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
            )?,
            registry,
        };
        m.registry.register(Box::new(m.executions.clone()))?;
        m.registry
            .register(Box::new(m.execution_duration.clone()))?;
        m.registry.register(Box::new(m.pipeline_runs.clone()))?;
        m.registry.register(Box::new(m.status_writes.clone()))?;
        m.registry.register(Box::new(m.reconciles.clone()))?;
        m.registry
            .register(Box::new(m.reconcile_duration.clone()))?;
        m.registry.register(Box::new(m.reconcile_wait.clone()))?;
        m.registry
            .register(Box::new(m.reconciles_waiting.clone()))?;
        m.registry.register(Box::new(m.runtime_tasks.clone()))?;
        m.registry.register(Box::new(m.lock_holders.clone()))?;
        m.registry.register(Box::new(m.leader.clone()))?;
        m.registry.register(Box::new(m.events.clone()))?;
        m.registry.register(Box::new(m.skips.clone()))?;
        m.registry.register(Box::new(m.block_clearances.clone()))?;
        m.registry.register(Box::new(m.audit_events.clone()))?;
        m.registry.register(Box::new(m.audit_dropped.clone()))?;
        m.registry.register(Box::new(m.audit_depth.clone()))?;
        m.registry.register(Box::new(m.audit_capacity.clone()))?;
        m.registry.register(Box::new(m.failures.clone()))?;
        m.registry.register(Box::new(m.past_deadline.clone()))?;
        // Series the alerts compare exist from the start, so they read 0, not nothing.
        m.set_past_deadline(PastDeadline::default());
        for urgency in Urgency::ALL {
            m.reconciles_waiting.with_label_values(&[urgency.as_str()]);
        }
        for result in ["delivered", "deferred", "rejected"] {
            m.audit_events.with_label_values(&[result]);
        }
        m.registry
            .register(Box::new(m.audit_request_duration.clone()))?;
        Ok(m)
    }

    /// `wfe_controller_executions_past_deadline`, one series per phase.
    pub fn set_past_deadline(&self, late: PastDeadline) {
        for (phase, count) in [
            (Phase::Pending, late.pending),
            (Phase::Running, late.running),
        ] {
            self.past_deadline
                .with_label_values(&[phase.as_str()])
                .set(count as i64);
        }
    }

    /// Zeroes the gauges only the leader keeps current (its cache's view): a standby reports 0.
    pub fn clear_leader_gauges(&self) {
        self.lock_holders.set(0);
        self.set_past_deadline(PastDeadline::default());
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_alerts_compare_exist_from_the_start() {
        let text = Metrics::new().expect("metrics").render();
        for series in [
            r#"wfe_controller_audit_events_total{result="delivered"} 0"#,
            r#"wfe_controller_audit_events_total{result="deferred"} 0"#,
            r#"wfe_controller_audit_events_total{result="rejected"} 0"#,
            r#"wfe_controller_executions_past_deadline{phase="Pending"} 0"#,
            r#"wfe_controller_executions_past_deadline{phase="Running"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }

    #[test]
    fn a_standby_reports_no_leader_only_counts() {
        let m = Metrics::new().expect("metrics");
        m.lock_holders.set(3);
        m.past_deadline.with_label_values(&["Running"]).set(2);
        m.past_deadline.with_label_values(&["Pending"]).set(1);
        m.clear_leader_gauges();
        assert_eq!(m.lock_holders.get(), 0);
        assert_eq!(m.past_deadline.with_label_values(&["Running"]).get(), 0);
        assert_eq!(m.past_deadline.with_label_values(&["Pending"]).get(), 0);
    }
}
