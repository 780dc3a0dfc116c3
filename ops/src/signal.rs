//! The shutdown signal.

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn it_waits_for_sigterm_then_resolves() {
        let waiting = tokio::spawn(super::shutdown_signal());
        // Until a signal comes, it does not resolve.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished());
        // SAFETY: kill(2) on this process, whose SIGTERM the future above now handles.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("resolves on SIGTERM")
            .unwrap();
    }
}
