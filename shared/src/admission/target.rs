//! `spec.targetResource`: `namespace/kind/name` (namespaced) or `kind/name` (cluster-scoped).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::admission::patterns;

static DNS1123_LABEL: LazyLock<Regex> = LazyLock::new(|| compile(patterns::DNS1123_LABEL));
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| compile(patterns::DNS1123_SUBDOMAIN));
static KIND: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));

pub(crate) fn compile(pattern: &str) -> Regex {
    // The patterns are constants covered by unit tests; failing here is a build defect, not input.
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}"))
}

/// Kubernetes' own wording for the two name grammars.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character, at most 63 characters (e.g. 'my-name', or '123-abc')";
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character, at most 253 characters (e.g. 'example.com')";

/// A parsed target resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetResource<'a> {
    pub namespace: Option<&'a str>,
    pub kind: &'a str,
    pub name: &'a str,
}

/// Why a target resource string is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be namespace/kind/name (namespaced) or kind/name (cluster-scoped)")]
    Segments,
    #[error("must not contain an empty segment")]
    EmptySegment,
    #[error("namespace {0:?}: {DNS1123_LABEL_MSG}")]
    Namespace(String),
    #[error(
        "kind {0:?}: must start with a letter and contain only letters and digits, optionally qualified by a group (e.g. 'Deployment' or 'deployment.apps')"
    )]
    Kind(String),
    #[error("name {0:?}: {DNS1123_SUBDOMAIN_MSG}")]
    Name(String),
}

impl<'a> TargetResource<'a> {
    /// Parses and validates the grammar of SPEC 2.1.
    pub fn parse(s: &'a str) -> Result<Self, TargetError> {
        let parts: Vec<&str> = s.split('/').collect();
        let (namespace, kind, name) = match parts.as_slice() {
            [kind, name] => (None, *kind, *name),
            [ns, kind, name] => (Some(*ns), *kind, *name),
            _ => return Err(TargetError::Segments),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(TargetError::EmptySegment);
        }
        if let Some(ns) = namespace
            && !is_dns1123_label(ns)
        {
            return Err(TargetError::Namespace(ns.to_owned()));
        }
        if !KIND.is_match(kind) {
            return Err(TargetError::Kind(kind.to_owned()));
        }
        if !is_dns1123_subdomain(name) {
            return Err(TargetError::Name(name.to_owned()));
        }
        Ok(Self {
            namespace,
            kind,
            name,
        })
    }
}

impl fmt::Display for TargetResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Some(ns) => write!(f, "{ns}/{}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// DNS-1123 label (≤ 63).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && DNS1123_LABEL.is_match(s)
}

/// DNS-1123 subdomain (≤ 253).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && DNS1123_SUBDOMAIN.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_namespaced_and_cluster_scoped_targets() {
        let t = TargetResource::parse("payments/deployment/payment-api").unwrap();
        assert_eq!(
            (t.namespace, t.kind, t.name),
            (Some("payments"), "deployment", "payment-api")
        );
        let t = TargetResource::parse("Node/worker-1.example.com").unwrap();
        assert_eq!(
            (t.namespace, t.kind, t.name),
            (None, "Node", "worker-1.example.com")
        );
        assert!(TargetResource::parse("ns/deployment.apps/x").is_ok());
        assert_eq!(
            TargetResource::parse("a/Deployment/b").unwrap().to_string(),
            "a/Deployment/b"
        );
        let long_ns = "n".repeat(63);
        assert!(TargetResource::parse(&format!("{long_ns}/Pod/p")).is_ok());
        let long_name = format!("{}.{}", "a".repeat(63), "b".repeat(189)); // 253
        assert!(TargetResource::parse(&format!("Node/{long_name}")).is_ok());
    }

    #[test]
    fn rejects_each_malformation_with_its_reason() {
        use TargetError::*;
        let cases: &[(&str, TargetError)] = &[
            ("deployment", Segments),
            ("a/b/c/d", Segments),
            ("", Segments),
            ("ns//name", EmptySegment),
            ("/Pod/x", EmptySegment),
            ("Pod/", EmptySegment),
            ("Payments/deployment/x", Namespace("Payments".into())),
            (
                &format!("{}/Pod/p", "n".repeat(64)),
                Namespace("n".repeat(64)),
            ),
            ("ns/9lives/x", Kind("9lives".into())),
            ("ns/deploy-ment/x", Kind("deploy-ment".into())),
            ("ns/deployment/My_App", Name("My_App".into())),
            ("ns/deployment/-x", Name("-x".into())),
        ];
        for (input, want) in cases {
            assert_eq!(
                TargetResource::parse(input).as_ref(),
                Err(want),
                "{input:?}"
            );
        }
        let too_long = format!("Node/{}", "a.".repeat(127) + "a"); // 255
        assert!(matches!(TargetResource::parse(&too_long), Err(Name(_))));
    }

    #[test]
    fn agrees_with_the_crd_pattern() {
        // The schema's single regex and this parser must accept exactly the same strings.
        let schema = compile(patterns::TARGET_RESOURCE);
        for s in [
            "payments/deployment/payment-api",
            "Node/worker-1",
            "ns//x",
            "a/b/c/d",
            "Payments/Deployment/x",
            "ns/deployment.apps/x",
            "ns/9/x",
            "x/y",
            "ns/Pod/a..b",
        ] {
            assert_eq!(
                schema.is_match(s),
                TargetResource::parse(s).is_ok(),
                "{s:?}"
            );
        }
    }
}
