//! The control plane never outlives its test process: not on panic, Ctrl-C (SIGINT) or SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie waiting for a reaper is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Starts the probe, returns it with the control plane's directory and process ids.
fn start_probe(mode: &str) -> (std::process::Child, PathBuf, Vec<u32>) {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_control-plane-probe"))
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("probe starts");
    let mut line = String::new();
    BufReader::new(probe.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("probe reports its control plane");
    let mut parts = line.split_whitespace();
    let dir = PathBuf::from(parts.next().expect("dir in probe output"));
    let pids: Vec<u32> = parts.map(|p| p.parse().expect("pid")).collect();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver: {line}");
    assert!(pids.iter().all(|&p| alive(p)), "control plane runs: {line}");
    assert!(dir.exists());
    (probe, dir, pids)
}

fn assert_torn_down(dir: &std::path::Path, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while (pids.iter().any(|&p| alive(p)) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in pids {
        assert!(!alive(pid), "process {pid} outlived the test process");
    }
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[test]
fn a_panicking_test_process_leaves_nothing_behind() {
    let (mut probe, dir, pids) = start_probe("panic");
    let status = probe.wait().expect("probe exits");
    assert_eq!(status.code(), Some(101), "probe panicked");
    assert_torn_down(&dir, &pids);
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    let (mut probe, dir, pids) = start_probe("wait");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(probe.id() as i32, libc::SIGINT) }, 0);
    probe.wait().expect("probe exits");
    assert_torn_down(&dir, &pids);
}

#[test]
fn sigkill_leaves_nothing_behind() {
    let (mut probe, dir, pids) = start_probe("wait");
    probe.kill().expect("SIGKILL");
    probe.wait().expect("probe exits");
    assert_torn_down(&dir, &pids);
}
