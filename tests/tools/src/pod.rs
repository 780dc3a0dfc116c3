//! A Deployment's pod run as a local process, the way a kubelet would run it, for a control plane
//! without nodes: the container's arguments and environment as the Deployment gives them, its
//! Secret volumes materialised on disk (with the kubelet's atomic `..data` swap when a Secret
//! changes), and — unless the pod opts out — a token of its ServiceAccount (TokenRequest) as its
//! only credential. Listen addresses move from 0.0.0.0 or [::] to 127.0.0.1; nothing else changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use crate::ControlPlane;
use wfe_harness::{http_ok, spawn_bound};

/// A running local "pod".
pub struct LocalPod {
    pub name: String,
    child: Child,
    /// The pod's container ports (by name) and where they listen locally.
    pub ports: BTreeMap<String, u16>,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub service_account: String,
    /// Whether the pod got a ServiceAccount token.
    pub has_token: bool,
    stop: CancellationToken,
}

impl LocalPod {
    /// Starts the pod of Deployment `namespace/deployment`, running `binary` (the image's
    /// entrypoint, unpacked), and waits until its readiness probe passes.
    pub async fn start(
        cp: &ControlPlane,
        client: &Client,
        namespace: &str,
        deployment: &str,
        binary: &Path,
    ) -> anyhow::Result<Self> {
        let deploy = Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(deployment)
            .await
            .with_context(|| format!("reading Deployment {namespace}/{deployment}"))?;
        let spec: PodSpec = deploy
            .spec
            .and_then(|s| s.template.spec)
            .context("Deployment without a pod template")?;
        let container: &Container = spec.containers.first().context("pod without containers")?;
        let name = wfe_harness::unique_name(deployment);
        let dir = cp.dir.join("pods").join(&name);
        std::fs::create_dir_all(&dir)?;

        // Secret volumes, where the container mounts them.
        let mut mounts = Vec::new();
        let mut secrets = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .with_context(|| format!("volumeMount {} has no volume", mount.name))?;
            let Some(secret) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) else {
                bail!(
                    "volume {} is not a Secret volume (not supported here)",
                    volume.name
                );
            };
            let local = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&local)?;
            sync_secret(client, namespace, &secret, &local).await?;
            mounts.push((mount.mount_path.clone(), local.clone()));
            secrets.push((secret, local));
        }

        // Arguments: listen addresses to the loopback interface (same port: give the chart free
        // ports), mount paths to the local volumes.
        let mut args = Vec::new();
        for arg in container
            .command
            .iter()
            .flatten()
            .skip(1)
            .chain(container.args.iter().flatten())
        {
            let mut arg = arg
                .replace("=0.0.0.0:", "=127.0.0.1:")
                .replace("=[::]:", "=127.0.0.1:");
            for (path, local) in &mounts {
                arg = arg.replace(path.as_str(), &local.display().to_string());
            }
            args.push(arg);
        }
        let ports: BTreeMap<String, u16> = container
            .ports
            .iter()
            .flatten()
            .map(|p| {
                Ok((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.container_port)?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;

        // Environment exactly as the pod's (no inherited variables).
        let mut cmd = Command::new(binary);
        cmd.env_clear().args(&args).current_dir(&dir);
        for env in container.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.name") => name.clone(),
                        Some("metadata.namespace") => namespace.to_owned(),
                        other => bail!("env {} from {other:?} is not supported here", env.name),
                    }
                }
                (None, None) => String::new(),
            };
            cmd.env(&env.name, value);
        }
        // An empty HOME: no ~/.kube/config to fall back on.
        let home = dir.join("home");
        std::fs::create_dir_all(&home)?;
        cmd.env("HOME", &home);

        let service_account = spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let sa = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .get(&service_account)
            .await
            .with_context(|| format!("ServiceAccount {namespace}/{service_account}"))?;
        let automount = spec
            .automount_service_account_token
            .or(sa.automount_service_account_token)
            .unwrap_or(true);
        if automount {
            let token = token(client, namespace, &service_account).await?;
            let kubeconfig = dir.join("kubeconfig");
            std::fs::write(&kubeconfig, cp.kubeconfig_with_token(&token)?)?;
            cmd.env("KUBECONFIG", &kubeconfig);
        }

        let log = dir.join("pod.log");
        let child = spawn_bound(cmd, &log)?;
        let stop = CancellationToken::new();
        if !secrets.is_empty() {
            tokio::spawn(resync(
                client.clone(),
                namespace.to_owned(),
                secrets,
                stop.clone(),
            ));
        }
        let mut pod = Self {
            name,
            child,
            ports,
            dir,
            log,
            service_account,
            has_token: automount,
            stop,
        };
        pod.wait_ready(container).await?;
        Ok(pod)
    }

    async fn wait_ready(&mut self, container: &Container) -> anyhow::Result<()> {
        let Some(probe) = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
        else {
            return Ok(());
        };
        let port = match &probe.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                self.ports.get(name).copied()
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.container_port == *n)
                .and_then(|p| {
                    self.ports
                        .get(p.name.as_deref().unwrap_or_default())
                        .copied()
                }),
        }
        .context("readiness probe port is not a container port")?;
        let path = probe.path.clone().unwrap_or_else(|| "/".into());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            let ready = tokio::task::spawn_blocking({
                let path = path.clone();
                move || http_ok(port, &path)
            })
            .await?;
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} not ready after 60s:\n{}", self.name, self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The local port of the container port named `name`.
    pub fn port(&self, name: &str) -> anyhow::Result<u16> {
        self.ports
            .get(name)
            .copied()
            .with_context(|| format!("no port named {name}"))
    }

    /// Stops the process with SIGTERM, as the kubelet does, and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.stop.cancel();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("{} did not stop within 30s of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-hour token of the ServiceAccount (TokenRequest), as a projected token volume would hold.
pub async fn token(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> anyhow::Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for {namespace}/{service_account}"))?;
    answer
        .status
        .and_then(|s| s.token)
        .context("TokenRequest answered without a token")
}

/// Writes the Secret's keys into `dir` the kubelet's way: the files live in a timestamped
/// directory, `..data` points at it, and each key is a symlink through `..data` — so a change is
/// one atomic rename of `..data`. Returns whether anything changed.
async fn sync_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> anyhow::Result<bool> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("Secret {namespace}/{name}"))?;
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let current = dir.join("..data");
    let unchanged = data
        .iter()
        .all(|(k, v)| std::fs::read(current.join(k)).is_ok_and(|old| &old == v));
    if current.exists() && unchanged {
        return Ok(false);
    }
    let stamp = format!("..{}", wfe_harness::unique_name("data"));
    let fresh = dir.join(&stamp);
    std::fs::create_dir_all(&fresh)?;
    for (key, value) in &data {
        std::fs::write(fresh.join(key), value)?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &current)?;
    for key in data.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{key}"), &link)?;
        }
    }
    Ok(true)
}

/// Re-syncs the pod's Secret volumes every half second until stopped (a kubelet takes up to a
/// minute or so; tests want it quicker).
async fn resync(
    client: Client,
    namespace: String,
    secrets: Vec<(String, PathBuf)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for (name, dir) in &secrets {
            if let Err(e) = sync_secret(&client, &namespace, name, dir).await {
                tracing::debug!(secret = %name, "secret volume not synced: {e:#}");
            }
        }
    }
}
