//! The WorkflowExecution controller: carries out the plans `wfe_shared::plan` returns. `main.rs`
//! wires flags and signals.
//!
//! One reconcile: [`reconcile`] (entry and conflict retry) → [`observe`] (cache reads, TaskRuns) →
//! `wfe_shared::plan` → [`effects`] (side effects, their results fed back) → [`writer`] (every
//! write, leader-guarded) → [`report`] (log lines and metrics) and [`events`]. Around it:
//! [`leader`] (the lease), [`watches`] (caches and the controller loop), [`lock`] (the lock sweep),
//! [`cache`] (what a cached execution keeps), [`targets`] (executions by target, for the safety
//! rules), [`audit`] (delivery of audit events), [`own_writes`], [`memory`], [`metrics`], [`gate`] (the reconciles' slots, work under way
//! first), [`watch_backoff`] (how soon a failed watch is retried).

pub mod audit;
pub mod cache;
pub mod context;
pub mod effects;
pub mod error;
pub mod events;
pub mod gate;
pub mod health;
pub mod hooks;
pub mod leader;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod own_writes;
pub mod reconcile;
pub mod report;
pub mod targets;
pub mod watch_backoff;
pub mod watches;
pub mod writer;
