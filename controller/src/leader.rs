//! Leader election: waits for the Lease, runs the controller while holding it, stops writing the
//! moment it is lost, and releases it on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use crate::context::{Services, Settings};
use crate::watches::run_controller;

/// How often a standby replica reads the Lease, to take over one the leader released.
const STANDBY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

type LeaseTask =
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>;

/// A lease manager for our Lease, watching: the leader flag, and the task that holds the Lease.
async fn lease_manager(
    client: &Client,
    settings: &Settings,
) -> anyhow::Result<(tokio::sync::watch::Receiver<bool>, LeaseTask)> {
    let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.lease_duration_seconds)
        .with_grace(settings.lease_grace_seconds)
        .build()
        .await
        .context("creating the leader lease manager")?;
    Ok(manager.watch().await)
}

/// The Lease exists and nobody holds it (its leader released it).
async fn released(leases: &Api<Lease>, name: &str) -> bool {
    match leases.get_opt(name).await {
        Ok(Some(lease)) => lease
            .spec
            .and_then(|s| s.holder_identity)
            .is_none_or(|h| h.is_empty()),
        _ => false,
    }
}

/// Runs until `shutdown`: waits for the leader lease, runs the controller while holding it, stops
/// writing the moment it is lost, and releases the lease on shutdown.
pub async fn run(
    client: Client,
    settings: Settings,
    services: Services,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health = services.health.clone();
    let (mut leader, mut lease_task) = lease_manager(&client, &settings).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.lease_namespace);
    let leading = Arc::new(AtomicBool::new(false));
    health.ready.store(true, Ordering::SeqCst); // standing by is healthy
    'outer: loop {
        while !*leader.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break 'outer,
                changed = leader.changed() => if changed.is_err() { break 'outer },
                // The lease manager sleeps until the holder's Lease would expire; a Lease the
                // leader released on its way out (SIGTERM) is taken over at once instead.
                _ = tokio::time::sleep(STANDBY_POLL) => {
                    if released(&leases, &settings.lease_name).await {
                        // A new manager first: if it cannot be built, the old one goes on waiting.
                        match lease_manager(&client, &settings).await {
                            Ok(fresh) => {
                                tracing::info!(identity = %settings.identity, "the leader released the lease; taking over");
                                lease_task.abort();
                                (leader, lease_task) = fresh;
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot take over the released lease; waiting"),
                        }
                    }
                }
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
