//! Logs: JSON lines to stdout (Nomad keeps them) and, when a directory is given,
//! to a daily-rolling file. Each request's span carries its request id, so every
//! line logged while serving it names the request.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

/// Keeps the log writers flushing; drop it last, at exit.
pub struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// Changes the log filter of the running process (a runtime-file reload).
#[derive(Clone)]
pub struct LogFilter(reload::Handle<EnvFilter, Registry>);

impl LogFilter {
    pub fn set(&self, filter: &str) -> anyhow::Result<()> {
        self.0.reload(EnvFilter::try_new(filter)?)?;
        Ok(())
    }
}

/// Installs the global subscriber. `filter` was validated by the config parser.
pub fn init(service: &'static str, filter: &str, log_dir: Option<&Path>) -> anyhow::Result<(LogGuards, LogFilter)> {
    let mut guards = Vec::new();
    let (stdout, guard) = tracing_appender::non_blocking(std::io::stdout());
    guards.push(guard);
    let json = || fmt::layer().json().with_current_span(true).with_span_list(false).flatten_event(true);
    let mut layers = vec![json().with_writer(stdout).boxed()];
    if let Some(dir) = log_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--log-dir {}: cannot create it: {e}", dir.display()))?;
        let (file, guard) =
            tracing_appender::non_blocking(tracing_appender::rolling::daily(dir, format!("{service}.log")));
        guards.push(guard);
        layers.push(json().with_writer(file).boxed());
    }
    // The filter sits first, behind a reload handle; it still filters globally.
    let (filter, handle) = reload::Layer::new(EnvFilter::try_new(filter)?);
    tracing_subscriber::registry().with(filter).with(layers).try_init()?;
    Ok((LogGuards(guards), LogFilter(handle)))
}
