//! DataStorage's batch endpoint: `POST <url>/api/v1/audit/events/batch` with a JSON array of
//! `AuditEventRequest`; 201 `BatchAuditEventResponse`; errors as RFC 7807 problems. 5xx, 401, 403,
//! 408, 429 and network errors are worth retrying; any other 4xx is the receiver's final word.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use wfe_shared::audit::AuditEvent;

use super::sink::{AuditConfig, Transport, TransportError};
use super::token::TokenFile;

/// The path of the batch endpoint under the service's URL.
pub const BATCH_PATH: &str = "/api/v1/audit/events/batch";

pub struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: http::Uri,
    token: Option<TokenFile>,
    timeout: Duration,
}

/// `RFC7807Problem`, as far as a log line needs it.
#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

impl HttpTransport {
    /// A client for `config.url`, trusting `config.ca_file` (else the system's roots).
    pub fn new(config: &AuditConfig) -> anyhow::Result<Self> {
        let url = config.url.as_deref().context("no audit URL")?;
        let endpoint: http::Uri = format!("{}{BATCH_PATH}", url.trim_end_matches('/'))
            .parse()
            .with_context(|| format!("--audit-url {url:?} is not a URL"))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &config.ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading --audit-ca-file {}", path.display()))?
                {
                    roots
                        .add(cert.with_context(|| format!("parsing {}", path.display()))?)
                        .with_context(|| format!("a CA certificate in {}", path.display()))?;
                }
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .context("TLS versions")?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(tls)
            }
            None => builder
                .with_provider_and_native_roots(provider)
                .context("loading the system's CA certificates")?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(HttpTransport {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector),
            endpoint,
            token: config.token_file.clone().map(TokenFile::new),
            timeout: config.timeout,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<(StatusCode, Bytes), TransportError> {
        let mut request = Request::post(self.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, application/problem+json");
        if let Some(token) = &self.token {
            let token = token.get().map_err(TransportError::Retryable)?;
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TransportError::Rejected(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(TransportError::Retryable(format!(
                "POST {}: {}",
                self.endpoint,
                error_chain(e.as_ref())
            ))),
            Err(_) => Err(TransportError::Retryable(format!(
                "POST {}: no answer within {:?}",
                self.endpoint, self.timeout
            ))),
        }
    }
}

impl Transport for HttpTransport {
    async fn send(&self, events: &[AuditEvent]) -> Result<(), TransportError> {
        let body = serde_json::to_vec(events)
            .map_err(|e| TransportError::Rejected(format!("cannot serialize: {e}")))?;
        let (status, body) = self.post(body).await?;
        if status.is_success() {
            return Ok(());
        }
        let what = format!("{status}: {}", problem(&body));
        Err(if worth_retrying(status) {
            TransportError::Retryable(what)
        } else {
            TransportError::Rejected(what)
        })
    }
}

/// Whether a refusal may succeed later: the receiver's trouble (5xx), credentials that may be
/// fixed or rotated (401, 403), or a receiver asking to slow down (429, 408). Any other answer is
/// final for these events.
fn worth_retrying(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::REQUEST_TIMEOUT
        )
}

/// An RFC 7807 problem's title and detail, or the start of whatever else the body is.
fn problem(body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(Problem {
            title: Some(t),
            detail: Some(d),
        }) => format!("{t}: {d}"),
        Ok(Problem {
            title: Some(t),
            detail: None,
        }) => t,
        Ok(Problem {
            detail: Some(d), ..
        }) => d,
        _ => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{StatusCode, problem, worth_retrying};

    #[test]
    fn server_trouble_credentials_and_throttling_are_retried_other_refusals_are_final() {
        for code in [500, 502, 503, 504, 401, 403, 429, 408] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(worth_retrying(status), "{code} is retried");
        }
        for code in [400, 404, 409, 413, 415, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!worth_retrying(status), "{code} is final");
        }
    }

    #[test]
    fn a_problem_reads_as_its_title_and_detail() {
        let p = br#"{"type":"https://kubernaut.ai/problems/validation-error","title":"Validation Error","status":400,"detail":"event_type is required"}"#;
        assert_eq!(problem(p), "Validation Error: event_type is required");
        assert_eq!(problem(br#"{"title":"Bad"}"#), "Bad");
        assert_eq!(problem(b"plain text"), "plain text");
    }
}
