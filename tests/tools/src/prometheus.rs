//! A real Prometheus (Debian's package, extracted) scraping local endpoints, and its query API.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use wfe_harness::{free_port, http_get, spawn_bound};

/// A running Prometheus with its own data directory.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, port)` at `http://127.0.0.1:<port>/metrics` every
    /// second, with `rule_files` loaded and evaluated every second.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        targets: &[(&str, u16)],
        rule_files: &[PathBuf],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("data"))?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, port) in targets {
            config.push_str(&format!(
                "- job_name: {job}\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for file in rule_files {
                config.push_str(&format!("- '{}'\n", file.display()));
            }
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config)?;
        let port = free_port()?;
        let mut cmd = std::process::Command::new(binary);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir);
        let log = dir.join("prometheus.log");
        let child = spawn_bound(cmd, &log)?;
        let mut prometheus = Self { child, port, log };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = prometheus.child.try_wait()? {
                bail!(
                    "prometheus exited with {status}:\n{}",
                    prometheus.log_text()
                );
            }
            if prometheus
                .get("/-/ready")
                .await
                .is_ok_and(|(code, _)| code == 200)
            {
                return Ok(prometheus);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("prometheus not ready after 60s:\n{}", prometheus.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The body of `GET <path>`, whatever its status (the API answers errors in JSON).
    async fn get(&self, path_and_query: &str) -> anyhow::Result<(u16, String)> {
        let port = self.port;
        let path = path_and_query.to_owned();
        tokio::task::spawn_blocking(move || http_get(port, &path)).await?
    }

    /// Evaluates `expr` now (`/api/v1/query`); the `data.result` array, or an error with
    /// Prometheus's own message when the query is invalid.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let (_, body) = self
            .get(&format!("/api/v1/query?query={}", urlencode(expr)))
            .await?;
        let answer: Value =
            serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
        if answer["status"] != "success" {
            bail!(
                "query {expr:?} failed: {} {}",
                answer["errorType"],
                answer["error"]
            );
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every rule Prometheus loaded, with its health (`/api/v1/rules`).
    pub async fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let (_, body) = self.get("/api/v1/rules").await?;
        let answer: Value = serde_json::from_str(&body)?;
        Ok(answer["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scalar value of a single-sample query result.
pub fn sample_value(sample: &Value) -> Option<f64> {
    sample["value"][1].as_str()?.parse().ok()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
