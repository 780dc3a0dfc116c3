//! The container images (`make images`) are self-contained: each unpacks (every blob matching its
//! digest) into a root holding only its static binary and a CA bundle — no shell, no libraries —
//! configured to run as 65532; and the binary runs from that root alone (chroot, as 65532):
//! `--help`, and a health check of the running server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wfe_harness::{free_port, http_ok, spawn_bound};
use wfe_tools::images::{IMAGES, is_static_elf, unpack};
use wfe_tools::shared;

/// Every file of an unpacked root, relative to it.
fn files(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(".")
        .args(["-not", "-type", "d"])
        .current_dir(root)
        .output()
        .expect("find");
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect();
    files.sort();
    files
}

/// `chroot --userspec=65532:65532 <root> <args>`: only what the image holds is reachable, plus
/// the device nodes every container runtime provides (/dev/null, zero, random, urandom).
fn chroot(root: &Path, args: &[&str]) -> Command {
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev).expect("/dev");
    for (name, minor) in [("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)] {
        let path = dev.join(name);
        if !path.exists() {
            let status = Command::new("mknod")
                .args(["-m", "666"])
                .arg(&path)
                .args(["c", "1", &minor.to_string()])
                .status()
                .expect("mknod");
            assert!(status.success(), "mknod {}", path.display());
        }
    }
    // Absolute: the environment (PATH included) is cleared for the child.
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg("--userspec=65532:65532")
        .arg(root)
        .args(args)
        .env_clear();
    cmd
}

#[test]
fn each_image_holds_only_its_static_binary_and_runs_alone_as_65532() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "running a binary inside its unpacked image needs chroot, which needs root"
    );
    for name in IMAGES {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = unpack(name, dir.path()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(image.user, "65532:65532", "{name} runs as non-root");
        assert_eq!(image.entrypoint, [format!("/{name}")], "{name}");
        assert_eq!(
            files(&image.root),
            [
                "etc/ssl/certs/ca-certificates.crt".to_owned(),
                name.to_owned()
            ],
            "{name} holds its binary and the CA bundle, nothing else (no shell)"
        );
        let binary = image.binary().expect("binary");
        assert!(
            is_static_elf(&binary).expect("ELF"),
            "{name} is statically linked"
        );
        let help = chroot(&image.root, &[&format!("/{name}"), "--help"])
            .output()
            .expect("chroot runs");
        assert!(help.status.success(), "{name} --help: {help:?}");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--log-format"),
            "{name} --help prints its flags"
        );
        println!(
            "{name}: {} bytes of layers, binary {} bytes",
            image.layers_bytes,
            std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0)
        );
    }
}

#[test]
fn the_webhook_image_serves_its_health_endpoint_from_its_root_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = unpack("wfe-webhook", dir.path()).expect("unpacks");
    // The certificate goes where the chart mounts it, inside the root.
    let tls = image.root.join("etc/wfe-webhook/tls");
    std::fs::create_dir_all(&tls).expect("mount point");
    let ca = wfe_certs::CertificateAuthority::generate("images-test").expect("ca");
    let cert = ca
        .issue_server("wfe-webhook", &["127.0.0.1".into()])
        .expect("cert");
    std::fs::write(tls.join("tls.crt"), cert.cert_pem).expect("write");
    std::fs::write(tls.join("tls.key"), cert.key_pem).expect("write");
    let (listen, health) = (free_port().expect("port"), free_port().expect("port"));
    let mut cmd = chroot(
        &image.root,
        &[
            "/wfe-webhook",
            &format!("--listen-addr=127.0.0.1:{listen}"),
            &format!("--health-addr=127.0.0.1:{health}"),
        ],
    );
    cmd.stdin(Stdio::null());
    let log = dir.path().join("webhook.log");
    let mut child = spawn_bound(cmd, &log).expect("starts");
    let ready = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        http_ok(health, "/readyz")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "the webhook never became ready:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[tokio::test]
async fn the_controller_image_connects_and_serves_its_health_endpoint_from_its_root_alone() {
    let cp = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = unpack("wfe-controller", dir.path()).expect("unpacks");
    // The API server's CA and an admin token, inside the root (as a mounted token would be).
    let kube = image.root.join("var/run/kube");
    std::fs::create_dir_all(&kube).expect("dir");
    std::fs::copy(cp.dir.join("pki/ca.crt"), kube.join("ca.crt")).expect("ca");
    let admin = std::fs::read_to_string(&cp.kubeconfig).expect("kubeconfig");
    std::fs::write(
        kube.join("config"),
        admin.replace(
            &cp.dir.join("pki/ca.crt").display().to_string(),
            "/var/run/kube/ca.crt",
        ),
    )
    .expect("kubeconfig");
    let client = cp.client().await;
    let exec = cp.namespace(&client, "images-exec").await;
    let health = free_port().expect("port");
    let mut cmd = chroot(
        &image.root,
        &[
            "/wfe-controller",
            &format!("--health-addr=127.0.0.1:{health}"),
            &format!("--execution-namespace={exec}"),
            "--identity=images-test",
        ],
    );
    cmd.env("KUBECONFIG", "/var/run/kube/config")
        .stdin(Stdio::null());
    let log = dir.path().join("controller.log");
    let mut child = spawn_bound(cmd, &log).expect("starts");
    let mut ready = false;
    for _ in 0..300 {
        ready = tokio::task::spawn_blocking(move || http_ok(health, "/readyz"))
            .await
            .unwrap_or(false);
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "the controller never became ready:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
