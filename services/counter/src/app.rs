//! Wiring: the one place that picks the store adapter and discovery, binds the
//! listener and serves the routes. Tests build an [`Application`] on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::{Config, Role};
use crate::discovery::Discovery;
use crate::http::{Limits, Routes, serve, served_by};
use crate::logic::CountStore;
use crate::metrics::Metrics;
use crate::redis_store::RedisStore;

/// A bound, not yet serving, service.
pub struct Application<S = RedisStore> {
    listener: TcpListener,
    addr: SocketAddr,
    routes: Arc<Routes<S>>,
    limits: Limits,
}

impl Application<RedisStore> {
    /// Binds `config.listen()` and wires the Redis store to fixed endpoints or Consul.
    pub async fn build(config: &Config) -> anyhow::Result<Application<RedisStore>> {
        let metrics = Metrics::new();
        let discovery = match (config.fixed_endpoints(), &config.consul) {
            (Some(fixed), _) => Discovery::fixed(fixed),
            (None, Some(consul)) => Discovery::consul(consul.clone(), metrics.clone()),
            (None, None) => anyhow::bail!("no store configured: set --consul or --redis-primary"),
        };
        let store = RedisStore::start(&discovery, config.store_settings(), metrics.clone());
        Application::with_store(config, store, metrics).await
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
        let served_by = served_by(config.role().name(), addr);
        let routes = Arc::new(Routes { store, role: config.role(), metrics, served_by });
        Ok(Application { listener, addr, routes, limits })
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

/// The whole life of a service binary: config, telemetry, wiring, serve until
/// SIGTERM or SIGINT. Exit 2 on bad config (from the parser), 1 on start-up failure.
pub fn run(role: Role) -> ExitCode {
    let config = Config::from_args(role);
    let service = config.role().name();
    let _logs = match crate::telemetry::init(service, &config.log_level, config.log_dir.as_deref()) {
        Ok(guards) => guards,
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
