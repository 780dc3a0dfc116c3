//! The WorkflowExecution admission webhook: pure admission logic, TLS certificate handling, routes
//! and metrics. `main.rs` wires them to sockets and signals.

pub mod admission;
pub mod metrics;
pub mod router;
pub mod server;
pub mod tls;
