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

impl Point {
    // Read only where kill points are (builds with debug assertions) and in tests.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    const ALL: [Point; 4] = [
        Point::AfterDelivery,
        Point::AfterStatusWrite,
        Point::AfterPipelineRunCreate,
        Point::AfterEvent,
    ];

    /// The name `WFE_KILL_AT` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Point::AfterDelivery => "after-delivery",
            Point::AfterStatusWrite => "after-status-write",
            Point::AfterPipelineRunCreate => "after-pipelinerun-create",
            Point::AfterEvent => "after-event",
        }
    }
}

/// The variable that selects a kill point in a test build.
pub const KILL_AT: &str = "WFE_KILL_AT";

/// Test builds only (debug assertions on: never the release images): `WFE_KILL_AT=<point>:<n>`
/// aborts the process the `n`th time a reconcile reaches `<point>` (`after-pipelinerun-create`,
/// `after-status-write`, `after-event`, `after-delivery`) — a crash exactly there, for the fault
/// matrix. `Err` names what is wrong with the value.
#[cfg(debug_assertions)]
pub fn kill_point_from_env() -> Result<Option<Hook>, String> {
    let Ok(spec) = std::env::var(KILL_AT) else {
        return Ok(None);
    };
    let names = || Point::ALL.map(Point::as_str).join(", ");
    let (name, nth) = spec.split_once(':').ok_or_else(|| {
        format!(
            "{KILL_AT}={spec:?}: must be <point>:<n>, point one of {}",
            names()
        )
    })?;
    let point = Point::ALL
        .into_iter()
        .find(|p| p.as_str() == name)
        .ok_or_else(|| format!("{KILL_AT}: unknown point {name:?}; one of {}", names()))?;
    let nth: usize = nth
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{KILL_AT}: {nth:?} is not a count of 1 or more"))?;
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tracing::warn!(
        point = name,
        nth,
        "test build: the process aborts at this kill point"
    );
    Ok(Some(Arc::new(move |at| {
        if at == point && hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
            tracing::warn!(point = at.as_str(), nth, "kill point reached: aborting");
            std::process::abort();
        }
        Box::pin(async {})
    })))
}

/// Release builds have no kill points; a `WFE_KILL_AT` is ignored, with a warning.
#[cfg(not(debug_assertions))]
pub fn kill_point_from_env() -> Result<Option<Hook>, String> {
    if std::env::var_os(KILL_AT).is_some() {
        tracing::warn!("{KILL_AT} is ignored: kill points exist in test builds only");
    }
    Ok(None)
}
