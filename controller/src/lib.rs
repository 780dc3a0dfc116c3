//! The WorkflowExecution controller: reconcile (I/O around `wfe_shared`'s pure decisions), leader
//! election, caches, metrics and health. `main.rs` wires flags and signals.

pub mod cache;
pub mod context;
pub mod metrics;
pub mod own_writes;
pub mod reconcile;
pub mod run;
