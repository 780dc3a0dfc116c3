//! Prometheus metrics of the webhook. Label values come from closed sets, never from object names.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The webhook's metrics and their registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Admission requests by endpoint (`mutate`/`validate`), operation and result.
    pub requests: IntCounterVec,
    /// Time to answer an admission request, by endpoint.
    pub duration: HistogramVec,
    /// `notAfter` of the serving certificate, as a Unix timestamp.
    pub certificate_expiry: Gauge,
    /// Certificate loads from disk, by result (`success`/`failure`).
    pub certificate_reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "wfe_webhook_admission_requests_total",
                "Admission requests answered, by endpoint, operation and result (allowed, patched, denied, malformed).",
            ),
            &["endpoint", "operation", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "wfe_webhook_admission_duration_seconds",
                "Time from receiving an admission request body to having its answer, by endpoint.",
            )
            // Up to the API server's 5 s timeout.
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5,
                1.0, 5.0,
            ]),
            &["endpoint"],
        )?;
        let certificate_expiry = Gauge::new(
            "wfe_webhook_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires (notAfter).",
        )?;
        let certificate_reloads = IntCounterVec::new(
            Opts::new(
                "wfe_webhook_certificate_reloads_total",
                "Loads of the serving certificate from disk, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        registry.register(Box::new(certificate_reloads.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            certificate_expiry,
            certificate_reloads,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
