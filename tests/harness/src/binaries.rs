//! Locates (building on first use) the control-plane binaries and the Tekton CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The repository root (the workspace directory; this crate is `tests/harness`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Paths of everything the control plane needs.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kubectl: PathBuf,
    pub tekton_crds: PathBuf,
    pub promtool: PathBuf,
    pub prometheus: PathBuf,
    /// ServiceMonitor and PrometheusRule CRDs (directory of YAML files).
    pub prometheus_operator_crds: PathBuf,
    pub helm: PathBuf,
    pub crane: PathBuf,
    /// cert-manager's CRDs (directory of YAML files).
    pub cert_manager_crds: PathBuf,
    /// cert-manager's controllers (issuers, approver, CA and self-signed signers, certificates).
    pub cert_manager_controller: PathBuf,
    pub cert_manager_cainjector: PathBuf,
    /// Tekton's own SetDefaults + Validate of PipelineRuns (JSON array on stdin).
    pub tekton_validate: PathBuf,
    /// The real-Tekton environment: Tekton's controller and resolvers, their ConfigMaps
    /// (`controller/` and `resolvers/` YAML files), KWOK, kube-scheduler, kube-controller-manager,
    /// and our bundle pusher.
    pub tekton_controller: PathBuf,
    pub tekton_resolvers: PathBuf,
    pub tekton_config: PathBuf,
    pub kwok: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub tekton_bundle_push: PathBuf,
}

impl Binaries {
    /// Pipes Prometheus text exposition through `promtool check metrics`; `Err` with its findings.
    pub fn promtool_check(&self, exposition: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut child = Command::new(&self.promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.promtool.display()))?;
        child
            .stdin
            .take()
            .context("promtool stdin")?
            .write_all(exposition.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "promtool check metrics failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Runs `scripts/build-control-plane.sh`, which builds or fetches each piece only when its
    /// versioned cache entry is missing, and returns the cached paths.
    pub fn ensure() -> anyhow::Result<Self> {
        let script = repo_root().join("scripts/build-control-plane.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} failed with {}", script.display(), out.status);
        }
        let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Self::in_cache(&cache)
    }

    /// Tekton's CRD files, in a stable order.
    pub fn tekton_crd_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        yaml_files(&self.tekton_crds)
    }
}

/// The YAML files of a directory, in a stable order.
pub fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

impl Binaries {
    fn in_cache(cache: &Path) -> anyhow::Result<Self> {
        let versions = Versions::from_env();
        // Keyed by version and by the hash of our mains: the script names the current build.
        let current_build = |name: &str| -> anyhow::Result<PathBuf> {
            let pointer = cache.join(name);
            Ok(PathBuf::from(
                std::fs::read_to_string(&pointer)
                    .with_context(|| format!("reading {}", pointer.display()))?
                    .trim(),
            ))
        };
        let cert_manager = current_build("cert-manager-current")?;
        let bins = Self {
            etcd: cache.join(format!("etcd-v{}/etcd", versions.etcd)),
            kube_apiserver: cache.join(format!("kube-apiserver-v{}/kube-apiserver", versions.k8s)),
            kubectl: cache.join(format!("kubectl-v{}/kubectl", versions.kubectl)),
            tekton_crds: cache.join(format!("tekton-crds-v{}", versions.tekton)),
            promtool: cache.join("prometheus-deb/promtool"),
            prometheus: cache.join("prometheus-deb/prometheus"),
            prometheus_operator_crds: cache.join(format!(
                "prometheus-operator-crds-v{}",
                versions.prometheus_operator
            )),
            helm: cache.join(format!("helm-v{}/helm", versions.helm)),
            crane: cache.join(format!("crane-v{}/crane", versions.crane)),
            cert_manager_crds: cache.join(format!("cert-manager-crds-v{}", versions.cert_manager)),
            cert_manager_controller: cert_manager.join("cm-controller"),
            cert_manager_cainjector: cert_manager.join("cm-cainjector"),
            tekton_validate: current_build("tekton-validate-current")?.join("tekton-validate"),
            tekton_controller: cache.join(format!("tekton-v{}/tekton-controller", versions.tekton)),
            tekton_resolvers: cache.join(format!("tekton-v{}/tekton-resolvers", versions.tekton)),
            tekton_config: cache.join(format!("tekton-v{}/config", versions.tekton)),
            kwok: cache.join(format!("kwok-v{}/kwok", versions.kwok)),
            kube_scheduler: cache.join(format!("kube-scheduler-v{}/kube-scheduler", versions.k8s)),
            kube_controller_manager: cache.join(format!(
                "kube-controller-manager-v{}/kube-controller-manager",
                versions.k8s
            )),
            tekton_bundle_push: current_build("tekton-bundle-current")?.join("tekton-bundle-push"),
        };
        for path in [
            &bins.etcd,
            &bins.kube_apiserver,
            &bins.kubectl,
            &bins.tekton_crds,
            &bins.promtool,
            &bins.prometheus,
            &bins.prometheus_operator_crds,
            &bins.helm,
            &bins.crane,
            &bins.cert_manager_crds,
            &bins.cert_manager_controller,
            &bins.cert_manager_cainjector,
            &bins.tekton_validate,
            &bins.tekton_controller,
            &bins.tekton_resolvers,
            &bins.tekton_config,
            &bins.kwok,
            &bins.kube_scheduler,
            &bins.kube_controller_manager,
            &bins.tekton_bundle_push,
        ] {
            if !path.exists() {
                bail!("{} is missing after the build script ran", path.display());
            }
        }
        Ok(bins)
    }
}

/// Versions, with the same defaults and environment overrides as the build script.
struct Versions {
    k8s: String,
    etcd: String,
    kubectl: String,
    tekton: String,
    helm: String,
    crane: String,
    prometheus_operator: String,
    cert_manager: String,
    kwok: String,
}

impl Versions {
    fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            k8s: var("K8S_VERSION", "1.36.4"),
            etcd: var("ETCD_VERSION", "3.6.14"),
            kubectl: var("KUBECTL_VERSION", "1.36.4"),
            tekton: var("TEKTON_VERSION", "1.15.0"),
            helm: var("HELM_VERSION", "4.3.2"),
            crane: var("CRANE_VERSION", "0.22.1"),
            prometheus_operator: var("PROMETHEUS_OPERATOR_VERSION", "0.85.0"),
            cert_manager: var("CERT_MANAGER_VERSION", "1.21.2"),
            kwok: var("KWOK_VERSION", "0.8.0"),
        }
    }
}
