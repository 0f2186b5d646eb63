//! Signals as flags that long-running loops check: SIGTERM or Ctrl-C asks for a graceful
//! shutdown (finish the transaction or batch in flight), SIGHUP asks to reload the rules files (windowing and routing).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use tokio::signal::unix::{signal, SignalKind};

/// A flag that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = next(SignalKind::terminate()) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested, finishing the work in flight");
        set.store(true, Ordering::SeqCst);
    });
    flag
}

/// Sets `flag` on every SIGHUP; the reader clears it when it has reloaded.
pub fn on_hangup(flag: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            next(SignalKind::hangup()).await;
            tracing::info!("SIGHUP: reloading the rules");
            flag.store(true, Ordering::SeqCst);
        }
    });
}

async fn next(kind: SignalKind) {
    match signal(kind) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, ?kind, "cannot listen for the signal");
            std::future::pending::<()>().await;
        }
    }
}
