//! Settings changed without a restart: on SIGHUP the runtime file is read again,
//! laid over the start-time settings and, if every value is valid, applied: the
//! store's timeouts and breaker thresholds through a watch channel (the next call
//! uses them), the log filter through the subscriber's reload handle. A file with
//! one bad value is rejected whole and the running settings stay.
//!
//! In-flight requests are not touched, so a reload drops nothing.

use std::path::PathBuf;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::redis_store::StoreTunables;
use crate::reloadable::Reloadable;
use crate::telemetry::LogFilter;

pub struct Reloader {
    path: Option<PathBuf>,
    /// Flags, env and defaults as the process started: each reload overlays the
    /// file on these, so a key deleted from the file returns to its start value.
    base: Reloadable,
    current: Reloadable,
    store: watch::Sender<StoreTunables>,
    log: Option<LogFilter>,
    metrics: Metrics,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        base: Reloadable,
        current: Reloadable,
        store: watch::Sender<StoreTunables>,
        log: Option<LogFilter>,
        metrics: Metrics,
    ) -> Reloader {
        Reloader { path, base, current, store, log, metrics }
    }

    /// Reads the file and applies it; `Ok(false)` when nothing changed.
    pub fn reload(&mut self) -> Result<bool, String> {
        let Some(path) = &self.path else {
            return Err("no --runtime-file (COUNTER_RUNTIME_FILE) to reload".into());
        };
        let next = self.base.overlaid_with(path)?;
        if next == self.current {
            return Ok(false);
        }
        if next.log_level != self.current.log_level
            && let Some(log) = &self.log
        {
            log.set(&next.log_level).map_err(|e| format!("COUNTER_LOG_LEVEL: {e}"))?;
        }
        self.store.send_replace(next.store());
        next.log_applied();
        self.current = next;
        Ok(true)
    }

    /// Reloads on every SIGHUP until `shutdown` fires. Installing the handler
    /// also keeps SIGHUP from killing the process, its default action.
    pub async fn run_on_sighup(mut self, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            error!("cannot install the SIGHUP handler; runtime settings will not reload");
            return;
        };
        while let Some(Some(())) = shutdown.run_until_cancelled(hangups.recv()).await {
            match self.reload() {
                Ok(changed) => {
                    self.metrics.reload("applied");
                    if !changed {
                        info!("SIGHUP: runtime settings unchanged");
                    }
                }
                Err(reason) => {
                    self.metrics.reload("rejected");
                    warn!(reason, "SIGHUP: runtime file rejected; the running settings stay");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        reloadable: Reloadable,
    }

    fn setup(name: &str) -> (PathBuf, Reloader, watch::Receiver<StoreTunables>) {
        let base = Args::try_parse_from(["t"]).unwrap().reloadable;
        let path = std::env::temp_dir().join(format!("counter-reload-{name}-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let (tx, rx) = watch::channel(base.store());
        let reloader = Reloader::new(Some(path.clone()), base.clone(), base, tx, None, Metrics::new());
        (path, reloader, rx)
    }

    #[test]
    fn a_valid_file_reaches_the_store() {
        let (path, mut reloader, rx) = setup("valid");
        std::fs::write(&path, "COUNTER_STORE_TIMEOUT_MS=1500\nCOUNTER_BREAKER_FAILURES=7\n").unwrap();
        assert_eq!(reloader.reload(), Ok(true));
        assert_eq!(rx.borrow().store_timeout, Duration::from_millis(1500));
        assert_eq!(rx.borrow().breaker.failures, 7);
        assert_eq!(reloader.reload(), Ok(false), "the same file again changes nothing");
        std::fs::write(&path, "").unwrap();
        assert_eq!(reloader.reload(), Ok(true));
        assert_eq!(rx.borrow().store_timeout, Duration::from_millis(500), "a removed key returns to its default");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_with_one_bad_value_changes_nothing() {
        let (path, mut reloader, rx) = setup("bad");
        let before = *rx.borrow();
        std::fs::write(&path, "COUNTER_WAIT_TIMEOUT_MS=900\nCOUNTER_BREAKER_FAILURES=0\n").unwrap();
        let err = reloader.reload().unwrap_err();
        assert!(err.contains("COUNTER_BREAKER_FAILURES"), "{err}");
        assert_eq!(*rx.borrow(), before, "the valid line before the bad one is not applied either");
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn the_sighup_loop_ends_when_the_service_stops() {
        let (path, reloader, _rx) = setup("stop");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(reloader.run_on_sighup(shutdown.clone()));

        shutdown.cancel();

        tokio::time::timeout(Duration::from_secs(5), task).await.expect("it ended").unwrap();
        std::fs::remove_file(path).unwrap();
    }
}
