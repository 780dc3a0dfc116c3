//! The real Tekton on a test control plane: Tekton's own controller and resolvers (bundles resolver
//! among them) with Tekton's ConfigMaps, kube-scheduler, kube-controller-manager (garbage collector
//! only), KWOK playing the kubelet of one fake node, and an OCI registry on 127.0.0.1 for bundles.
//! Everything above the pods is Tekton's code; the pods' statuses come from KWOK's stages
//! (`tests/kwok/stages.yaml`), chosen by the image each step runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::binaries::repo_root;
use crate::control_plane::ControlPlane;
use crate::process::{free_port, spawn_bound, spawn_reaper, tail};

/// Tekton's own namespace (`SYSTEM_NAMESPACE` of its controller).
pub const TEKTON_NAMESPACE: &str = "tekton-pipelines";
/// The resolvers' namespace.
pub const RESOLVERS_NAMESPACE: &str = "tekton-pipelines-resolvers";
/// The one fake node KWOK manages.
pub const NODE: &str = "kwok-node-0";
/// Step images whose pods KWOK drives to a failure (any other image succeeds).
pub mod outcome_image {
    /// The step terminates with exit code 1 (reason Error); later steps are skipped.
    pub const EXIT_1: &str = "kwok.local/outcome:exit1";
    /// The step is OOMKilled (exit 137).
    pub const OOM: &str = "kwok.local/outcome:oom";
    /// The step's image cannot be pulled (ErrImagePull, then ImagePullBackOff).
    pub const PULL_FAIL: &str = "kwok.local/outcome:pull-fail";
    /// Every step runs forever (only a timeout ends it).
    pub const HANG: &str = "kwok.local/outcome:hang";
    /// Succeeds (any image not listed above does).
    pub const OK: &str = "example.local/step:ok";
}

/// The processes of the real-Tekton environment; they are bound to the thread that started them.
pub struct RealTekton {
    /// `127.0.0.1:<port>`: the OCI registry bundles are pushed to.
    pub registry: String,
    /// Logs of each process (`<name>.log`).
    pub dir: PathBuf,
    bundle_push: PathBuf,
    children: Mutex<Vec<(String, Child)>>,
}

impl RealTekton {
    /// Starts everything against `cp` and waits until Tekton's controllers run and the node is
    /// Ready. Blocking; the processes die with the calling thread (call it from a long-lived one).
    pub fn start(cp: &ControlPlane) -> anyhow::Result<Self> {
        let started = Instant::now();
        let bins = &cp.binaries;
        let dir = cp.dir.join("real-tekton");
        std::fs::create_dir_all(dir.join("home")).context("creating the real-Tekton directory")?;
        let registry_port = free_port()?;
        let env = Self {
            registry: format!("127.0.0.1:{registry_port}"),
            bundle_push: bins.tekton_bundle_push.clone(),
            dir,
            children: Mutex::new(Vec::new()),
        };
        let kubeconfig = cp.kubeconfig.display().to_string();

        let mut registry = Command::new(&bins.crane);
        registry.args(["registry", "serve", "--address", &env.registry]);
        env.spawn("registry", registry)?;

        for ns in [TEKTON_NAMESPACE, RESOLVERS_NAMESPACE] {
            kubectl(cp, &["create", "namespace", ns])?;
        }
        for part in ["controller", "resolvers"] {
            let config = bins.tekton_config.join(part).display().to_string();
            kubectl(cp, &["apply", "--server-side", "-f", &config])?;
        }

        // knative's sharedmain: six image flags are mandatory (never pulled here); ports of its
        // own per process (its probe on :8080 is fixed: the second process logs the bind failure
        // and works on).
        let knative = |binary: &Path, namespace: &str| -> anyhow::Result<Command> {
            let mut cmd = Command::new(binary);
            cmd.env("KUBECONFIG", &kubeconfig)
                .env("SYSTEM_NAMESPACE", namespace)
                .env("PROBES_PORT", free_port()?.to_string())
                .env("PROFILING_PORT", free_port()?.to_string())
                .env("METRICS_PROMETHEUS_PORT", free_port()?.to_string());
            Ok(cmd)
        };
        let image = |name: &str| format!("example.local/tekton/{name}:v1.15.0");
        let mut controller = knative(&bins.tekton_controller, TEKTON_NAMESPACE)?;
        controller
            .env("METRICS_DOMAIN", "tekton.dev/pipeline")
            .arg("-disable-ha")
            .arg(format!("-entrypoint-image={}", image("entrypoint")))
            .arg(format!("-nop-image={}", image("nop")))
            .arg(format!(
                "-sidecarlogresults-image={}",
                image("sidecarlogresults")
            ))
            .arg(format!("-workingdirinit-image={}", image("workingdirinit")))
            .arg(format!("-shell-image={}", image("busybox")))
            .arg(format!("-shell-image-win={}", image("powershell")));
        env.spawn("tekton-controller", controller)?;
        let mut resolvers = knative(&bins.tekton_resolvers, RESOLVERS_NAMESPACE)?;
        resolvers
            .env("METRICS_DOMAIN", "tekton.dev/resolution")
            .env("CONFIG_LEADERELECTION_NAME", "config-leader-election");
        env.spawn("tekton-resolvers", resolvers)?;

        let component = |binary: &Path, extra: &[&str]| -> anyhow::Result<Command> {
            let mut cmd = Command::new(binary);
            cmd.args([
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--authentication-skip-lookup=true".into(),
                "--leader-elect=false".into(),
                format!("--secure-port={}", free_port()?),
                "--bind-address=127.0.0.1".into(),
            ])
            .args(extra);
            Ok(cmd)
        };
        env.spawn("kube-scheduler", component(&bins.kube_scheduler, &[])?)?;
        // The garbage collector removes a deleted PipelineRun's TaskRuns and their pods.
        env.spawn(
            "kube-controller-manager",
            component(
                &bins.kube_controller_manager,
                &["--controllers=garbagecollector"],
            )?,
        )?;

        let stages = repo_root().join("tests/kwok/stages.yaml");
        let mut kwok = Command::new(&bins.kwok);
        kwok.env("HOME", env.dir.join("home")).args([
            format!("--kubeconfig={kubeconfig}"),
            format!("--config={}", stages.display()),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--node-ip=10.99.0.1".into(),
            "--cidr=10.244.0.0/16".into(),
        ]);
        env.spawn("kwok", kwok)?;
        let pids: Vec<u32> = env
            .children
            .lock()
            .map(|c| c.iter().map(|(_, child)| child.id()).collect())
            .unwrap_or_default();
        spawn_reaper(std::process::id(), &pids, &env.dir)?;

        let node = repo_root()
            .join("tests/kwok/node.yaml")
            .display()
            .to_string();
        kubectl(cp, &["apply", "-f", &node])?;
        env.wait_until("the fake node to be Ready", Duration::from_secs(60), || {
            kubectl(
                cp,
                &[
                    "get",
                    "node",
                    NODE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            )
            .is_ok_and(|s| s == "True")
        })?;
        // The API server taints a new Node not-ready; no node lifecycle controller runs here to
        // lift it once KWOK reports Ready.
        let taints = kubectl(
            cp,
            &["get", "node", NODE, "-o", "jsonpath={.spec.taints[*].key}"],
        )?;
        if taints.contains("node.kubernetes.io/not-ready") {
            kubectl(
                cp,
                &[
                    "taint",
                    "nodes",
                    NODE,
                    "node.kubernetes.io/not-ready:NoSchedule-",
                ],
            )?;
        }
        for name in ["tekton-controller", "tekton-resolvers"] {
            let log = env.dir.join(format!("{name}.log"));
            env.wait_until(
                &format!("{name} to start its controllers"),
                Duration::from_secs(60),
                || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Starting controllers")),
            )?;
        }
        eprintln!(
            "[real-tekton] ready in {:.1}s: registry {}, logs in {}",
            started.elapsed().as_secs_f64(),
            env.registry,
            env.dir.display()
        );
        Ok(env)
    }

    /// Pushes a Tekton bundle holding the resources of `yaml` (documents separated by `---`) as
    /// `<registry>/<repository>:<tag>`; returns the reference by tag.
    pub fn push_bundle(&self, repository: &str, tag: &str, yaml: &str) -> anyhow::Result<String> {
        let reference = format!("{}/{repository}:{tag}", self.registry);
        let file = self
            .dir
            .join(format!("{}-{tag}.yaml", repository.replace('/', "_")));
        std::fs::write(&file, yaml).with_context(|| format!("writing {}", file.display()))?;
        let out = Command::new(&self.bundle_push)
            .arg(&reference)
            .arg(&file)
            .output()
            .with_context(|| format!("running {}", self.bundle_push.display()))?;
        if !out.status.success() {
            bail!(
                "pushing bundle {reference} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(reference)
    }

    /// The log of one process (`tekton-controller`, `kwok`, ...), for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        tail(&self.dir.join(format!("{name}.log")), 4000)
    }

    fn spawn(&self, name: &str, cmd: Command) -> anyhow::Result<()> {
        let child = spawn_bound(cmd, &self.dir.join(format!("{name}.log")))?;
        if let Ok(mut children) = self.children.lock() {
            children.push((name.to_owned(), child));
        }
        Ok(())
    }

    fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(mut children) = self.children.lock() {
                for (name, child) in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        bail!(
                            "{name} exited ({status}) while waiting for {what}:\n{}",
                            self.log_tail(name)
                        );
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for RealTekton {
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.lock() {
            for (_, child) in children.iter_mut().rev() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs kubectl against `cp`; stdout on success, an error with stderr otherwise.
fn kubectl(cp: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let out = cp
        .kubectl()
        .args(args)
        .output()
        .context("running kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
