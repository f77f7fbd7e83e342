//! Wiring: the one place that picks the store adapter and discovery, binds the
//! listener and serves the routes. Tests build an [`Application`] on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::background::Background;
use crate::config::{Config, RedisSource, Role};
use crate::discovery::Discovery;
use crate::http::{Limits, Routes, serve, served_by};
use crate::metrics::Metrics;
use crate::redis_store::{RedisStore, StoreSettings, StoreTunables};
use crate::reload::Reloader;
use crate::telemetry::LogFilter;

/// How long the background tasks get to end once the server has drained; a
/// write batch still waiting for its `WAIT` is the longest. Stopping takes at
/// most the drain timeout plus this: keep both below Nomad's `kill_timeout`.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound, not yet serving, service.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// HTTPS (`--tls-cert`), or plain HTTP.
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: Arc<Routes<RedisStore>>,
    limits: Limits,
    /// Feeds reloaded timeouts and breaker thresholds to the store.
    store_tunables: watch::Sender<StoreTunables>,
    metrics: Metrics,
    /// The store's lanes, discovery's watches and the reloader: stopped and
    /// joined by [`Application::run_until_stopped`].
    background: Background,
}

impl Application {
    /// Binds `config.listen` and wires the Redis store to fixed endpoints or Consul.
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        // Both the Consul client and Redis over TLS need rustls's provider.
        crate::tls::install_crypto_provider();
        let metrics = Metrics::new();
        let background = Background::new();
        let discovery = match &config.redis {
            RedisSource::Fixed(endpoints) => Discovery::fixed(endpoints.clone()),
            RedisSource::Consul { url, token, tls } => {
                Discovery::consul(url.clone(), token.clone(), tls, metrics.clone(), &background)?
            }
        };
        let store_tunables = watch::Sender::new(config.reloadable.store());
        let settings = StoreSettings {
            key: config.key.clone(),
            read_lanes: config.read_lanes,
            write_lanes: config.write_lanes,
            credentials: config.credentials.clone(),
            tls_ca: config.redis_tls.clone(),
            tunables: store_tunables.subscribe(),
        };
        let store = RedisStore::start(discovery, settings, metrics.clone(), &background);
        let wanted = config.listen;
        let listener = TcpListener::bind(wanted).await.with_context(|| format!("cannot listen on {wanted}"))?;
        let addr = listener.local_addr()?;
        let limits = Limits {
            max_connections: config.max_connections,
            drain_timeout: config.drain_timeout,
            ..Limits::default()
        };
        let served_by = served_by(config.role.name(), addr);
        Ok(Application {
            listener,
            addr,
            tls: config.server_tls.as_ref().map(|tls| tls.acceptor()),
            routes: Arc::new(Routes { store, role: config.role, metrics: metrics.clone(), served_by }),
            limits,
            store_tunables,
            metrics,
            background,
        })
    }

    /// Applies the runtime file on every SIGHUP until the application stops.
    /// `log` changes the log filter; without it only the store's settings reload.
    pub fn reload_on_sighup(&self, config: &Config, log: Option<LogFilter>) {
        let reloader = Reloader::new(
            config.runtime_file.clone(),
            config.reloadable_from_flags.clone(),
            config.reloadable.clone(),
            self.store_tunables.clone(),
            log,
            self.metrics.clone(),
        );
        self.background.spawn(reloader.run_on_sighup(self.background.shutdown()));
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then drains; returns once the
    /// connections are closed and every background task has ended. The store's
    /// connections close as it drops, here.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let routes = self.routes;
        let handler = move |req| {
            let routes = routes.clone();
            async move { routes.handle(req).await }
        };
        serve(self.listener, handler, self.limits, self.tls, shutdown).await;
        // Drained: no request needs the store any more.
        self.background.stop(BACKGROUND_STOP_TIMEOUT).await;
    }
}

/// The whole life of a service binary: config, telemetry, wiring, serve until
/// SIGTERM or SIGINT. Exit 2 on bad config (from the parser), 1 on start-up failure.
pub fn run(role: Role) -> ExitCode {
    // Before anything builds a TLS client: ring's crypto, once per process.
    crate::tls::install_crypto_provider();
    let config = Config::from_args(role);
    let service = config.role.name();
    let (_logs, log_filter) =
        match crate::telemetry::init(service, &config.reloadable.log_level, config.log_dir.as_deref()) {
            Ok(logs) => logs,
            Err(err) => {
                eprintln!("{service}: {err:#}");
                return ExitCode::from(2);
            }
        };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
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
        app.reload_on_sighup(&config, Some(log_filter));
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
