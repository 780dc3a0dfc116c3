//! The log lines and metrics a plan decided on: one structured line per transition and per side
//! effect, with the execution and its target.

use kube::ResourceExt;
use wfe_shared::WorkflowExecution;
use wfe_shared::plan::{LogLevel, LogLine, Metric};

use crate::metrics::Metrics;

pub fn log(lines: &[LogLine], wfe: &WorkflowExecution) {
    if lines.is_empty() {
        return;
    }
    let execution = format!("{}/{}", wfe.namespace().unwrap_or_default(), wfe.name_any());
    let target = wfe.spec.target_resource.as_str();
    for line in lines {
        let level = line.level();
        match line {
            LogLine::Transition {
                from,
                to,
                reason,
                pipeline_run,
                message,
            } => {
                let (from, to) = (from.as_str(), to.as_str());
                let reason = reason.as_deref().unwrap_or("");
                let run = pipeline_run.as_deref().unwrap_or("");
                match level {
                    LogLevel::Info => {
                        tracing::info!(%execution, target, from, to, reason, pipeline_run = run, "{from} -> {to}: {message}")
                    }
                    LogLevel::Warn => {
                        tracing::warn!(%execution, target, from, to, reason, pipeline_run = run, "{from} -> {to}: {message}")
                    }
                }
            }
            LogLine::Note { message, .. } => match level {
                LogLevel::Info => tracing::info!(%execution, target, "{message}"),
                LogLevel::Warn => tracing::warn!(%execution, target, "{message}"),
            },
        }
    }
}

pub fn count(metrics: &[Metric], m: &Metrics) {
    for metric in metrics {
        match metric {
            Metric::PipelineRun(result) => {
                m.pipeline_runs.with_label_values(&[result.as_str()]).inc()
            }
            Metric::Skipped(reason) => m.skips.with_label_values(&[reason.as_str()]).inc(),
            Metric::Failed(reason) => m.failures.with_label_values(&[reason.as_str()]).inc(),
            Metric::BlockCleared => m.block_clearances.inc(),
            Metric::Finished { outcome, seconds } => {
                let outcome = outcome.as_str();
                m.executions.with_label_values(&[outcome]).inc();
                if let Some(secs) = seconds {
                    m.execution_duration
                        .with_label_values(&[outcome])
                        .observe(*secs);
                }
            }
        }
    }
}
