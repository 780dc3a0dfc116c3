//! Over real TLS: handshake with the generated CA, protocol versions, and certificate rotation the
//! way a Kubernetes Secret volume does it (an atomic `..data` symlink swap) under continuous requests.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use wfe_certs::CertificateAuthority;
use wfe_shared::admission::defaulting::Defaults;
use wfe_shared::fixtures::{execution, review};
use wfe_webhook::server::{ServerConfig, serve};
use wfe_webhook::tls::CertPaths;

/// A Secret-volume-like directory: `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`.
struct SecretDir {
    root: PathBuf,
    version: usize,
}

impl SecretDir {
    fn new(root: &Path, ca: &CertificateAuthority) -> Self {
        let mut dir = Self {
            root: root.to_owned(),
            version: 0,
        };
        dir.publish(ca, None);
        std::os::unix::fs::symlink("..data/tls.crt", root.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", root.join("tls.key")).unwrap();
        dir
    }

    /// Writes a new version and swaps `..data` to it atomically. With `stale_key`, the new certificate
    /// is published with the *previous* key (a half-written update).
    fn publish(&mut self, ca: &CertificateAuthority, stale_key: Option<&Path>) {
        self.version += 1;
        let data = self.root.join(format!("..v{}", self.version));
        std::fs::create_dir(&data).unwrap();
        let pair = ca
            .issue_server("wfe-webhook", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(data.join("tls.crt"), pair.cert_pem).unwrap();
        match stale_key {
            Some(old) => std::fs::copy(old, data.join("tls.key"))
                .map(|_| ())
                .unwrap(),
            None => std::fs::write(data.join("tls.key"), pair.key_pem).unwrap(),
        }
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }

    fn paths(&self) -> CertPaths {
        CertPaths {
            cert: self.root.join("tls.crt"),
            key: self.root.join("tls.key"),
        }
    }
}

async fn start(
    paths: CertPaths,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(
        ServerConfig {
            admission: listener,
            health: None,
            certs: paths,
            reload_interval: Duration::from_millis(50),
            defaults: Defaults::default(),
            max_request_bytes: 1 << 20,
            shutdown_grace: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            metrics: wfe_webhook::metrics::Metrics::new().unwrap(),
        },
        stop.clone(),
    ));
    (addr, stop, task)
}

fn connector(ca_pem: &str, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Full handshakes only: a resumed session carries no certificate, so it would hide a rotation.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// One keep-alive connection: its HTTP sender, the negotiated version and the served leaf.
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> anyhow::Result<(
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    rustls::ProtocolVersion,
    Vec<u8>,
)> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .ok_or_else(|| anyhow::anyhow!("no version"))?;
    let leaf = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok((sender, version, leaf))
}

fn review_body() -> Bytes {
    let object = execution("a")
        .workflow("w", "1.0.0")
        .image("quay.io/a/b:v1")
        .target("ns/deployment/x")
        .json();
    Bytes::from(review("CREATE", object).uid("u-1").json().to_string())
}

async fn post(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    sender.ready().await?;
    let request = Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(review_body()))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_with_the_generated_ca_preferring_tls13_and_accepting_tls12() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let secret = SecretDir::new(dir.path(), &ca);
    let (addr, stop, task) = start(secret.paths()).await;
    wait_listening(addr).await;

    let (mut sender, version, _) = connect(
        &connector(
            &ca.cert_pem(),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        ),
        addr,
    )
    .await
    .unwrap();
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    let (status, body) = post(&mut sender, "/validate").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(r#""allowed":true"#), "{body}");

    let (mut sender, version, _) =
        connect(&connector(&ca.cert_pem(), &[&rustls::version::TLS12]), addr)
            .await
            .unwrap();
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    assert_eq!(post(&mut sender, "/mutate").await.unwrap().0, 200);

    // A client that does not trust our CA is refused at the handshake.
    let other = CertificateAuthority::generate("other-ca").unwrap();
    assert!(
        connect(
            &connector(&other.cert_pem(), &[&rustls::version::TLS13]),
            addr
        )
        .await
        .is_err()
    );

    stop.cancel();
    task.await.unwrap().unwrap();
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("webhook never listened on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_continuous_requests_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let mut secret = SecretDir::new(dir.path(), &ca);
    let (addr, stop, task) = start(secret.paths()).await;
    wait_listening(addr).await;

    let tls = connector(
        &ca.cert_pem(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let running = Arc::new(AtomicBool::new(true));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let leaves = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeSet::<Vec<u8>>::new(),
    ));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (tls, running, ok, failures, leaves) = (
            tls.clone(),
            running.clone(),
            ok.clone(),
            failures.clone(),
            leaves.clone(),
        );
        clients.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                // New connections (new handshakes) and keep-alive requests on each.
                match connect(&tls, addr).await {
                    Ok((mut sender, _, leaf)) => {
                        leaves.lock().unwrap().insert(leaf);
                        for _ in 0..20 {
                            match post(&mut sender, "/validate").await {
                                Ok((200, body)) if body.contains(r#""allowed":true"#) => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                other => failures.lock().unwrap().push(format!("{other:?}")),
                            }
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(format!("connect: {e}")),
                }
            }
        }));
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        secret.publish(&ca, None);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let served = ok.load(Ordering::Relaxed);
    let distinct = leaves.lock().unwrap().len();
    eprintln!(
        "rotation: {served} requests succeeded, {} failed, {distinct} distinct certificates served",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests during rotation: {failures:?}"
    );
    assert!(served > 200, "too few requests to mean anything: {served}");
    assert!(
        distinct >= 5,
        "rotations must be picked up: saw {distinct} certificates"
    );

    let (mut sender, _, _) = connect(&tls, addr).await.unwrap();
    sender.ready().await.unwrap();
    let metrics = sender
        .send_request(
            Request::get("/metrics")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"wfe_webhook_certificate_reloads_total{result="success"} 6"#),
        "{metrics}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_update_is_refused_and_the_old_pair_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let mut secret = SecretDir::new(dir.path(), &ca);
    let (addr, stop, task) = start(secret.paths()).await;
    wait_listening(addr).await;
    let tls = connector(&ca.cert_pem(), &[&rustls::version::TLS13]);
    let (_, _, first) = connect(&tls, addr).await.unwrap();

    let old_key = dir.path().join("..v1/tls.key");
    secret.publish(&ca, Some(&old_key)); // new certificate, old key: mismatch
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sender, _, leaf) = connect(&tls, addr).await.unwrap();
    assert_eq!(leaf, first, "the mismatched pair must not be served");
    assert_eq!(post(&mut sender, "/validate").await.unwrap().0, 200);

    secret.publish(&ca, None); // the complete update arrives
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, leaf) = connect(&tls, addr).await.unwrap();
    assert_ne!(leaf, first, "the good pair is picked up");
    stop.cancel();
    task.await.unwrap().unwrap();
}
