//! Leader election: waits for the Lease, runs the controller while holding it, stops writing the
//! moment it is lost, and releases it on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use crate::context::{Services, Settings};
use crate::watches::run_controller;

/// Runs until `shutdown`: waits for the leader lease, runs the controller while holding it, stops
/// writing the moment it is lost, and releases the lease on shutdown.
pub async fn run(
    client: Client,
    settings: Settings,
    services: Services,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.lease_duration_seconds)
        .with_grace(settings.lease_grace_seconds)
        .build()
        .await
        .context("creating the leader lease manager")?;
    let health = services.health.clone();
    let (mut leader, lease_task) = manager.watch().await;
    let leading = Arc::new(AtomicBool::new(false));
    health.ready.store(true, Ordering::SeqCst); // standing by is healthy
    'outer: loop {
        while !*leader.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break 'outer,
                changed = leader.changed() => if changed.is_err() { break 'outer },
            }
        }
        tracing::info!(identity = %settings.identity, "acquired the leader lease; starting the controller");
        leading.store(true, Ordering::SeqCst);
        health.metrics.leader.set(1);
        health.ready.store(false, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let controller = run_controller(
            client.clone(),
            settings.clone(),
            services.clone(),
            leading.clone(),
            stop.clone(),
        );
        tokio::pin!(controller);
        let mut shutting_down = false;
        loop {
            tokio::select! {
                result = &mut controller => {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "controller stopped");
                    }
                    break;
                }
                _ = shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    stop.cancel();
                }
                changed = leader.changed(), if !stop.is_cancelled() => {
                    if changed.is_err() || !*leader.borrow() {
                        // Stop writing at once; in-flight reconciles see `leading == false`.
                        leading.store(false, Ordering::SeqCst);
                        tracing::warn!(identity = %settings.identity, "lost the leader lease; stopping the controller");
                        stop.cancel();
                    }
                }
            }
        }
        leading.store(false, Ordering::SeqCst);
        health.metrics.leader.set(0);
        // What only the leader measures must not linger at its last value on a standby.
        health.metrics.clear_leader_gauges();
        health.ready.store(true, Ordering::SeqCst);
        if shutting_down || shutdown.is_cancelled() {
            break;
        }
    }
    // Dropping the receiver makes the lease manager release the lease.
    drop(leader);
    match lease_task.await {
        Ok(Ok(_)) => tracing::info!("leader lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
        Err(e) => tracing::warn!(error = %e, "lease task failed"),
    }
    Ok(())
}
