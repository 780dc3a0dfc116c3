//! Regular expressions for the API's string grammars, shared by the CRD schema (where the API server
//! enforces them with RE2) and the admission validator. Written in the common subset of RE2 and Rust's
//! `regex` so that both agree exactly.

/// DNS-1123 label: lowercase alphanumerics and '-', ≤ 63 characters, alphanumeric at both ends.
pub const DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// DNS-1123 subdomain: dot-separated DNS-1123 labels (the total ≤ 253 is a separate length rule).
pub const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// `targetResource`: `namespace/kind/name` or `kind/name`. Namespace is a DNS-1123 label, kind a
/// Kubernetes kind (optionally qualified, e.g. `deployment.apps`), name a DNS-1123 subdomain.
pub const TARGET_RESOURCE: &str = concat!(
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?",
    r"[A-Za-z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/",
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
);

/// An OCI reference to a Tekton bundle: `registry/repo[:tag][@sha256:<64 hex>]` — at least one `/`
/// after the registry, repository path components in the distribution grammar, optional tag and digest.
pub const OCI_REFERENCE: &str = concat!(
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?",
    r"(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+",
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?",
    r"(@sha256:[a-f0-9]{64})?$"
);

/// `containerDigest`: a sha256 content digest.
pub const SHA256_DIGEST: &str = r"^sha256:[a-f0-9]{64}$";

/// Parameter keys: UPPER_SNAKE_CASE.
pub const PARAMETER_KEY: &str = r"^[A-Z][A-Z0-9_]*$";

/// A Go `time.Duration` string made of whole or fractional units (`30m`, `1h30m`, `1.5h`, `.5h`,
/// `500ms`, `3µs`): exactly what the webhook's parser accepts (the fuzz target `duration` checks it).
pub const GO_DURATION: &str = r"^(([0-9]+(\.[0-9]+)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$";
