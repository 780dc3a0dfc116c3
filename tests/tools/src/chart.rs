//! The Helm chart, driven like a user drives it: `helm` (built from its Go module) against the
//! control plane, with values given as a file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{ControlPlane, KubectlOutput, repo_root};

/// The chart's directory in the repository.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/workflowexecution-operator")
}

/// The Kubernetes version the chart is linted and rendered for (the control plane's).
pub const KUBE_VERSION: &str = "1.36.4";

/// `helm` for one control plane, with its own config, cache and data directories.
pub struct Helm<'a> {
    cp: &'a ControlPlane,
    home: tempfile::TempDir,
}

impl<'a> Helm<'a> {
    pub fn new(cp: &'a ControlPlane) -> anyhow::Result<Self> {
        Ok(Self {
            cp,
            home: tempfile::tempdir().context("helm's home")?,
        })
    }

    /// Runs `helm <args>`; the output whatever the exit status.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<KubectlOutput> {
        let home = self.home.path();
        let out = tokio::process::Command::new(&self.cp.binaries.helm)
            .args(args)
            .env("KUBECONFIG", &self.cp.kubeconfig)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .context("running helm")?;
        Ok(KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs helm and fails with its output unless it succeeds.
    pub async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        if !out.success {
            bail!("helm {} failed:\n{}", args.join(" "), out.text());
        }
        Ok(out.stdout)
    }

    /// Writes `values` to a file for `-f`.
    pub fn values_file(&self, values: &Value) -> anyhow::Result<PathBuf> {
        let file = tempfile::Builder::new()
            .prefix("values-")
            .suffix(".yaml")
            .tempfile_in(self.home.path())?;
        // JSON is YAML.
        std::fs::write(file.path(), serde_json::to_vec_pretty(values)?)?;
        let (_, path) = file.keep()?;
        Ok(path)
    }

    /// `helm template` of the chart with `values`, as the API server would get it.
    pub async fn template(
        &self,
        release: &str,
        namespace: &str,
        values: &Value,
    ) -> anyhow::Result<String> {
        let file = self.values_file(values)?;
        let chart = chart_dir();
        self.ok(&[
            "template",
            release,
            &chart.display().to_string(),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "-f",
            &file.display().to_string(),
        ])
        .await
    }

    /// `helm install` or `helm upgrade` (`verb`) of the chart with `values`.
    pub async fn deploy(
        &self,
        verb: &str,
        release: &str,
        namespace: &str,
        values: &Value,
    ) -> anyhow::Result<String> {
        let file = self.values_file(values)?;
        let chart = chart_dir();
        self.ok(&[
            verb,
            release,
            &chart.display().to_string(),
            "--namespace",
            namespace,
            "-f",
            &file.display().to_string(),
        ])
        .await
    }
}
