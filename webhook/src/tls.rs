//! The serving certificate: loaded from disk, resolved per handshake, reloaded when the files change.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, so the store polls the *content*
//! of the two paths instead of relying on file events. A new pair replaces the old one atomically;
//! connections already established keep their session, so nothing in flight fails. A half-written
//! pair (certificate and key that do not match) is refused and the previous pair stays in use.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Why a certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("certificate and key do not match (a half-written update?): {0}")]
    Mismatch(rustls::Error),
    #[error("cannot parse the certificate's validity: {0}")]
    Validity(String),
}

/// Where the serving certificate and key live.
#[derive(Clone, Debug)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The current serving certificate, shared with rustls.
pub struct CertStore {
    current: ArcSwapOption<CertifiedKey>,
    /// Content of the files last loaded, to notice changes.
    loaded_from: Mutex<Option<(Vec<u8>, Vec<u8>)>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl Default for CertStore {
    fn default() -> Self {
        Self::new()
    }
}

impl CertStore {
    pub fn new() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            loaded_from: Mutex::new(None),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    /// True once a certificate has been loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Loads the pair when its content differs from what is in use. `Ok(true)` when swapped.
    pub fn reload_if_changed(
        &self,
        paths: &CertPaths,
        metrics: &Metrics,
    ) -> Result<bool, CertError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| CertError::Read {
                path: path.clone(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(&paths.cert)?, read(&paths.key)?);
        {
            let loaded = self.loaded_from.lock().unwrap_or_else(|p| p.into_inner());
            if loaded
                .as_ref()
                .is_some_and(|(c, k)| *c == cert_pem && *k == key_pem)
            {
                return Ok(false);
            }
        }
        match self.parse(paths, &cert_pem, &key_pem) {
            Ok((key, not_after)) => {
                self.current.store(Some(Arc::new(key)));
                *self.loaded_from.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((cert_pem, key_pem));
                metrics
                    .certificate_reloads
                    .with_label_values(&["success"])
                    .inc();
                metrics.certificate_expiry.set(not_after as f64);
                Ok(true)
            }
            Err(e) => {
                metrics
                    .certificate_reloads
                    .with_label_values(&["failure"])
                    .inc();
                Err(e)
            }
        }
    }

    fn parse(
        &self,
        paths: &CertPaths,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(CertifiedKey, i64), CertError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        let Some(leaf) = chain.first() else {
            return Err(CertError::NoCertificate {
                path: paths.cert.clone(),
            });
        };
        let not_after = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| CertError::Validity(e.to_string()))?
            .1
            .validity()
            .not_after
            .timestamp();
        let key_err = |detail: String| CertError::Key {
            path: paths.key.clone(),
            detail,
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| key_err(e.to_string()))?;
        let signing_key = self
            .provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| key_err(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified.keys_match().map_err(CertError::Mismatch)?;
        Ok((certified, not_after))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// A rustls server configuration (TLS 1.3 preferred, 1.2 minimum; http/1.1 only, see
/// `server::serve`) serving the store's current certificate.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(store.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Polls the files every `interval` until cancelled, swapping in changed pairs.
pub async fn watch(
    store: Arc<CertStore>,
    paths: CertPaths,
    interval: Duration,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match store.reload_if_changed(&paths, &metrics) {
            Ok(true) => tracing::info!(cert = %paths.cert.display(), "serving certificate loaded"),
            Ok(false) => {}
            Err(e) if store.is_loaded() => {
                tracing::warn!(error = %e, "new serving certificate refused; still serving the previous one")
            }
            Err(e) => tracing::warn!(error = %e, "no serving certificate yet; not ready"),
        }
    }
}
