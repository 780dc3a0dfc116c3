//! Writes the chart's generated files (the WorkflowExecution CRD and the webhooks' match
//! conditions), or the CRD alone to stdout with `--stdout`.
//!
//! `cargo run -p wfe-shared --bin crdgen` from anywhere in the workspace.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files = match wfe_shared::api::crd::chart_files() {
        Ok(files) => files,
        Err(err) => {
            eprintln!("crdgen: {err}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|a| a == "--stdout") {
        if let Some((_, crd)) = files.first() {
            print!("{crd}");
        }
        return ExitCode::SUCCESS;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (relative, content) in files {
        let path = root.join(relative);
        if let Some(dir) = path.parent()
            && let Err(err) = std::fs::create_dir_all(dir)
        {
            eprintln!("crdgen: cannot create {}: {err}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(err) = std::fs::write(&path, content) {
            eprintln!("crdgen: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {relative}");
    }
    ExitCode::SUCCESS
}
