//! The safety rules of the Pending phase (SPEC 4, rules 2–6): one execution per target, the block
//! after an execution failure until an operator clears it, the per-target count of pre-execution
//! failures with its backoff and threshold, and the cooldown after the same workflow completed.
//!
//! Pure: the controller gives [`decide`] the execution, the other executions on its target (from
//! an in-memory index, see [`History`]), the clock and the [`Rules`]; the plan acts on the
//! [`Decision`].

mod clearance;
mod decide;
mod history;
mod rules;

pub use clearance::{Clearance, clearance};
pub use decide::{Decision, Verdict, busy, decide, locked_by, releasable};
pub use history::{Carried, History, failed_during_execution, is_cleared};
pub use rules::{MAX_BACKOFF_EXPONENT, Rules, RulesError};

#[cfg(test)]
mod tests;
