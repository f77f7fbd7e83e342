//! The service's background tasks: the store's read and write lanes, its replica
//! tracker, the Consul watches and the SIGHUP reloader. Each is handed the
//! shutdown signal when it is spawned and ends when it fires (mini-redis passes
//! its `Shutdown` down the same way); [`Background::stop`] fires it and joins
//! every task, aborting those that overrun the bound.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Tasks that run for the life of an [`crate::Application`].
#[derive(Default)]
pub struct Background {
    shutdown: CancellationToken,
    /// std Mutex: held only to spawn or take the set, never across .await.
    tasks: Mutex<JoinSet<()>>,
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// The signal every task must obey: `cancelled()` resolves when the service stops.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Spawns `task`, which must return soon after [`Background::shutdown`] fires.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.lock().unwrap().spawn(task);
    }

    /// Tasks spawned and not yet joined.
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fires the shutdown signal and waits up to `within` for every task to end;
    /// the ones still running then are aborted. Returns how many were aborted.
    pub async fn stop(&self, within: Duration) -> usize {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        let joined = tokio::time::timeout(within, async {
            while let Some(result) = tasks.join_next().await {
                if let Err(err) = result
                    && err.is_panic()
                {
                    warn!(cause = %err, "a background task panicked");
                }
            }
        })
        .await;
        if joined.is_ok() {
            return 0;
        }
        let overran = tasks.len();
        warn!(tasks = overran, within_ms = within.as_millis() as u64, "background tasks overran the stop; aborted");
        tasks.shutdown().await;
        overran
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_joins_the_tasks_that_obey_and_aborts_one_that_does_not() {
        let background = Background::new();
        let shutdown = background.shutdown();
        background.spawn(async move { shutdown.cancelled().await });
        let (_keep, ignored) = tokio::sync::oneshot::channel::<()>();
        background.spawn(async move {
            let _ = ignored.await;
        });
        assert_eq!(background.len(), 2);

        let aborted = background.stop(Duration::from_millis(200)).await;

        assert_eq!(aborted, 1, "only the task that ignores the signal overran");
        assert!(background.is_empty());
    }

    #[tokio::test]
    async fn a_task_that_obeys_is_joined_without_waiting_for_the_bound() {
        let background = Background::new();
        let shutdown = background.shutdown();
        background.spawn(async move { shutdown.cancelled().await });
        let started = std::time::Instant::now();

        assert_eq!(background.stop(Duration::from_secs(30)).await, 0);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
