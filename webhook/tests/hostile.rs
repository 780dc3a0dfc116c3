//! Hostile HTTP against the real `wfe-webhook` binary (its own process, so its memory and open
//! files are its own, read from `/proc`): bodies over the limit, clients sending a header or a body
//! byte by byte, thousands of idle connections, HTTP/2 rapid reset, and TLS handshakes that never
//! finish. Through each, a well-behaved client keeps getting its reviews answered, nothing is ever
//! answered 5xx, and memory stays bounded; the attackers' connections are closed by the server.
//! The latency figures printed here are recorded in docs/reliability.md; the bounds asserted are
//! generous (this runs on a busy 2-core CI machine) — the benchmark, not this test, holds the
//! latency target.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use wfe_certs::CertificateAuthority;
use wfe_shared::fixtures::{execution, review};

const BIN: &str = env!("CARGO_BIN_EXE_wfe-webhook");
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// What a well-behaved review may take while an attack runs, on a busy CI machine (the benchmark
/// measures the real latency: p99 ≤ 2 ms at 5,000/s).
const PROMPT: Duration = Duration::from_secs(1);
/// `--read-timeout` and `--request-timeout` here (30 s and 10 s by default).
const READ_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One attack at a time: each measures the webhook's memory and latency alone.
static SERIAL: Mutex<()> = Mutex::const_new(());

struct Webhook {
    child: Child,
    addr: SocketAddr,
    connector: TlsConnector,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Webhook {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::generate("hostile-ca").expect("CA");
        let pair = ca
            .issue_server("wfe-webhook", &["localhost".into()])
            .expect("serving certificate");
        let (cert, key): (PathBuf, PathBuf) =
            (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, pair.cert_pem).expect("write cert");
        std::fs::write(&key, pair.key_pem).expect("write key");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(BIN)
            .arg(format!("--listen-addr={addr}"))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--tls-cert-file={}", cert.display()))
            .arg(format!("--tls-key-file={}", key.display()))
            .arg(format!("--max-request-bytes={MAX_REQUEST_BYTES}"))
            .arg(format!("--read-timeout={}s", READ_TIMEOUT.as_secs()))
            .arg(format!("--request-timeout={}s", REQUEST_TIMEOUT.as_secs()))
            .arg("--log-level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wfe-webhook starts");
        let webhook = Self {
            child,
            addr,
            connector: connector(&ca.cert_pem()),
            ca_pem: ca.cert_pem(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while webhook.review().await.is_err() {
            assert!(Instant::now() < deadline, "the webhook never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        webhook
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the webhook's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    /// Resident memory, KiB.
    fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    async fn tls(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        Ok(self
            .connector
            .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
            .await?)
    }

    /// One review on a fresh connection, as the API server sends it: its latency, after checking
    /// the answer is a 200 allowing it.
    async fn review(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let tls = self.tls().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let (status, body) = post(&mut sender, review_body()).await?;
        anyhow::ensure!(
            status == 200 && body.contains("\"allowed\":true"),
            "{status} {body}"
        );
        Ok(started.elapsed())
    }

    /// `n` reviews one after the other while an attack runs; each must be prompt. Returns the
    /// latencies, sorted.
    async fn keeps_answering(&self, n: usize, during: &str) -> Vec<Duration> {
        let mut latencies = Vec::with_capacity(n);
        for _ in 0..n {
            let latency = tokio::time::timeout(PROMPT * 5, self.review())
                .await
                .unwrap_or_else(|_| panic!("a review got no answer during {during}"))
                .unwrap_or_else(|e| panic!("a review failed during {during}: {e:#}"));
            latencies.push(latency);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{during}: {n} reviews on fresh TLS connections, p50 {:?}, max {:?}; webhook RSS {} KiB, {} open files",
            p(0.5),
            p(1.0),
            self.rss_kib(),
            self.open_files()
        );
        assert!(
            p(1.0) <= PROMPT,
            "during {during} a review took {:?}",
            p(1.0)
        );
        latencies
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connector(ca_pem: &str) -> TlsConnector {
    connector_with_alpn(ca_pem, &[b"http/1.1"])
}

fn connector_with_alpn(ca_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA added");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
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
    body: Bytes,
) -> anyhow::Result<(u16, String)> {
    sender.ready().await?;
    let request = Request::post("/validate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Reads until the server closes the connection (or `within` passes): how long that took, or `None`.
async fn closed_by_server<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .ok()
        .map(|_| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_with_413_and_nothing_else_suffers() {
    let _one = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let big = Bytes::from(vec![b' '; MAX_REQUEST_BYTES + 1]);
    // Declared length over the limit, and a chunked body that grows past it.
    let tls = webhook.tls().await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let (status, body) = post(&mut sender, big.clone()).await.expect("answered");
    assert_eq!(status, 413, "{body}");

    let mut tls = webhook.tls().await.expect("connect");
    tls.write_all(
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .expect("headers");
    let chunk = vec![b' '; 64 * 1024];
    let mut answer = Vec::new();
    for _ in 0..(MAX_REQUEST_BYTES / chunk.len() + 2) {
        let head = format!("{:x}\r\n", chunk.len());
        if tls.write_all(head.as_bytes()).await.is_err()
            || tls.write_all(&chunk).await.is_err()
            || tls.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = tls.flush().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    webhook.keeps_answering(10, "oversized bodies").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_do_not_hold_up_others() {
    let _one = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let rss_before = webhook.rss_kib();
    let request_head = "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 2000\r\n\r\n";
    let mut slow = Vec::new();
    // Half send their header one byte at a time, half a complete header and then the body so.
    for i in 0..100 {
        let mut tls = webhook.tls().await.expect("connect");
        let header_only = i % 2 == 0;
        let task = tokio::spawn(async move {
            let started = Instant::now();
            if !header_only {
                tls.write_all(request_head.as_bytes()).await.ok();
            }
            let drip = if header_only {
                request_head.as_bytes().to_vec()
            } else {
                vec![b' '; 2000]
            };
            for byte in drip {
                if tls.write_all(&[byte]).await.is_err() || tls.flush().await.is_err() {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Stop dripping once the server has given up on us.
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), tls.read(&mut probe)).await
                {
                    return Some(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return None;
                }
            }
            None
        });
        slow.push(task);
    }
    webhook
        .keeps_answering(30, "100 clients dripping a header or body byte by byte")
        .await;
    let mut cut = Vec::new();
    for task in slow {
        let after = task.await.expect("slow client task");
        cut.push(after.expect("the server never cut off a client sending a byte every 500 ms"));
    }
    cut.sort();
    eprintln!(
        "slow clients cut off after {:?} .. {:?}; webhook RSS {} KiB before, {} KiB after",
        cut[0],
        cut[cut.len() - 1],
        rss_before,
        webhook.rss_kib()
    );
    // Each is cut off once its timeout passes (plus a drip interval to notice).
    let longest = READ_TIMEOUT.max(REQUEST_TIMEOUT) + Duration::from_secs(3);
    assert!(
        cut[cut.len() - 1] < longest,
        "a slow client kept its connection {:?}",
        cut[cut.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_cost_bounded_memory_and_are_closed() {
    let _one = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let rss_before = webhook.rss_kib();
    const IDLE: usize = 2000;
    // Half complete TLS and never send a request; half send one review and then idle (keep-alive).
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut tls = webhook.tls().await.expect("connect");
        if i % 2 == 1 {
            let body = review_body();
            let head = format!(
                "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            tls.write_all(head.as_bytes()).await.expect("write");
            tls.write_all(&body).await.expect("write");
            let mut buf = vec![0u8; 8192];
            let n = tls.read(&mut buf).await.expect("an answer");
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        idle.push(tls);
    }
    let rss_held = webhook.rss_kib();
    let files_held = webhook.open_files();
    webhook
        .keeps_answering(30, "2000 idle TLS connections")
        .await;
    eprintln!(
        "{IDLE} idle connections: webhook RSS {rss_before} KiB before, {rss_held} KiB while held ({} KiB per connection), {files_held} open files",
        rss_held.saturating_sub(rss_before) / IDLE as u64
    );
    assert!(
        rss_held < 128 * 1024,
        "{IDLE} idle connections took the webhook to {rss_held} KiB"
    );
    // The server closes idle connections itself.
    let mut closed = Vec::new();
    for (i, tls) in idle.iter_mut().enumerate().step_by(100) {
        let after = closed_by_server(tls, READ_TIMEOUT * 4)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "idle connection {i} still open after {:?}",
                    READ_TIMEOUT * 4
                )
            });
        closed.push(after);
    }
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "idle connections closed by the server; webhook RSS {} KiB, {} open files after",
        webhook.rss_kib(),
        webhook.open_files()
    );
    assert!(webhook.open_files() < 100, "connections left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_not_spoken_so_rapid_reset_gets_nowhere() {
    let _one = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let name = || ServerName::try_from("localhost").expect("name").to_owned();
    // Offering only h2: the server has no protocol in common and refuses the handshake.
    let h2_only = connector_with_alpn(&webhook.ca_pem, &[b"h2"]);
    let tcp = TcpStream::connect(webhook.addr).await.expect("connect");
    let refused = h2_only.connect(name(), tcp).await;
    assert!(
        refused.is_err(),
        "a TLS handshake offering only h2 succeeded"
    );

    // HTTP/2 with prior knowledge over an HTTP/1.1 connection: streams opened and reset at once.
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let tls = webhook.tls().await.expect("TLS");
        attackers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = 0u64;
            let Ok((mut client, conn)) = h2::client::handshake(tls).await else {
                return (sent, started.elapsed());
            };
            let connection = tokio::spawn(conn);
            while started.elapsed() < Duration::from_secs(20) {
                client = match client.ready().await {
                    Ok(c) => c,
                    Err(_) => break,
                };
                let request = http::Request::post("https://localhost/validate")
                    .body(())
                    .expect("request");
                match client.send_request(request, false) {
                    Ok((_, mut stream)) => {
                        stream.send_reset(h2::Reason::CANCEL);
                        sent += 1;
                    }
                    Err(_) => break,
                }
                tokio::task::yield_now().await;
            }
            let _ = connection.await;
            (sent, started.elapsed())
        }));
    }
    webhook
        .keeps_answering(20, "HTTP/2 rapid reset attempts")
        .await;
    for attacker in attackers {
        let (sent, took) = attacker.await.expect("attacker task");
        eprintln!("rapid reset: {sent} streams reset before the connection ended, after {took:?}");
        assert!(
            took < Duration::from_secs(5),
            "an HTTP/2 client kept its connection for {took:?} ({sent} streams)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_that_never_finish_are_timed_out() {
    let _one = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let rss_before = webhook.rss_kib();
    // Half send nothing; half the first bytes of a ClientHello and then nothing.
    let mut stalled = Vec::new();
    for i in 0..1000 {
        let mut tcp = TcpStream::connect(webhook.addr).await.expect("connect");
        if i % 2 == 1 {
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
                .await
                .expect("partial ClientHello");
        }
        stalled.push(tcp);
    }
    webhook
        .keeps_answering(30, "1000 stalled TLS handshakes")
        .await;
    let rss_held = webhook.rss_kib();
    let mut closed = Vec::new();
    for (i, tcp) in stalled.iter_mut().enumerate().step_by(50) {
        let after = closed_by_server(tcp, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("stalled handshake {i} still open after 60 s"));
        closed.push(after);
    }
    eprintln!(
        "stalled handshakes: webhook RSS {rss_before} KiB before, {rss_held} KiB while held; closed by the server within {:?}",
        closed.iter().max()
    );
}
