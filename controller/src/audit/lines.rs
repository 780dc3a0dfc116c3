//! The embedded sink when no audit URL is configured: one JSON line per event, on stdout or
//! appended to a file, flushed before the delivery is reported.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use wfe_shared::audit::AuditEvent;

use super::sink::{Transport, TransportError};

pub struct LinesTransport {
    out: Mutex<Box<dyn Write + Send>>,
}

impl LinesTransport {
    /// Appends to `file`, or writes to stdout.
    pub fn new(file: Option<&PathBuf>) -> anyhow::Result<Self> {
        let out: Box<dyn Write + Send> = match file {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| anyhow::anyhow!("opening --audit-file {}: {e}", path.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        Ok(LinesTransport {
            out: Mutex::new(out),
        })
    }
}

impl Transport for LinesTransport {
    async fn send(&self, events: &[AuditEvent]) -> Result<(), TransportError> {
        let mut text = Vec::new();
        for e in events {
            serde_json::to_writer(&mut text, e)
                .map_err(|e| TransportError::Rejected(format!("cannot serialize: {e}")))?;
            text.push(b'\n');
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| TransportError::Retryable("the audit file lock is poisoned".into()))?;
        out.write_all(&text)
            .and_then(|()| out.flush())
            .map_err(|e| TransportError::Retryable(format!("writing audit events: {e}")))
    }
}
