//! Test harness: a private etcd + kube-apiserver per test binary, with the CRDs its caller names
//! installed, and the processes, ports and `/proc` readings around it. It knows nothing of the
//! product: `wfe-tools` gives it the product's CRD.
//!
//! ```no_run
//! # fn crds(_: &wfe_harness::Binaries) -> anyhow::Result<Vec<std::path::PathBuf>> { Ok(vec![]) }
//! # async fn t() {
//! let cp = wfe_harness::shared(crds);      // started once per test binary, torn down at exit
//! let client = cp.client().await;          // a fresh kube::Client for this test's runtime
//! let ns = cp.namespace(&client, "demo").await; // a fresh namespace for this test
//! # }
//! ```
//! If the control plane cannot start, `shared()` panics: a test without its API server fails.

mod binaries;
mod control_plane;
mod crds;
pub mod fault_proxy;
mod pki;
mod process;
pub mod procfs;
pub mod real_tekton;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub use binaries::{Binaries, repo_root, yaml_files};
pub use control_plane::{Component, ControlPlane, CrdFiles, KubectlOutput};
pub use process::{free_port, http_get, http_ok, spawn_bound};
pub use real_tekton::RealTekton;

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static REAL_TEKTON: OnceLock<Result<RealTekton, String>> = OnceLock::new();

/// The control plane shared by every test of this binary, started on first use with the CRDs
/// `crds` names (later calls get the same control plane).
///
/// It is started from a dedicated thread that lives as long as the process: the children are bound
/// to that thread with `PR_SET_PDEATHSIG`, so they die with the process however it ends (normal exit,
/// panic, Ctrl-C, SIGKILL), and a reaper process removes the temporary directory afterwards.
/// (Calling [`ControlPlane::start`] from a short-lived thread, e.g. tokio's `spawn_blocking`, would
/// kill the control plane when that thread exits.)
pub fn shared(crds: CrdFiles) -> &'static ControlPlane {
    let result = SHARED
        .get_or_init(|| on_lasting_thread("control-plane", move || ControlPlane::start(crds)));
    match result {
        Ok(cp) => cp,
        Err(e) => panic!("the test control plane could not start (tests never skip): {e}"),
    }
}

/// The shared control plane (see [`shared`]) with the real Tekton running on it (see
/// [`RealTekton`]), started on first use, for the whole test binary.
pub fn shared_with_real_tekton(crds: CrdFiles) -> (&'static ControlPlane, &'static RealTekton) {
    let cp = shared(crds);
    let result =
        REAL_TEKTON.get_or_init(|| on_lasting_thread("real-tekton", move || RealTekton::start(cp)));
    match result {
        Ok(tekton) => (cp, tekton),
        Err(e) => panic!("the real Tekton could not start (tests never skip): {e}"),
    }
}

/// Runs `start` on a thread that then parks for the life of the process (so that processes bound
/// to it with `PR_SET_PDEATHSIG` live as long as the process), and returns its result.
pub fn on_lasting_thread<T: Send + 'static>(
    name: &str,
    start: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(start().map_err(|e| format!("{e:#}")));
            loop {
                std::thread::park();
            }
        });
    match spawned {
        Ok(_) => rx
            .recv()
            .unwrap_or_else(|_| Err(format!("the {name} thread died"))),
        Err(e) => Err(format!("cannot spawn the {name} thread: {e}")),
    }
}

/// A name unique within this process and very likely across processes: `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{:x}{:x}-{n}", std::process::id(), nanos % 0xfff)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
