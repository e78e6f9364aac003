//! The admin thread: a tokio runtime of its own, on an OS thread of its
//! own, for the admin socket and the metrics listener. During a catch-up
//! the main runtime's workers decode, decompress and hand off megabytes of
//! frames, and a status request queued behind them waited tens of
//! milliseconds; on this thread it waits for nothing but the kernel.
//!
//! Owns: starting that thread, handing out its runtime's handle, and
//! stopping it (requests in flight get a grace period, then their tasks
//! are dropped).
//! Must not: run sync work. Whatever an admin request starts with
//! `tokio::spawn` (a reseal, an import) runs here too, so such work keeps
//! its heavy parts on blocking threads (`with_store`, `spawn_blocking`).

use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long the thread waits for tasks still running when asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The running admin thread.
pub struct AdminRuntime {
    handle: Handle,
    stop: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
}

impl AdminRuntime {
    /// Starts the thread and its runtime (timers and IO enabled).
    pub fn start() -> std::io::Result<AdminRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("puente-admin")
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("puente-admin".into())
            .spawn(move || {
                // A dropped sender (the daemon gone without stopping us)
                // ends the thread as a stop does.
                let _ = runtime.block_on(stop_rx);
                runtime.shutdown_timeout(STOP_GRACE);
                let _ = stopped_tx.send(());
            })?;
        Ok(AdminRuntime {
            handle,
            stop,
            stopped,
        })
    }

    /// Where the admin socket and the metrics listener are bound and
    /// served: listeners made inside `handle().enter()` or a task spawned
    /// on it are driven by this thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the thread: tasks still running get `STOP_GRACE`, then are
    /// dropped. Returns once the thread has let go of them.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(STOP_GRACE * 2, self.stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_admin_thread_and_stop_with_it() {
        let admin = AdminRuntime::start().unwrap();
        let name = admin
            .handle()
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("puente-admin"));
        // A task that never ends is dropped when the thread stops.
        let forever = admin.handle().spawn(std::future::pending::<()>());
        admin.stop().await;
        assert!(forever.await.unwrap_err().is_cancelled());
    }
}
