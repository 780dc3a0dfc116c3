//! Operations plumbing shared by `wfe-webhook` and `wfe-controller`: log flags and setup, the
//! shutdown signal, the Go-duration flag parser, and the `/healthz` `/readyz` `/metrics` router.

pub mod flags;
pub mod health;
pub mod logging;
pub mod signal;
