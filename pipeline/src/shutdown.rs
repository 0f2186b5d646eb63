//! Graceful shutdown: SIGTERM or Ctrl-C sets a flag that long-running loops check, so that they
//! finish the transaction in flight before exiting.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

/// A flag that turns true on SIGTERM or Ctrl-C.
pub fn flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    tokio::spawn(on_signal(flag.clone()));
    flag
}

async fn on_signal(flag: Arc<AtomicBool>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested, finishing the transaction in flight");
    flag.store(true, Ordering::SeqCst);
}
