//! The control plane's PKI: a CA, the API server's serving certificate, the service-account
//! signing keys and an admin token, written into its directory.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The control plane's certificates and credentials, written into its directory.
#[derive(Clone)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) sa_private: PathBuf,
    pub(crate) sa_public: PathBuf,
    pub(crate) token_file: PathBuf,
    pub(crate) token: String,
}

impl Pki {
    pub(crate) fn write(dir: &Path) -> anyhow::Result<Self> {
        let pki = dir.join("pki");
        fs::create_dir_all(&pki)?;
        let ca = wfe_certs::CertificateAuthority::generate("wfe-test-control-plane-ca")?;
        let serving = ca.issue_server(
            "kube-apiserver",
            &[
                "localhost".into(),
                "127.0.0.1".into(),
                "kubernetes.default.svc".into(),
            ],
        )?;
        let (sa_private, sa_public) = wfe_certs::signing_key_pair()?;
        let token = random_hex(16)?;
        let this = Self {
            ca_cert: pki.join("ca.crt"),
            serving_cert: pki.join("apiserver.crt"),
            serving_key: pki.join("apiserver.key"),
            sa_private: pki.join("sa.key"),
            sa_public: pki.join("sa.pub"),
            token_file: pki.join("tokens.csv"),
            token,
        };
        fs::write(&this.ca_cert, ca.cert_pem())?;
        fs::write(&this.serving_cert, serving.cert_pem)?;
        fs::write(&this.serving_key, serving.key_pem)?;
        fs::write(&this.sa_private, sa_private)?;
        fs::write(&this.sa_public, sa_public)?;
        fs::write(
            &this.token_file,
            format!("{},admin,admin,\"system:masters\"\n", this.token),
        )?;
        Ok(this)
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}
