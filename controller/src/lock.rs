//! The lock sweep. Terminal executions hold their target's lock for the cooldown; rather than one
//! timer per finished execution (10,000 timers for 10,000 executions), one sweep looks for due
//! locks every `cooldown / 10` (between 1 s and 10 s) and asks for those executions' reconciles,
//! whose plan deletes the PipelineRun. Which locks are due is the plan's rule
//! ([`wfe_shared::plan::lock_due`]).

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};
use wfe_shared::WorkflowExecution;
use wfe_shared::plan::{lock_due, lock_expired};
use wfe_shared::tekton::observed::ObservedRun;

use crate::cache::Cached;
use crate::context::Context;

pub fn expired_locks(
    wfes: Store<WorkflowExecution>,
    runs: Store<Cached<ObservedRun>>,
    ctx: Arc<Context>,
) -> impl Stream<Item = ObjectRef<WorkflowExecution>> + Send + 'static {
    let every =
        (ctx.settings.rules.cooldown / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    futures::stream::unfold((), move |()| {
        let (wfes, runs, ctx) = (wfes.clone(), runs.clone(), ctx.clone());
        async move {
            tokio::time::sleep(every).await;
            let now = ctx.now();
            let exec_ns = &ctx.settings.execution_namespace;
            ctx.own_writes
                .retain(|ns, name| wfes.get(&ObjectRef::new(name).within(ns)).is_some());
            let due: Vec<_> = wfes
                .state()
                .into_iter()
                // The cheap half of the rule first: most locks are not expired, and looking up
                // their run would allocate for each of them on every sweep.
                .filter(|w| lock_expired(w, now, ctx.settings.rules.cooldown))
                .filter(|w| {
                    let run = w
                        .status
                        .as_ref()
                        .and_then(|s| s.pipeline_run_ref.as_ref())
                        .and_then(|r| runs.get(&ObjectRef::new(&r.name).within(exec_ns)));
                    lock_due(
                        w,
                        run.as_deref().map(|r| &r.0),
                        now,
                        ctx.settings.rules.cooldown,
                    )
                })
                .map(|w| ObjectRef::from_obj(&*w))
                .collect();
            Some((futures::stream::iter(due), ()))
        }
    })
    .flatten()
}
