//! `wfe-certs`: writes a CA and a serving certificate for the webhook into a directory.
//!
//! The file names match a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) plus `ca.crt`, so the
//! directory can be mounted or turned into a Secret as is.

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(version, about = "Generate a CA and a webhook serving certificate")]
struct Args {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into (created if missing).
    #[arg(long, env = "WFE_CERTS_OUT_DIR", default_value = "certs/out")]
    out_dir: PathBuf,
    /// Subject alternative names (DNS names or IP addresses), comma-separated.
    #[arg(
        long,
        env = "WFE_CERTS_SANS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    san: Vec<String>,
    /// Common name of the serving certificate.
    #[arg(long, env = "WFE_CERTS_COMMON_NAME", default_value = "wfe-webhook")]
    common_name: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = wfe_certs::CertificateAuthority::generate("wfe-webhook-ca")?;
    let serving = ca.issue_server(&args.common_name, &args.san)?;
    fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    for (file, body) in [
        ("ca.crt", ca.cert_pem()),
        ("ca.key", ca.key_pem()),
        ("tls.crt", serving.cert_pem),
        ("tls.key", serving.key_pem),
    ] {
        let path = args.out_dir.join(file);
        fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote ca.crt, ca.key, tls.crt, tls.key to {} (SANs: {})",
        args.out_dir.display(),
        args.san.join(", ")
    );
    Ok(())
}
