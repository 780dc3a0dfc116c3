//! The binary as an operator runs it: help, health endpoint, clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wfe-webhook");
const HEALTH_ENV: &str = "WFE_WEBHOOK_HEALTH_ADDR";

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--health-addr",
        HEALTH_ENV,
        "--log-format",
        "WFE_LOG_FORMAT",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn serves_healthz_is_not_ready_without_a_certificate_and_exits_cleanly_on_sigterm() {
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, tls_port) = (free(), free());
    let mut child = Command::new(BIN)
        .env(HEALTH_ENV, format!("127.0.0.1:{port}"))
        .env("WFE_WEBHOOK_LISTEN_ADDR", format!("127.0.0.1:{tls_port}"))
        .env("WFE_WEBHOOK_TLS_CERT_FILE", "/nonexistent/tls.crt")
        .env("WFE_WEBHOOK_TLS_KEY_FILE", "/nonexistent/tls.key")
        .env("WFE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .expect("starts");
    let body = get(port, "/healthz");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok"), "{body}");
    let body = get(port, "/readyz");
    assert!(body.starts_with("HTTP/1.1 503"), "{body}");
    assert!(
        body.ends_with("no serving certificate loaded yet"),
        "{body}"
    );
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit within 5s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains(r#""message":"shutdown signal received""#),
        "JSON logs: {logs}"
    );
}

fn get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut buf = String::new();
            s.read_to_string(&mut buf).unwrap();
            return buf;
        }
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refuses_defaults_that_would_fail_validation() {
    let out = Command::new(BIN)
        .env("WFE_DEFAULT_TIMEOUT", "48h")
        .env("WFE_WEBHOOK_HEALTH_ADDR", "127.0.0.1:0")
        .env("WFE_WEBHOOK_LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--default-timeout \"48h\" must be a Go duration greater than 0s and at most 24h"
        ),
        "{err}"
    );
}

/// Kills the binary if the test fails before it exits, so no process outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
