//! Writes the README's configuration table from the chart's values.yaml (`make chart-docs`);
//! `cargo test -p wfe-tests --test chart` fails when it is out of date.

use std::process::ExitCode;

use wfe_tools::chart::{chart_dir, values_table, with_values_table};
use wfe_tools::repo_root;

fn main() -> ExitCode {
    let readme_path = repo_root().join("README.md");
    let (values, readme) = match (
        std::fs::read_to_string(chart_dir().join("values.yaml")),
        std::fs::read_to_string(&readme_path),
    ) {
        (Ok(v), Ok(r)) => (v, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("chart-docs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(updated) = with_values_table(&readme, &values_table(&values)) else {
        eprintln!("chart-docs: README.md has no values table markers");
        return ExitCode::FAILURE;
    };
    if let Err(e) = std::fs::write(&readme_path, updated) {
        eprintln!("chart-docs: cannot write {}: {e}", readme_path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote the values table in {}", readme_path.display());
    ExitCode::SUCCESS
}
