//! Connections to Redis nodes, each behind its own circuit breaker and every call
//! under a timeout. A node that times out or drops its connection loses its cached
//! connection, so the next call reconnects instead of reusing a dead socket.
//!
//! One shared connection carries every read lane's call to a node, so one
//! dropped connection fails them all at once: the breaker counts that as one
//! failure of the node, not one per call riding on it. Otherwise Sentinel's
//! `CLIENT KILL` of a healthy node it reconfigures in a failover (the new
//! primary, the other replicas) opens its breaker, and with the old primary
//! dead every endpoint is open at once: reads answer 503 for a cooldown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// partition, its write guard on); alone, as one of a pipeline's errors,
    /// or as the reason an `EXEC` discarded its transaction (`EXECABORT`).
    pub(crate) fn is_write_refused_unapplied(&self) -> bool {
        const CODES: [&str; 2] = ["READONLY", "NOREPLICAS"];
        let names_one = |code: &str, details: Option<&str>| {
            CODES.contains(&code)
                || (code == "EXECABORT" && details.is_some_and(|d| CODES.iter().any(|c| d.contains(c))))
        };
        match self {
            CallError::Refused(err) => {
                err.code().is_some_and(|code| names_one(code, err.detail()))
                    || err
                        .clone()
                        .into_server_errors()
                        .is_some_and(|errors| errors.iter().any(|(_, e)| names_one(e.code(), e.details())))
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
    /// Shared, multiplexed connections for reads and probes, each with the
    /// number it was opened under (std Mutex: never held across .await).
    shared: Mutex<HashMap<SocketAddr, (u64, MultiplexedConnection)>>,
    opened: AtomicU64,
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
        Nodes {
            shared: Mutex::default(),
            opened: AtomicU64::new(0),
            breakers: Mutex::default(),
            credentials,
            tls,
            tunables,
            metrics,
        }
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

    async fn shared_connection(&self, addr: SocketAddr) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(entry) = self.shared.lock().unwrap().get(&addr) {
            return Ok(entry.clone());
        }
        let conn = self.connect(addr).await?;
        let entry = (self.opened.fetch_add(1, Ordering::Relaxed), conn);
        self.shared.lock().unwrap().insert(addr, entry.clone());
        Ok(entry)
    }

    /// Drops the cached connection to `addr` if it is still the one opened
    /// as `number`; false if another call on it already did (or it was
    /// never cached), so its failure is already counted.
    fn forget(&self, addr: SocketAddr, number: u64) -> bool {
        let mut shared = self.shared.lock().unwrap();
        let current = shared.get(&addr).is_some_and(|(n, _)| *n == number);
        if current {
            shared.remove(&addr);
        }
        current
    }

    /// Runs `op` on the shared connection to `addr`, under the breaker and `timeout`.
    pub(crate) async fn call<T, F, Fut>(&self, addr: SocketAddr, timeout: Duration, op: F) -> Result<T, CallError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        // The connection this call rode on, once it has one.
        let used = Mutex::new(None);
        let call = async {
            let (number, conn) = self.shared_connection(addr).await?;
            *used.lock().unwrap() = Some(number);
            op(conn).await
        };
        // A failure counts against the node unless the connection it rode on
        // was already dropped by another call's failure.
        self.guarded_counting(addr, timeout, call, |err| {
            if !matches!(err, CallError::Timeout(_) | CallError::Connection(_)) {
                return true;
            }
            match *used.lock().unwrap() {
                Some(number) => self.forget(addr, number),
                None => true, // connecting failed: a failure of its own
            }
        })
        .await
    }

    /// Runs `fut` (a call to `addr`) under the node's breaker and `timeout`,
    /// recording the outcome.
    pub(crate) async fn guarded<T>(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, CallError> {
        self.guarded_counting(addr, timeout, fut, |_| true).await
    }

    /// [`Nodes::guarded`], where `counts` says whether a failure counts
    /// against the node's breaker.
    async fn guarded_counting<T>(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        fut: impl Future<Output = Result<T, RedisError>>,
        counts: impl FnOnce(&CallError) -> bool,
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
            Err(err) if !counts(err) => breaker.record_repeated_failure(now),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use testkit::RedisServer;

    fn nodes() -> Nodes {
        let tunables = StoreTunables {
            store_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            primary_wait: Duration::from_secs(1),
            breaker: BreakerSettings { failures: 2, cooldown: Duration::from_secs(60) },
        };
        let (_keep, tunables) = watch::channel(tunables);
        Nodes::new(RedisCredentials { username: None, password: None }, None, tunables, Metrics::new())
    }

    fn dropped() -> RedisError {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "closed by the node").into()
    }

    #[tokio::test]
    async fn calls_failing_together_on_one_dropped_connection_are_one_failure_of_the_node() {
        let redis = tokio::task::spawn_blocking(RedisServer::primary).await.unwrap();
        let addr: SocketAddr = redis.addr().parse().unwrap();
        let nodes = nodes();
        let ping = |mut c: MultiplexedConnection| async move { redis::cmd("PING").query_async::<String>(&mut c).await };
        nodes.call(addr, Duration::from_secs(1), ping).await.unwrap();

        // Four reads on the shared connection fail at once, as when the node
        // closes every client connection: the breaker (2 failures) stays closed.
        let in_flight = tokio::sync::Barrier::new(4);
        let together = |_conn: MultiplexedConnection| async {
            in_flight.wait().await;
            Err::<(), _>(dropped())
        };
        let second = Duration::from_secs(1);
        let results = tokio::join!(
            nodes.call(addr, second, together),
            nodes.call(addr, second, together),
            nodes.call(addr, second, together),
            nodes.call(addr, second, together),
        );
        for result in [results.0, results.1, results.2, results.3] {
            assert!(matches!(result, Err(CallError::Connection(_))), "{result:?}");
        }
        assert_eq!(nodes.breaker(addr).state(Instant::now()), BreakerState::Closed);
        nodes.call(addr, Duration::from_secs(1), ping).await.expect("a new connection answers");

        // Failures on separate connections still add up and open it.
        let failing = |_conn: MultiplexedConnection| async { Err::<(), _>(dropped()) };
        for _ in 0..2 {
            nodes.call(addr, Duration::from_secs(1), failing).await.unwrap_err();
        }
        assert_eq!(nodes.breaker(addr).state(Instant::now()), BreakerState::Open);
    }

    #[tokio::test]
    async fn a_transaction_discarded_for_want_of_replicas_applied_nothing() {
        let redis = tokio::task::spawn_blocking(RedisServer::primary).await.unwrap();
        let nodes = nodes();
        let mut conn = nodes.connect(redis.addr().parse().unwrap()).await.unwrap();
        redis::cmd("MULTI").query_async::<()>(&mut conn).await.unwrap();
        redis::cmd("INCR").arg("counter").query_async::<()>(&mut conn).await.unwrap();
        // The write guard turns on between the queued INCR and EXEC, as when
        // the last replica falls behind in that moment.
        redis.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
        let err = redis::cmd("EXEC").query_async::<Vec<i64>>(&mut conn).await.unwrap_err();
        assert!(CallError::Refused(err.clone()).is_write_refused_unapplied(), "{err:?}");
        assert_eq!(redis.cli(&["EXISTS", "counter"]), "(integer) 0", "nothing applied");
        let other = redis::cmd("EXEC").query_async::<()>(&mut conn).await.unwrap_err();
        assert!(!CallError::Refused(other.clone()).is_write_refused_unapplied(), "{other:?}");
    }
}
