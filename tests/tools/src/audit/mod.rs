//! The audit service's side, for tests and the local environment: the contracts events are
//! checked against, and a DataStorage-compatible receiver.

pub mod contract;
pub mod receiver;
