//! Connections to Redis nodes, each behind its own circuit breaker and every call
//! under a timeout. A node that times out or drops its connection loses its cached
//! connection, so the next call reconnects instead of reusing a dead socket.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, TlsCertificates};
use tokio::sync::watch;
use tracing::warn;

use crate::breaker::{Breaker, BreakerSettings};
use crate::logic::StoreError;
use crate::metrics::Metrics;
use crate::redis_store::{RedisCredentials, StoreTunables};
use crate::tls::CaBundle;

/// Why one call to one node failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("breaker open for another {0:?}")]
    BreakerOpen(Duration),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The node answered with an error: it is alive, the command was refused.
    #[error("{0}")]
    Refused(RedisError),
    /// The connection failed: refused, reset, or dropped.
    #[error("{0}")]
    Connection(RedisError),
}

impl CallError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CallError::BreakerOpen(_) => "breaker_open",
            CallError::Timeout(_) => "timeout",
            CallError::Refused(_) => "refused",
            CallError::Connection(_) => "connection",
        }
    }

    /// Only a wrong value or type at the key is corruption; READONLY, NOREPLICAS,
    /// LOADING... mean "not now", which is a 503.
    pub(crate) fn is_corruption(&self) -> bool {
        match self {
            // Pipelined commands report their server errors as a list.
            CallError::Refused(err) => err.clone().into_server_errors().is_some_and(|errors| {
                errors
                    .iter()
                    .any(|(_, e)| e.code() == "WRONGTYPE" || e.details().is_some_and(|d| d.contains("not an integer")))
            }),
            _ => false,
        }
    }

    /// The node refused a write before running it, so it applied nothing:
    /// READONLY (a replica now, demoted in a failover) or NOREPLICAS (a
    /// master without an in-sync replica: an old primary back from a
    /// partition, its write guard on); alone or as one of a pipeline's errors.
    pub(crate) fn is_write_refused_unapplied(&self) -> bool {
        const CODES: [&str; 2] = ["READONLY", "NOREPLICAS"];
        match self {
            CallError::Refused(err) => {
                err.code().is_some_and(|code| CODES.contains(&code))
                    || err
                        .clone()
                        .into_server_errors()
                        .is_some_and(|errors| errors.iter().any(|(_, e)| CODES.contains(&e.code())))
            }
            _ => false,
        }
    }

    /// The store-level error, with a retry hint from the breaker where there is one.
    pub(crate) fn into_store_error(self, what: &str) -> StoreError {
        if self.is_corruption() {
            return StoreError::Corrupt(format!("{what}: {self}"));
        }
        let retry_after = match self {
            CallError::BreakerOpen(wait) => wait.max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        StoreError::Unavailable { reason: format!("{what}: {self}"), retry_after }
    }
}

pub(crate) struct Nodes {
    /// Shared, multiplexed connections for reads and probes (std Mutex: never held across .await).
    shared: Mutex<HashMap<SocketAddr, MultiplexedConnection>>,
    breakers: Mutex<HashMap<SocketAddr, Arc<Breaker>>>,
    credentials: RedisCredentials,
    /// The CA every TLS connection verifies the server against (no client
    /// certificate: the ACL user authenticates); `None`: plain TCP.
    tls: Option<TlsCertificates>,
    /// Breaker thresholds and the connect budget, as reloaded.
    tunables: watch::Receiver<StoreTunables>,
    metrics: Metrics,
}

impl Nodes {
    pub(crate) fn new(
        credentials: RedisCredentials,
        tls_ca: Option<&CaBundle>,
        tunables: watch::Receiver<StoreTunables>,
        metrics: Metrics,
    ) -> Nodes {
        let tls = tls_ca.map(|ca| TlsCertificates { client_tls: None, root_cert: Some(ca.pem().to_vec()) });
        Nodes { shared: Mutex::default(), breakers: Mutex::default(), credentials, tls, tunables, metrics }
    }

    /// The endpoint's breaker, carrying the thresholds in force now.
    fn breaker(&self, addr: SocketAddr) -> Arc<Breaker> {
        let settings: BreakerSettings = self.tunables.borrow().breaker;
        let mut breakers = self.breakers.lock().unwrap();
        let breaker = breakers.entry(addr).or_insert_with(|| Arc::new(Breaker::new(settings))).clone();
        breaker.retune(settings);
        breaker
    }

    /// Opens a connection of its own (a writer lane needs one: `WAIT` blocks it).
    /// With TLS, the handshake happens here, once per connection: the shared
    /// connections and each writer's are kept until they fail.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> Result<MultiplexedConnection, RedisError> {
        // rediss://<ip>: the certificate must name this IP (an IP SAN).
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        let info = format!("{scheme}://{addr}/").into_connection_info()?;
        // CLIENT SETINFO is skipped: a least-privilege ACL user may not run it.
        let mut redis = info.redis_settings().clone().set_skip_set_lib_name();
        if let Some(username) = &self.credentials.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.credentials.password {
            redis = redis.set_password(password);
        }
        let info = info.set_redis_settings(redis);
        let client = match &self.tls {
            Some(certificates) => Client::build_with_tls(info, certificates.clone())?,
            None => Client::open(info)?,
        };
        let connect_timeout = self.tunables.borrow().attempt_timeout();
        // No response timeout of the client's own: each call carries ours, and a
        // writer's WAIT legitimately outlasts the client's default.
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(connect_timeout)).set_response_timeout(None);
        client.get_multiplexed_async_connection_with_config(&config).await
    }

    async fn shared_connection(&self, addr: SocketAddr) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = self.shared.lock().unwrap().get(&addr) {
            return Ok(conn.clone());
        }
        let conn = self.connect(addr).await?;
        self.shared.lock().unwrap().insert(addr, conn.clone());
        Ok(conn)
    }

    /// Runs `op` on the shared connection to `addr`, under the breaker and `timeout`.
    pub(crate) async fn call<T, F, Fut>(&self, addr: SocketAddr, timeout: Duration, op: F) -> Result<T, CallError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.guarded(addr, timeout, async {
            let conn = self.shared_connection(addr).await?;
            op(conn).await
        })
        .await
        .inspect_err(|err| {
            if matches!(err, CallError::Timeout(_) | CallError::Connection(_)) {
                self.shared.lock().unwrap().remove(&addr);
            }
        })
    }

    /// Runs `fut` (a call to `addr`) under the node's breaker and `timeout`,
    /// recording the outcome.
    pub(crate) async fn guarded<T>(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, CallError> {
        let breaker = self.breaker(addr);
        breaker.allow(Instant::now()).map_err(CallError::BreakerOpen)?;
        let result = match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(CallError::Timeout(timeout)),
            Ok(Err(err)) if is_connection_failure(&err) => Err(CallError::Connection(err)),
            Ok(Err(err)) => Err(CallError::Refused(err)),
            Ok(Ok(value)) => Ok(value),
        };
        let now = Instant::now();
        match &result {
            // A refusal comes from a live node: not the node's failure.
            Ok(_) | Err(CallError::Refused(_)) => breaker.record_success(),
            Err(err) => {
                if breaker.record_failure(now) {
                    warn!(endpoint = %addr, cause = %err, "circuit breaker opened");
                }
            }
        }
        self.metrics.breaker(addr.to_string(), breaker.state(now) as i64);
        result
    }
}

fn is_connection_failure(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout()
}
