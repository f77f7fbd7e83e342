//! Wiring: the one place that picks the store adapter and discovery, binds the
//! listener and serves the routes. Tests build an [`Application`] on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info};

use tokio::sync::watch;

use crate::config::{Config, Role, TunableArgs};
use crate::discovery::Discovery;
use crate::http::{Limits, Routes, serve, served_by};
use crate::logic::CountStore;
use crate::metrics::Metrics;
use crate::redis_store::RedisStore;
use crate::redis_store::StoreTunables;
use crate::reload::Reloader;
use crate::telemetry::LogFilter;

/// A bound, not yet serving, service.
pub struct Application<S = RedisStore> {
    listener: TcpListener,
    addr: SocketAddr,
    routes: Arc<Routes<S>>,
    limits: Limits,
    /// Feeds reloaded timeouts and breaker thresholds to the store.
    store_tunables: watch::Sender<StoreTunables>,
    metrics: Metrics,
}

impl Application<RedisStore> {
    /// Binds `config.listen()` and wires the Redis store to fixed endpoints or Consul.
    pub async fn build(config: &Config) -> anyhow::Result<Application<RedisStore>> {
        let metrics = Metrics::new();
        let discovery = match (config.fixed_endpoints(), &config.consul) {
            (Some(fixed), _) => Discovery::fixed(fixed),
            (None, Some(consul)) => {
                let token = config.consul_token().map_err(anyhow::Error::msg)?;
                Discovery::consul(consul.clone(), token, metrics.clone())?
            }
            (None, None) => anyhow::bail!("no store configured: set --consul or --redis-primary"),
        };
        let (tx, rx) = watch::channel(effective_tunables(config)?.store());
        let store = RedisStore::start(&discovery, config.store_settings(rx), metrics.clone());
        let mut app = Application::with_store(config, store, metrics).await?;
        app.store_tunables = tx;
        Ok(app)
    }
}

impl<S: CountStore> Application<S> {
    /// Binds `config.listen()` serving `store`: tests pass their own store.
    pub async fn with_store(config: &Config, store: S, metrics: Metrics) -> anyhow::Result<Application<S>> {
        let wanted = config.listen();
        let listener = TcpListener::bind(wanted).await.with_context(|| format!("cannot listen on {wanted}"))?;
        let addr = listener.local_addr()?;
        let limits = Limits {
            max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
            drain_timeout: config.drain_timeout(),
            ..Limits::default()
        };
        let (store_tunables, _) = watch::channel(effective_tunables(config)?.store());
        let served_by = served_by(config.role().name(), addr);
        Ok(Application {
            listener,
            addr,
            routes: Arc::new(Routes { store, role: config.role(), metrics: metrics.clone(), served_by }),
            limits,
            store_tunables,
            metrics,
        })
    }

    /// The SIGHUP handler of this application's reloadable settings.
    pub fn reloader(&self, config: &Config, log: Option<LogFilter>) -> anyhow::Result<Reloader> {
        Ok(Reloader::new(
            config.runtime_file.clone(),
            config.tunables.clone(),
            effective_tunables(config)?,
            self.store_tunables.clone(),
            log,
            self.metrics.clone(),
        ))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let routes = self.routes;
        let handler = move |req| {
            let routes = routes.clone();
            async move { routes.handle(req).await }
        };
        serve(self.listener, handler, self.limits, shutdown).await;
    }
}

/// The start-time settings with the runtime file, if any, laid over them.
fn effective_tunables(config: &Config) -> anyhow::Result<TunableArgs> {
    match &config.runtime_file {
        Some(path) => config.tunables.overlaid_with(path).map_err(anyhow::Error::msg),
        None => Ok(config.tunables.clone()),
    }
}

/// The whole life of a service binary: config, telemetry, wiring, serve until
/// SIGTERM or SIGINT. Exit 2 on bad config (from the parser), 1 on start-up failure.
pub fn run(role: Role) -> ExitCode {
    let config = Config::from_args(role);
    let service = config.role().name();
    let log_level = match effective_tunables(&config) {
        Ok(tunables) => tunables.log_level,
        Err(err) => {
            eprintln!("{service}: {err:#}");
            return ExitCode::from(2);
        }
    };
    let (_logs, log_filter) = match crate::telemetry::init(service, &log_level, config.log_dir.as_deref()) {
        Ok(logs) => logs,
        Err(err) => {
            eprintln!("{service}: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(cause = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = match Application::build(&config).await {
            Ok(app) => app,
            Err(err) => {
                error!(cause = format!("{err:#}"), "cannot start");
                eprintln!("{service}: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        match app.reloader(&config, Some(log_filter)) {
            Ok(reloader) => drop(tokio::spawn(reloader.run_on_sighup())),
            Err(err) => error!(cause = format!("{err:#}"), "runtime settings will not reload"),
        }
        info!(listen = %app.local_addr(), role = service, version = env!("CARGO_PKG_VERSION"), "serving");
        app.run_until_stopped(shutdown_signal()).await;
        info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Resolves on the first SIGTERM (Nomad's kill signal) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => info!(signal = "SIGINT", "shutdown requested"),
    }
}
