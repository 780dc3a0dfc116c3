//! Running the product for tests and by hand: the product's control plane (the harness with our
//! CRD and Tekton's), the controller and webhook in-process, and a Tekton stand-in. The binaries
//! are `local-env` (what `make up` runs) and the benchmarks.

pub mod audit;
pub mod chart;
pub mod controller;
pub mod env;
pub mod faults;
pub mod images;
pub mod pod;
pub mod prometheus;
pub mod real_tekton;
pub mod tekton;
pub mod webhook;

use std::path::PathBuf;

use wfe_harness::Binaries;

pub use wfe_harness::{
    ControlPlane, KubectlOutput, RealTekton, eventually, procfs, repo_root, unique_name,
};

/// The control plane shared by every test of this binary, with the WorkflowExecution CRD (from the
/// chart) and Tekton's CRDs installed. Panics if it cannot start: a test without its API server
/// fails, it never skips.
pub fn shared() -> &'static ControlPlane {
    wfe_harness::shared(product_crds)
}

fn product_crds(binaries: &Binaries) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![repo_root().join(wfe_shared::api::crd::CHART_CRD_PATH)];
    files.extend(binaries.tekton_crd_files()?);
    Ok(files)
}

/// A control plane of its own (not shared), with the product's CRDs: `local-env` runs one.
pub fn start() -> anyhow::Result<ControlPlane> {
    ControlPlane::start(product_crds)
}
