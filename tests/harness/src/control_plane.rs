//! A private etcd + kube-apiserver, like controller-runtime's envtest: started, reached (kubeconfig,
//! clients, kubectl, namespaces) and stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::binaries::Binaries;
use crate::crds::install_crds;
use crate::pki::Pki;
use crate::process::{free_port, http_ok, spawn_bound, spawn_reaper, tail};

pub(crate) const FIELD_MANAGER: &str = "wfe-tests";

/// What a kubectl run printed.
#[derive(Clone, Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// stdout and stderr together, as a terminal shows them.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Which CRD files a control plane installs, given the cached binaries (Tekton's CRDs are there).
pub type CrdFiles = fn(&Binaries) -> anyhow::Result<Vec<PathBuf>>;

/// A running etcd + kube-apiserver with the CRDs its caller named installed.
pub struct ControlPlane {
    pub binaries: Binaries,
    /// Temporary directory with data, PKI, logs and the kubeconfig.
    pub dir: PathBuf,
    /// Admin kubeconfig (for kube-rs, kubectl and helm).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    pub etcd_port: u16,
    pub apiserver_port: u16,
    etcd_peer_port: u16,
    /// The certificates and keys kube-apiserver is started with (again, after a stop).
    pki: Option<Pki>,
    children: Mutex<Vec<(Component, Child)>>,
}

/// A process of the control plane, for [`ControlPlane::stop`] and [`ControlPlane::start_again`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
}

impl ControlPlane {
    /// Builds/locates the binaries, starts etcd and kube-apiserver on free ports, writes an admin
    /// kubeconfig, and installs the CRD files `crds` names (in order). Blocking; call it outside an
    /// async runtime (or from a dedicated thread).
    pub fn start(crds: CrdFiles) -> anyhow::Result<Self> {
        let binaries = Binaries::ensure()?;
        let crds = crds(&binaries)?;
        let mut last_err = None;
        // A free port can be taken between probing and binding: retry with new ports.
        for _ in 0..3 {
            match Self::start_once(binaries.clone(), &crds) {
                Ok(cp) => return Ok(cp),
                Err(e) => {
                    eprintln!("[control-plane] start attempt failed: {e:#}");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("control plane did not start")))
    }

    fn start_once(binaries: Binaries, crds: &[PathBuf]) -> anyhow::Result<Self> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("wfe-control-plane-")
            .tempdir()
            .context("creating the control plane's temporary directory")?
            .keep();
        let mut cp = Self {
            binaries,
            kubeconfig: dir.join("kubeconfig"),
            dir,
            server: String::new(),
            etcd_port: free_port()?,
            apiserver_port: free_port()?,
            etcd_peer_port: free_port()?,
            pki: None,
            children: Mutex::new(Vec::new()),
        };
        cp.server = format!("https://127.0.0.1:{}", cp.apiserver_port);
        let pki = Pki::write(&cp.dir)?;
        cp.start_etcd()?;
        cp.start_apiserver(&pki)?;
        cp.pki = Some(pki.clone());
        cp.write_kubeconfig(&pki)?;
        spawn_reaper(std::process::id(), &cp.pids(), &cp.dir)?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a runtime for control plane setup")?;
        runtime.block_on(async {
            let client = cp.try_client().await?;
            wait_ready(&client, &cp).await?;
            install_crds(&client, crds).await
        })?;
        eprintln!(
            "[control-plane] ready in {:.1}s: {} (kubeconfig {})",
            started.elapsed().as_secs_f64(),
            cp.server,
            cp.kubeconfig.display()
        );
        Ok(cp)
    }

    /// Kills one process of the control plane (SIGKILL): an outage, for fault tests.
    pub fn stop(&self, component: Component) {
        if let Ok(mut children) = self.children.lock() {
            for (c, child) in children.iter_mut() {
                if *c == component {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            children.retain(|(c, _)| *c != component);
        }
    }

    /// Starts a stopped process again, with the same ports, data and certificates, and waits until
    /// it serves. Blocking; the process is bound to the calling thread (see [`crate::shared`]): call
    /// it from a thread that lives as long as the control plane
    /// ([`crate::on_lasting_thread`]).
    pub fn start_again(&self, component: Component) -> anyhow::Result<()> {
        match component {
            Component::Etcd => self.start_etcd(),
            Component::ApiServer => {
                let pki = self
                    .pki
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("no PKI recorded"))?;
                self.start_apiserver(&pki)?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building a runtime to wait for kube-apiserver")?;
                runtime.block_on(async {
                    let client = self.try_client().await?;
                    wait_ready(&client, self).await
                })
            }
        }
    }

    fn start_etcd(&self) -> anyhow::Result<()> {
        let peer_port = self.etcd_peer_port;
        let url = format!("http://127.0.0.1:{}", self.etcd_port);
        let mut cmd = Command::new(&self.binaries.etcd);
        cmd.args([
            "--name=wfe-test",
            &format!("--data-dir={}", self.dir.join("etcd").display()),
            &format!("--listen-client-urls={url}"),
            &format!("--advertise-client-urls={url}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-cluster=wfe-test=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]);
        let log = self.dir.join("etcd.log");
        let child = spawn_bound(cmd, &log)?;
        self.track(Component::Etcd, child);
        self.wait_until("etcd /health", &log, Duration::from_secs(30), || {
            http_ok(self.etcd_port, "/health")
        })
    }

    fn start_apiserver(&self, pki: &Pki) -> anyhow::Result<()> {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let mut cmd = Command::new(&self.binaries.kube_apiserver);
        cmd.args([
            format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port),
            format!("--secure-port={}", self.apiserver_port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", d("apiserver-certs")),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--token-auth-file={}", pki.token_file.display()),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--service-account-issuer={}/", self.server),
            format!("--service-account-key-file={}", pki.sa_public.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_private.display()
            ),
            "--endpoint-reconciler-type=none".into(),
            // Profiling only on request (benchmark analysis: `go tool pprof` on /debug/pprof/profile).
            if std::env::var_os("WFE_APISERVER_PROFILING").is_some() {
                "--profiling=true".into()
            } else {
                "--profiling=false".into()
            },
            "--v=0".into(),
        ]);
        let log = self.dir.join("kube-apiserver.log");
        let child = spawn_bound(cmd, &log)?;
        self.track(Component::ApiServer, child);
        // The port opens before /readyz is green; readiness proper is checked with the client.
        self.wait_until(
            "kube-apiserver to listen",
            &log,
            Duration::from_secs(60),
            || std::net::TcpStream::connect(("127.0.0.1", self.apiserver_port)).is_ok(),
        )
    }

    fn write_kubeconfig(&self, pki: &Pki) -> anyhow::Result<()> {
        fs::write(
            &self.kubeconfig,
            self.kubeconfig_text("admin", &pki.token, &pki.ca_cert),
        )
        .context("writing the kubeconfig")
    }

    fn kubeconfig_text(&self, user: &str, token: &str, ca: &std::path::Path) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: wfe-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: wfe-test\n  context:\n    cluster: wfe-test\n    user: {user}\n    namespace: default\ncurrent-context: wfe-test\n",
            server = self.server,
            ca = ca.display(),
        )
    }

    /// A kubeconfig for this control plane that authenticates with `token` (e.g. a
    /// ServiceAccount's, from a TokenRequest) instead of the admin's.
    pub fn kubeconfig_with_token(&self, token: &str) -> anyhow::Result<String> {
        Ok(self.kubeconfig_text("token", token, &self.dir.join("pki/ca.crt")))
    }

    pub async fn try_client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Like [`Self::try_client`], panicking on failure (for tests).
    pub async fn client(&self) -> Client {
        match self.try_client().await {
            Ok(c) => c,
            Err(e) => panic!("cannot build a client for {}: {e:#}", self.server),
        }
    }

    /// Creates a fresh namespace named `<prefix>-<unique>` and returns its name.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> String {
        let name = crate::unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        if let Err(e) = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            panic!("cannot create namespace {name}: {e}");
        }
        name
    }

    /// `kubectl` with this control plane's kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl asynchronously (so a server on the caller's runtime keeps serving meanwhile).
    pub async fn kubectl_run(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.binaries.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot run kubectl: {e}"),
        };
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take())
            && let Err(e) = pipe.write_all(input.as_bytes()).await
        {
            panic!("cannot write to kubectl: {e}");
        }
        match child.wait_with_output().await {
            Ok(out) => KubectlOutput {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => panic!("kubectl did not finish: {e}"),
        }
    }

    /// Process ids of etcd and kube-apiserver.
    pub fn pids(&self) -> Vec<u32> {
        self.children
            .lock()
            .map(|c| c.iter().map(|(_, child)| child.id()).collect())
            .unwrap_or_default()
    }

    fn track(&self, component: Component, child: Child) {
        if let Ok(mut children) = self.children.lock() {
            children.push((component, child));
        }
    }

    fn wait_until(
        &self,
        what: &str,
        log: &Path,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(mut children) = self.children.lock() {
                for (_, child) in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        bail!(
                            "a control plane process exited ({status}) while waiting for {what}; log {}:\n{}",
                            log.display(),
                            tail(log, 3000)
                        );
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; log {}:\n{}",
                    log.display(),
                    tail(log, 3000)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ControlPlane {
    /// Stops the processes and removes the directory (when owned, e.g. by the local environment;
    /// the per-test-binary instance is cleaned up by death signal and reaper instead).
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.lock() {
            for (_, child) in children.iter_mut().rev() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

async fn wait_ready(client: &Client, cp: &ControlPlane) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let request = http::Request::get("/readyz").body(Vec::new())?;
        match client.request_text(request).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            result => {
                if Instant::now() > deadline {
                    bail!(
                        "kube-apiserver not ready after 90s ({result:?}); log:\n{}",
                        tail(&cp.dir.join("kube-apiserver.log"), 3000)
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
