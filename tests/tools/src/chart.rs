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

/// Free local ports for a release whose pods run as local processes ([`crate::pod`]).
#[derive(Clone, Copy, Debug)]
pub struct LocalPorts {
    pub webhook: u16,
    pub webhook_metrics: u16,
    pub controller_metrics: u16,
}

impl LocalPorts {
    pub fn free() -> anyhow::Result<Self> {
        Ok(Self {
            webhook: wfe_harness::free_port()?,
            webhook_metrics: wfe_harness::free_port()?,
            controller_metrics: wfe_harness::free_port()?,
        })
    }

    /// The values a developer gives the chart to run the binaries outside the cluster: the webhook
    /// called at its local URL, these ports, PipelineRuns in `execution_namespace` (created by the
    /// release), `extra` merged on top; everything else the chart's default.
    pub fn values(&self, execution_namespace: &str, extra: Value) -> Value {
        let mut values = serde_json::json!({
            "executionNamespace": {"name": execution_namespace, "create": true},
            "webhook": {
                "url": format!("https://127.0.0.1:{}", self.webhook),
                "port": self.webhook,
                "metricsPort": self.webhook_metrics,
            },
            "controller": {"metricsPort": self.controller_metrics},
        });
        merge(&mut values, extra);
        values
    }
}

/// Merges `from` into `into`, object by object; anything else in `from` replaces.
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
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
        self.with_chart(
            "template",
            release,
            namespace,
            values,
            &["--kube-version", KUBE_VERSION],
        )
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
        self.with_chart(verb, release, namespace, values, &[]).await
    }

    /// `helm <verb> <release> <chart> --namespace <namespace> -f <values> <extra>`.
    async fn with_chart(
        &self,
        verb: &str,
        release: &str,
        namespace: &str,
        values: &Value,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let file = self.values_file(values)?.display().to_string();
        let chart = chart_dir().display().to_string();
        let mut args = vec![verb, release, &chart, "--namespace", namespace, "-f", &file];
        args.extend_from_slice(extra);
        self.ok(&args).await
    }
}

/// Where the README's configuration table sits.
pub const VALUES_BEGIN: &str =
    "<!-- values table: generated from values.yaml by `make chart-docs` -->";
pub const VALUES_END: &str = "<!-- end of values table -->";

/// The configuration table of the README, from the chart's `values.yaml`: one row per setting
/// (a key with a scalar, an empty map or list, or a `flags` entry), with its default and the
/// `# --` comment above it (or above its nearest commented parent).
pub fn values_table(values_yaml: &str) -> String {
    let mut rows = Vec::new();
    let mut path: Vec<(usize, String, String)> = Vec::new(); // (indent, key, description)
    let mut comment: Vec<String> = Vec::new();
    let mut in_comment = false;
    for line in values_yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(text) = trimmed.strip_prefix("# --") {
            comment = vec![text.trim().to_owned()];
            in_comment = true;
            continue;
        }
        if let Some(text) = trimmed.strip_prefix('#') {
            if in_comment {
                comment.push(text.trim().to_owned());
            }
            continue;
        }
        if trimmed.is_empty() {
            comment.clear();
            in_comment = false;
            continue;
        }
        in_comment = false;
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        if trimmed.starts_with('-') {
            continue;
        }
        while path.last().is_some_and(|(i, _, _)| *i >= indent) {
            path.pop();
        }
        // A comment describes the keys after it up to the next blank line or comment.
        let description = if comment.is_empty() {
            path.last().map(|(_, _, d)| d.clone()).unwrap_or_default()
        } else {
            comment.join(" ")
        };
        let value = value.trim();
        let full: Vec<&str> = path
            .iter()
            .map(|(_, k, _)| k.as_str())
            .chain([key])
            .collect();
        if value.is_empty() {
            path.push((indent, key.to_owned(), description));
            continue;
        }
        let inherited = path.last().map(|(_, _, d)| d.as_str()) == Some(description.as_str());
        let shown = if inherited && path.last().is_some_and(|(_, k, _)| k == "flags") {
            format!("`--{key}`")
        } else {
            description
        };
        rows.push(format!(
            "| `{}` | `{}` | {} |",
            full.join("."),
            value.replace('|', "\\|"),
            shown.replace('|', "\\|")
        ));
    }
    let mut table = String::from("| value | default | what |\n|---|---|---|\n");
    for row in rows {
        table.push_str(&row);
        table.push('\n');
    }
    table
}

/// `readme` with its configuration table replaced by `table`; `None` without the markers.
pub fn with_values_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(VALUES_BEGIN)? + VALUES_BEGIN.len();
    let end = readme.find(VALUES_END)?;
    Some(format!(
        "{}\n\n{table}\n{}",
        &readme[..start],
        &readme[end..]
    ))
}
