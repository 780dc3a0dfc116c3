//! Why a reconcile did not finish.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("WorkflowExecution {0} has no namespace")]
    NoNamespace(String),
    #[error("not the leader: write refused")]
    NotLeader,
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
        matches!(self, Error::Kube(k) if is_kube_conflict(k))
    }
}

pub fn is_kube_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
