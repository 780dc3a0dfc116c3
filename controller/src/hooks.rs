//! Points where a test can hold a reconcile — to kill the controller exactly there and prove that
//! a restart neither loses nor repeats anything. Production runs without a hook.

use std::pin::Pin;
use std::sync::Arc;

/// Where a reconcile calls the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Audit events were delivered; the status that records it is not written yet.
    AfterDelivery,
    /// A status write succeeded; nothing after it (log lines, metrics, Events) has happened yet.
    AfterStatusWrite,
    /// A PipelineRun was created; the status that records it is not written yet.
    AfterPipelineRunCreate,
    /// An Event was published (others of the same transition may follow).
    AfterEvent,
}

/// Called at each [`Point`]; the reconcile waits for the future it returns.
pub type Hook = Arc<dyn Fn(Point) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
