//! The binary as an operator runs it: help, health endpoints, and a clear failure without a cluster.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wfe-controller");

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--health-addr",
        "WFE_CONTROLLER_HEALTH_ADDR",
        "--execution-namespace",
        "WFE_EXECUTION_NAMESPACE",
        "--cooldown",
        "WFE_COOLDOWN",
        "--deadline-grace",
        "WFE_DEADLINE_GRACE",
        "--concurrency",
        "WFE_CONCURRENCY",
        "--lease-name",
        "WFE_LEASE_NAME",
        "--lease-namespace",
        "--lease-duration-seconds",
        "--identity",
        "--log-format",
        "WFE_LOG_FORMAT",
        "--log-level",
        "--kube-api-qps",
        "WFE_KUBE_API_QPS",
        "--kube-api-max-in-flight",
        "--watch-namespace",
        "WFE_WATCH_NAMESPACE",
        "--backoff-base",
        "WFE_BACKOFF_BASE",
        "--backoff-max",
        "WFE_BACKOFF_MAX",
        "--backoff-max-exponent",
        "WFE_BACKOFF_MAX_EXPONENT",
        "--max-consecutive-failures",
        "WFE_MAX_CONSECUTIVE_FAILURES",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn bad_safety_rules_stop_it_at_startup_naming_each_setting() {
    let out = Command::new(BIN)
        .args(["--backoff-max", "30s", "--max-consecutive-failures", "0"])
        .env("WFE_BACKOFF_BASE", "1m")
        .env("WFE_CONTROLLER_HEALTH_ADDR", "127.0.0.1:0")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid safety-rule settings")
            && err.contains("--backoff-max (WFE_BACKOFF_MAX) must not be shorter than --backoff-base (WFE_BACKOFF_BASE): 30s < 1m0s")
            && err.contains("--max-consecutive-failures (WFE_MAX_CONSECUTIVE_FAILURES) must be at least 1"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["--backoff-base", "soon"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--backoff-base"), "{err}");
}

#[test]
fn a_lease_grace_not_shorter_than_the_lease_stops_it_at_startup() {
    for (duration, grace) in [("5", "5"), ("5", "6")] {
        let out = Command::new(BIN)
            .args([
                "--lease-duration-seconds",
                duration,
                "--lease-grace-seconds",
                grace,
            ])
            .env("WFE_CONTROLLER_HEALTH_ADDR", "127.0.0.1:0")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .expect("runs");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "--lease-grace-seconds ({grace}) must be less than --lease-duration-seconds ({duration})"
            )),
            "{err}"
        );
    }
}

#[test]
fn without_a_cluster_it_serves_health_is_not_ready_says_why_and_stops_on_sigterm() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .env("WFE_CONTROLLER_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("WFE_LOG_FORMAT", "json")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .expect("starts");
    assert!(get(port, "/healthz").ends_with("ok"));
    let ready = get(port, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not exit within 5s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut logs = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("cannot build a Kubernetes client"), "{logs}");
    assert!(logs.contains("shutdown signal received"), "{logs}");
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

/// Kills the binary if the test fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
