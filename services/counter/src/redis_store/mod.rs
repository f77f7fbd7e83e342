//! The Redis adapter behind [`CountStore`]: reads from replicas (rotating, falling
//! back to the primary), writes to the primary as group-committed `INCR` × n + `WAIT`,
//! every call under a timeout and a per-endpoint circuit breaker.

mod nodes;
mod queue;
mod reader;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::background::Background;
use crate::breaker::BreakerSettings;
use crate::discovery::{Discovery, Endpoints};
use crate::logic::{Count, CountStore, Side, StoreError};
use crate::metrics::Metrics;
use crate::tls::CaBundle;
use nodes::Nodes;
use queue::Queue;

/// How the adapter talks to Redis.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// The key holding the count.
    pub key: String,
    /// Read batches in flight at once (they share multiplexed connections).
    pub read_lanes: usize,
    /// Write batches in flight at once (each on its own connection).
    pub write_lanes: usize,
    pub credentials: RedisCredentials,
    /// TLS to every node, verified against this CA; `None`: plain TCP.
    pub tls_ca: Option<CaBundle>,
    /// The reloadable settings, current value first (SIGHUP sends new ones).
    pub tunables: watch::Receiver<StoreTunables>,
}

/// The settings that may change while the service runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoreTunables {
    /// Budget for one read or probe, across every endpoint tried.
    pub store_timeout: Duration,
    /// How long `WAIT` may wait for replicas before the increment is refused.
    pub wait_timeout: Duration,
    /// How long a write is held while no primary is known (or the one known
    /// has just refused it as a replica) before it is refused.
    pub primary_wait: Duration,
    pub breaker: BreakerSettings,
}

impl StoreTunables {
    /// One endpoint may use half the budget, so a hung replica leaves time to
    /// try the next one before the caller's deadline.
    pub(crate) fn attempt_timeout(&self) -> Duration {
        self.store_timeout / 2
    }
}

/// A Redis ACL user; `None` for both is the unauthenticated default user.
#[derive(Clone, Default)]
pub struct RedisCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Never prints the password.
impl std::fmt::Debug for RedisCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCredentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl StoreSettings {
    /// The reloadable settings as they are now.
    fn now(&self) -> StoreTunables {
        *self.tunables.borrow()
    }

    fn attempt_timeout(&self) -> Duration {
        self.now().attempt_timeout()
    }
}

pub(crate) struct Shared {
    settings: StoreSettings,
    /// Owned here so that fixed endpoints stay published as long as the store.
    _discovery: Discovery,
    endpoints: watch::Receiver<Endpoints>,
    nodes: Nodes,
    reads: Queue,
    writes: Queue,
    /// Replicas the primary last reported in sync: how many each `WAIT` waits for.
    in_sync: AtomicI64,
    /// When each replica last acknowledged something (std Mutex: never held
    /// across .await).
    acks: std::sync::Mutex<writer::Acks>,
    /// The last non-empty set of healthy replicas, read while a failover leaves
    /// no healthy node at all (std Mutex: never held across .await).
    last_known_replicas: std::sync::Mutex<Vec<std::net::SocketAddr>>,
    metrics: Metrics,
}

/// The Redis [`CountStore`]. Its lanes and replica tracker run as tasks of the
/// [`Background`] it was started with, until that stops; its connections close
/// when the last clone of the store is dropped after that.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

impl RedisStore {
    /// Starts the read and write lanes and the replica tracker in `background`.
    pub fn start(
        discovery: Discovery,
        settings: StoreSettings,
        metrics: Metrics,
        background: &Background,
    ) -> RedisStore {
        let nodes = Nodes::new(
            settings.credentials.clone(),
            settings.tls_ca.as_ref(),
            settings.tunables.clone(),
            metrics.clone(),
        );
        let shared = Arc::new(Shared {
            endpoints: discovery.subscribe(),
            _discovery: discovery,
            nodes,
            reads: Queue::new(),
            writes: Queue::new(),
            in_sync: AtomicI64::new(0),
            acks: std::sync::Mutex::default(),
            last_known_replicas: std::sync::Mutex::default(),
            metrics,
            settings,
        });
        for _ in 0..shared.settings.read_lanes.max(1) {
            background.spawn(reader::lane(shared.clone(), background.shutdown()));
        }
        for _ in 0..shared.settings.write_lanes.max(1) {
            background.spawn(writer::lane(shared.clone(), background.shutdown()));
        }
        background.spawn(writer::track_replicas(shared.clone(), background.shutdown()));
        RedisStore { shared }
    }

    /// A caller waits at most this long in all: queueing plus its batch's own budget.
    fn caller_deadline(&self, side: Side) -> Duration {
        let s = self.shared.settings.now();
        match side {
            Side::Read => s.store_timeout * 2,
            Side::Write => s.store_timeout * 2 + s.wait_timeout + s.primary_wait,
        }
    }

    async fn bounded(&self, side: Side, what: &str, queue: &Queue) -> Result<Count, StoreError> {
        match tokio::time::timeout(self.caller_deadline(side), queue.call(what)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::unavailable(format!("{what}: timed out waiting for the store"))),
        }
    }

    async fn ping(&self, addr: std::net::SocketAddr) -> Result<(), StoreError> {
        self.shared
            .nodes
            .call(addr, self.shared.settings.attempt_timeout(), |mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await
            .map(drop)
            .map_err(|err| err.into_store_error(&format!("pinging {addr}")))
    }
}

impl CountStore for RedisStore {
    async fn get(&self) -> Result<Count, StoreError> {
        self.bounded(Side::Read, "reading the count", &self.shared.reads).await
    }

    async fn increment(&self) -> Result<Count, StoreError> {
        self.bounded(Side::Write, "incrementing", &self.shared.writes).await
    }

    async fn probe(&self, side: Side) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.shared.settings.now().store_timeout;
        let candidates = match side {
            Side::Write => self.shared.endpoints.borrow().primary.into_iter().collect(),
            Side::Read => reader::read_order(&self.shared, &AtomicUsize::new(0)),
        };
        let mut last = StoreError::unavailable(match side {
            Side::Write => "no single healthy primary known",
            Side::Read => "no redis endpoint known",
        });
        for addr in candidates {
            if Instant::now() >= deadline {
                break;
            }
            match self.ping(addr).await {
                Ok(()) => return Ok(()),
                Err(err) => last = err,
            }
        }
        Err(last)
    }
}
