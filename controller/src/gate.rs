//! The reconciles' slots: at most `--concurrency` run at once, and when all are taken a freed slot
//! goes to the longest-waiting reconcile of the most urgent class
//! ([`wfe_shared::plan::Urgency`]).
//!
//! kube-rs's own limit hands a freed slot to any due object (its pending set is a hash set), so
//! under a burst of creates a finished PipelineRun's report waited behind arbitrary new work:
//! seconds at p99 (docs/benchmarks.md, "Overload tail"). The controller loop therefore runs
//! unlimited and every reconcile first waits here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use wfe_shared::plan::Urgency;

/// Slots for reconciles.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    /// Waiters by class, oldest first. A waiter that gave up leaves a closed sender, skipped when
    /// reached. Invariant: `free > 0` only while no one waits.
    waiting: [VecDeque<oneshot::Sender<Slot>>; Urgency::ALL.len()],
}

/// A taken slot; dropping it hands the slot on.
pub struct Slot {
    /// `None` once handed back without handing it on (see `Drop`).
    inner: Option<Arc<Mutex<State>>>,
}

impl Gate {
    pub fn new(slots: usize) -> Self {
        Gate {
            inner: Arc::new(Mutex::new(State {
                free: slots.max(1),
                waiting: Default::default(),
            })),
        }
    }

    /// Waits for a slot. Cancel-safe: a waiter dropped before its turn takes nothing, and a slot
    /// handed to a waiter that is gone is handed on.
    pub async fn enter(&self, urgency: Urgency) -> Slot {
        let receiver = {
            let Ok(mut state) = self.inner.lock() else {
                // A poisoned lock means a panic while holding it; run unlimited rather than never.
                return self.slot();
            };
            if state.free > 0 {
                state.free -= 1;
                return self.slot();
            }
            let (sender, receiver) = oneshot::channel();
            state.waiting[urgency.index()].push_back(sender);
            receiver
        };
        match receiver.await {
            Ok(slot) => slot,
            // The gate dropped our sender: only when it is itself gone.
            Err(_) => self.slot(),
        }
    }

    /// Reconciles waiting for a slot, by class (closed senders of waiters that gave up included
    /// until they are reached).
    pub fn waiting(&self) -> [usize; Urgency::ALL.len()] {
        self.inner
            .lock()
            .map(|s| s.waiting.each_ref().map(VecDeque::len))
            .unwrap_or_default()
    }

    fn slot(&self) -> Slot {
        Slot {
            inner: Some(self.inner.clone()),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let Ok(mut state) = inner.lock() else {
            return;
        };
        for class in Urgency::ALL {
            while let Some(next) = state.waiting[class.index()].pop_front() {
                let slot = Slot {
                    inner: Some(inner.clone()),
                };
                match next.send(slot) {
                    Ok(()) => return,
                    // That waiter is gone and `send` gave the slot back: emptied, so dropping it
                    // does not take this lock again.
                    Err(mut slot) => slot.inner = None,
                }
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Starts a waiter that records its name once it has a slot, and holds the slot until told.
    fn waiter(
        gate: &Gate,
        urgency: Urgency,
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> (tokio::task::JoinHandle<()>, oneshot::Sender<()>) {
        let (gate, order) = (gate.clone(), order.clone());
        let (release, released) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _slot = gate.enter(urgency).await;
            order.lock().unwrap().push(name);
            let _ = released.await;
        });
        (task, release)
    }

    #[tokio::test]
    async fn work_under_way_goes_first_then_each_class_in_arrival_order() {
        let gate = Gate::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (first, release_first) = waiter(&gate, Urgency::New, "first", &order);
        settle().await;
        let mut later = Vec::new();
        for (urgency, name) in [
            (Urgency::New, "new-1"),
            (Urgency::New, "new-2"),
            (Urgency::UnderWay, "under-way-1"),
            (Urgency::New, "new-3"),
            (Urgency::UnderWay, "under-way-2"),
        ] {
            later.push(waiter(&gate, urgency, name, &order));
            settle().await;
        }
        assert_eq!(gate.waiting(), [2, 3]);
        release_first.send(()).unwrap();
        first.await.unwrap();
        let mut tasks = Vec::new();
        for (task, release) in later {
            release.send(()).unwrap();
            tasks.push(task);
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "first",
                "under-way-1",
                "under-way-2",
                "new-1",
                "new-2",
                "new-3"
            ]
        );
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_takes_no_slot() {
        let gate = Gate::new(1);
        let held = gate.enter(Urgency::New).await;
        // Gives up while waiting.
        let gone = tokio::time::timeout(Duration::from_millis(10), gate.enter(Urgency::UnderWay));
        assert!(gone.await.is_err());
        drop(held);
        // The slot was not lost to the waiter that left.
        let again = tokio::time::timeout(Duration::from_secs(1), gate.enter(Urgency::New)).await;
        assert!(again.is_ok());
        assert_eq!(gate.waiting(), [0, 0]);
    }

    #[tokio::test]
    async fn no_more_than_the_slots_run_at_once() {
        let gate = Gate::new(3);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let urgency = Urgency::ALL[i % 2];
                    let _slot = gate.enter(urgency).await;
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Every slot came back.
        let state = gate.inner.lock().unwrap();
        assert_eq!(state.free, 3);
    }
}
