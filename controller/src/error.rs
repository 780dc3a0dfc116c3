//! Why a reconcile did not finish.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("WorkflowExecution {0} has no namespace")]
    NoNamespace(String),
    #[error("not the leader: write refused")]
    NotLeader,
    /// A status write refused with 409, and the object as read back (it did not hold our write).
    #[error("status write conflicted")]
    StatusConflict(Box<wfe_shared::WorkflowExecution>),
    #[error("status write still conflicting after {0} attempts")]
    Conflicts(u32),
    #[error("{0}")]
    Refused(String),
    #[error("the plan asked for more than {0} side effects in one reconcile")]
    Runaway(usize),
}

impl Error {
    /// A 409: the object changed under us; re-read and plan again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::StatusConflict(_))
            || matches!(self, Error::Kube(k) if is_kube_conflict(k))
    }
}

pub fn is_kube_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// An error after which a request may or may not have been carried out, and may succeed if
/// repeated: the API server's 5xx and 429, and failures to reach it (a connection reset, a
/// timeout, a lost answer).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
