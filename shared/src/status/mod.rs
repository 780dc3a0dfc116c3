//! The status an execution should have: computed from what was observed ([`desired`]), with its
//! conditions, its failure summary and the phase state machine it obeys.

pub mod conditions;
pub mod desired;
pub mod overdue;
pub mod phase;
pub mod summary;
