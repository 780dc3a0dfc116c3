//! A private certificate authority and the certificates it issues: serving certificates for the
//! webhook and the test API server, and client certificates for tests.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// Error creating a key or certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid subject alternative name {name:?}: {source}")]
    InvalidSan { name: String, source: rcgen::Error },
    #[error("cannot generate certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone, Debug)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed certificate authority.
pub struct CertificateAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A new CA with a fresh ECDSA P-256 key.
    pub fn generate(common_name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA certificate (what clients trust, e.g. a webhook's `caBundle`).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's private key.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A serving certificate for the given DNS names and IP addresses (each string is either).
    pub fn issue_server(
        &self,
        common_name: &str,
        sans: &[String],
    ) -> Result<CertifiedKey, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate; Kubernetes reads the user from CN and groups from O.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertifiedKey, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<CertifiedKey, CertError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh ECDSA P-256 key pair as (private PKCS#8 PEM, public SPKI PEM), e.g. for signing
/// service-account tokens.
pub fn signing_key_pair() -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(value: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    value
        .to_owned()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|source| CertError::InvalidSan {
            name: value.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_server_and_client_certificates_signed_by_the_ca() {
        let ca = CertificateAuthority::generate("test-ca").unwrap();
        let server = ca
            .issue_server("webhook", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.key_pem.contains("PRIVATE KEY"));
        let client = ca.issue_client("admin", &["system:masters"]).unwrap();
        assert!(client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.cert_pem() != server.cert_pem);
    }

    #[test]
    fn rejects_an_invalid_dns_name() {
        let ca = CertificateAuthority::generate("test-ca").unwrap();
        let err = ca.issue_server("x", &["caf\u{e9}.example".into()]);
        assert!(matches!(err, Err(CertError::InvalidSan { .. })), "{err:?}");
    }
}
