//! `wfe-certs` writes a CA and a serving certificate whose SANs are the ones asked for.

use std::process::Command;

#[test]
fn writes_a_ca_and_a_serving_certificate_with_the_requested_sans() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wfe-certs"))
        .args(["--out-dir"])
        .arg(dir.path())
        .args(["--san", "wfe-webhook.kubernaut-system.svc,127.0.0.1"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let pem = std::fs::read(dir.path().join("tls.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let sans = cert
        .subject_alternative_name()
        .unwrap()
        .expect("SAN extension");
    let names: Vec<String> = sans
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    // x509-parser prints IP addresses in hex.
    assert_eq!(
        names,
        [
            "DNSName(wfe-webhook.kubernaut-system.svc)",
            "IPAddress(7f:00:00:01)"
        ]
    );
    let ca_pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let (_, ca) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
    assert_eq!(
        cert.issuer(),
        ca.parse_x509().unwrap().subject(),
        "issued by the written CA"
    );
}
