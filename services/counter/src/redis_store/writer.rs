//! Writes: every caller queued when a batch is sent shares one transaction of
//! `n` × `INCR key` (`MULTI` … `EXEC`) and one `WAIT` (group commit), pipelined
//! in a single round trip on a connection of the lane's own (`WAIT` blocks the
//! connection it runs on). `INCR`, not `INCRBY key n`: web-inc's Redis user may
//! only add one at a time, so a compromised web-inc cannot lower the count or
//! set it to anything (its ACL has no `INCRBY`, `DECR` or `SET`), and the
//! transaction keeps the batch all-or-nothing. A batch is
//! acknowledged only when every replica currently in sync confirmed it, and at
//! least one did: Sentinel promotes the replica it believes most up to date, so
//! "some replica has it" would not be enough with two or more replicas.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use redis::RedisError;
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Shared;
use super::nodes::CallError;
use crate::discovery::Endpoints;
use crate::logic::{Count, StoreError};

/// A replica whose last acknowledgement is older than this many seconds is not in
/// sync. Replicas acknowledge every second (and at once when `WAIT` asks), so a
/// healthy one reads 0 or 1.
const MAX_IN_SYNC_LAG_S: u64 = 2;
/// A replica behind the primary whose acknowledged offset has not moved for
/// this long is not in sync either. Every `WAIT` asks the replicas to
/// acknowledge at once (and they do every second unasked), so one that
/// answers, however slowly, moves within a second; one cut off by a
/// partition stays "online" with a `lag` under [`MAX_IN_SYNC_LAG_S`] for up
/// to three seconds, Redis counting lag in whole seconds, and every batch
/// waited for it meanwhile. This tells it in one second, measured here to
/// the millisecond.
const SILENT_AFTER: Duration = Duration::from_millis(1000);
/// How often the primary's replication state is read to know who is in sync.
const TRACK_EVERY: Duration = Duration::from_millis(250);
/// How soon the nodes are looked at again for the primary when none proved
/// to be it (a failover still under way), while a batch is held.
const PROVE_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// Runs one write lane until `shutdown` fires. A batch already sent is answered
/// first: its increment may be applied, so its callers must learn the outcome.
///
/// A failover leaves no primary known for a few seconds (Sentinel's election,
/// then Consul's role check), and before that a dead primary still named. A
/// batch is held through both, `primary_wait` in all, so a failover costs its
/// callers latency instead of a 503: while no primary is named; and when the
/// primary named did not take the batch (it refused the connection, answered
/// READONLY or NOREPLICAS, or its breaker is open after failures), until another is named or the
/// breaker allows a trial (and on, if by then none is named). Meanwhile the
/// nodes Consul names are looked at every `PROVE_AGAIN_AFTER` for the one
/// that is primary already (`prove_primary`): the batch goes there as soon
/// as Sentinel's promotion is complete, however late Consul says so. In
/// those cases nothing was applied, so sending the batch again cannot count
/// it twice.
pub(crate) async fn lane(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut conn: Option<(SocketAddr, MultiplexedConnection)> = None;
    while let Some(mut batch) = shared.writes.next_batch(&shutdown).await {
        let hold_until = Instant::now() + shared.settings.now().primary_wait;
        let mut refused_by = None;
        // None: the first attempt, at once.
        let mut retry_in: Option<Duration> = None;
        let outcome = loop {
            if let Some(wait) = retry_in {
                wait_for_primary(&shared, refused_by, hold_until.min(Instant::now() + wait), &shutdown).await;
            }
            // Callers who gave up while held need no answer, and no write.
            batch.retain(|reply| !reply.is_closed());
            if batch.is_empty() {
                break None;
            }
            match write_once(&shared, &mut conn, batch.len(), refused_by, hold_until).await {
                Written::NotTaken { by, err, retry_in: wait }
                    if Instant::now() < hold_until && !shutdown.is_cancelled() =>
                {
                    debug!(endpoint = %by, cause = %err, "the primary did not take the write; holding it");
                    refused_by = Some(by);
                    // Look again soon among the other nodes for the one that
                    // is primary now (write_once), and meanwhile wait for
                    // Consul to name another; with the breaker open, try the
                    // named one again when it allows a trial.
                    retry_in = Some(wait.map_or(PROVE_AGAIN_AFTER, |wait| wait.min(PROVE_AGAIN_AFTER)));
                }
                Written::NotTaken { err, .. } => break Some(Err(err)),
                // No primary named (any more): a breaker's trial came while
                // none was. Or several are named and none proved to be it.
                // Nothing was sent, so hold on for the next one.
                Written::NoPrimary(_) if Instant::now() < hold_until && !shutdown.is_cancelled() => {
                    refused_by = None;
                    retry_in = Some(PROVE_AGAIN_AFTER);
                }
                Written::NoPrimary(err) => break Some(Err(err)),
                Written::Done(result) => break Some(result),
            }
        };
        let n = batch.len();
        match outcome {
            None => {}
            Some(Ok(Count(last))) => {
                shared.metrics.write_batch(n);
                // The transaction's n INCRs returned consecutive values, the
                // last one here: the batch owns last-n+1 ..= last.
                for (i, reply) in batch.into_iter().enumerate() {
                    let _ = reply.send(Ok(Count(last - (n - 1 - i) as i64)));
                }
            }
            Some(Err(err)) => {
                warn!(cause = %err, batch = n, "increment not acknowledged");
                for reply in batch {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Returns once a single primary other than `not` is named, `until` has
/// passed, or `shutdown` fires; at once when one is named already.
async fn wait_for_primary(shared: &Shared, not: Option<SocketAddr>, until: Instant, shutdown: &CancellationToken) {
    let usable = |e: &Endpoints| e.primary.is_some_and(|p| Some(p) != not);
    let mut endpoints = shared.endpoints.clone();
    if usable(&endpoints.borrow_and_update()) {
        return;
    }
    let started = Instant::now();
    let _ = shutdown.run_until_cancelled(tokio::time::timeout_at(until, endpoints.wait_for(usable))).await;
    debug!(held_ms = started.elapsed().as_millis() as u64, "write held for a primary");
}

/// What one attempt at a batch came to.
enum Written {
    Done(Result<Count, StoreError>),
    /// No primary is named: nothing was sent.
    NoPrimary(StoreError),
    /// The node named primary applied nothing: it could not be connected to
    /// or answered READONLY or NOREPLICAS (`retry_in` None), or its breaker
    /// is open for `retry_in`.
    NotTaken {
        by: SocketAddr,
        err: StoreError,
        retry_in: Option<Duration>,
    },
}

/// One attempt at a batch of `n`. `refused_by`: the node that did not take
/// the batch's previous attempt (see `Written::NotTaken`); `hold_until`: when
/// the batch's hold is up.
async fn write_once(
    shared: &Arc<Shared>,
    conn: &mut Option<(SocketAddr, MultiplexedConnection)>,
    n: usize,
    refused_by: Option<SocketAddr>,
    hold_until: Instant,
) -> Written {
    let named = shared.endpoints.borrow().primary;
    let primary = match named {
        Some(primary) if Some(primary) != refused_by => Some(primary),
        // None named, or the one named did not take the last attempt: Consul
        // can lag behind a failover by far more than Sentinel takes (each of
        // its agents holds its check updates while an RPC to a cut-off Consul
        // leader times out: 25 s measured), so look for the primary among the
        // nodes Consul names at all; else back to the one named (its breaker
        // decides whether it gets a trial).
        _ => prove_primary(shared, refused_by).await.or(named),
    };
    let Some(primary) = primary else {
        return Written::NoPrimary(StoreError::unavailable("incrementing: no single healthy primary known"));
    };
    let wanted = shared.in_sync.load(Ordering::Relaxed).max(1);
    let settings = &shared.settings;
    let tunables = settings.now();
    let wait_ms = tunables.wait_timeout.as_millis() as u64;
    // Whether the increment went out: until then a failure applied nothing.
    let mut sent = false;
    // WAITs again (below) until the batch's hold is up, and at least once.
    let rewait_until = hold_until.max(Instant::now() + tunables.wait_timeout);
    let budget = tunables.store_timeout + tunables.wait_timeout + rewait_until.duration_since(Instant::now());
    let result = shared
        .nodes
        .guarded(primary, budget, async {
            let mut c = match conn {
                Some((addr, c)) if *addr == primary => c.clone(),
                _ => {
                    let c = shared.nodes.connect(primary).await?;
                    *conn = Some((primary, c.clone()));
                    c
                }
            };
            sent = true;
            let (values, confirmed) =
                increments(&settings.key, n, wanted, wait_ms).query_async::<(Vec<i64>, i64)>(&mut c).await?;
            let value = *values.last().ok_or_else(|| {
                RedisError::from((redis::ErrorKind::UnexpectedReturnType, "EXEC of the increments returned nothing"))
            })?;
            if confirmed >= wanted {
                return Ok((value, confirmed, wanted));
            }
            // Fewer confirmed than were in sync a moment ago. Either a replica
            // has left (stopped, removed, cut off): `wanted` is up to
            // TRACK_EVERY old, so ask the primary who is in sync now and WAIT
            // again for those (WAIT covers every earlier write of this
            // connection, and counts only replicas still connected). A
            // replica cut off by a partition stays connected and in sync for
            // the primary until its acknowledgements are MAX_IN_SYNC_LAG_S
            // late, so ask again until then, within the batch's hold: the
            // others have confirmed, and the increment is answered once the
            // cut-off one no longer counts, instead of refused (measured: ~50
            // 503s per partition of a replica's machine). Or one is slow to
            // ack (a replica that has just joined, still busy after its
            // sync): as many in sync, WAIT again for all of them.
            let mut wanted = wanted;
            loop {
                let info = redis::cmd("INFO").arg("replication").query_async::<String>(&mut c).await?;
                let now = shared.acks.lock().expect("acks lock").in_sync(&info, Instant::now()).max(1);
                shared.in_sync.store(now, Ordering::Relaxed);
                wanted = now.min(wanted);
                let again = redis::cmd("WAIT").arg(wanted).arg(wait_ms).query_async::<i64>(&mut c).await?;
                debug!(wanted, now, confirmed = again, "fewer replicas confirmed than were in sync; waited again");
                if again >= wanted || Instant::now() >= rewait_until {
                    return Ok((value, again, wanted));
                }
            }
        })
        .await;
    Written::Done(match result {
        Ok((value, confirmed, wanted)) if confirmed >= wanted => Ok(Count(value)),
        Ok((_, confirmed, wanted)) => {
            shared.metrics.store_error("increment", "not_replicated");
            Err(StoreError::NotReplicated { confirmed, wanted })
        }
        Err(err) => {
            shared.metrics.store_error("increment", err.kind());
            if matches!(err, CallError::Timeout(_) | CallError::Connection(_)) {
                *conn = None;
            }
            let retry_in = match err {
                CallError::BreakerOpen(wait) => Some(wait),
                _ => None,
            };
            // Not connected (refused, timed out), breaker open, READONLY or
            // NOREPLICAS: nothing was applied, so the batch may go again,
            // elsewhere.
            if !sent || err.is_write_refused_unapplied() || retry_in.is_some() {
                return Written::NotTaken { by: primary, err: err.into_store_error("incrementing"), retry_in };
            }
            Err(err.into_store_error("incrementing"))
        }
    })
}

/// One batch of `n` increments and the `WAIT` for `wanted` replicas, as one
/// pipeline: `MULTI`, `n` × `INCR key`, `EXEC` (its reply: the `n` values),
/// `WAIT`. A node that refuses the writes (`READONLY`, `NOREPLICAS`) fails the
/// queued commands and aborts the transaction (`EXECABORT`): none is applied.
fn increments(key: &str, n: usize, wanted: i64, wait_ms: u64) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").ignore();
    for _ in 0..n {
        pipe.cmd("INCR").arg(key).ignore();
    }
    pipe.cmd("EXEC").cmd("WAIT").arg(wanted).arg(wait_ms);
    pipe
}

/// Of the nodes Consul names (every `redis-primary` when several are, the
/// replicas, the primary), other than `refused_by`, the one that is the
/// primary: it answers `role:master` with an in-sync replica, the role
/// watch's own rule, checked from here. None unless exactly one does. A node
/// cut off from this instance fails the look; an old primary left behind a
/// partition has no in-sync replica once its replicas follow the new one,
/// and a replica promoted by Sentinel has one as soon as the others follow
/// it, before Consul may say so. Safe even if a look is wrong: a write is
/// acknowledged only after every in-sync replica confirmed it (`WAIT`),
/// which a node without replicas cannot get.
async fn prove_primary(shared: &Arc<Shared>, refused_by: Option<SocketAddr>) -> Option<SocketAddr> {
    let candidates: Vec<SocketAddr> = {
        let endpoints = shared.endpoints.borrow();
        let mut all: Vec<SocketAddr> =
            endpoints.contested.iter().chain(&endpoints.replicas).chain(&endpoints.primary).copied().collect();
        all.sort();
        all.dedup();
        all.retain(|addr| Some(*addr) != refused_by);
        all
    };
    let timeout = shared.settings.attempt_timeout();
    // All at once: a cut-off node costs one timeout, not one per node.
    let mut looks = tokio::task::JoinSet::new();
    for addr in candidates {
        let shared = Arc::clone(shared);
        looks.spawn(async move {
            let info = shared
                .nodes
                .call(addr, timeout, |mut conn| async move {
                    redis::cmd("INFO").arg("replication").query_async::<String>(&mut conn).await
                })
                .await;
            info.is_ok_and(|info| is_writable_primary(&info)).then_some(addr)
        });
    }
    let proven: Vec<SocketAddr> = looks.join_all().await.into_iter().flatten().collect();
    match proven[..] {
        [one] => {
            debug!(endpoint = %one, "this node proved to be the primary");
            Some(one)
        }
        _ => None,
    }
}

/// `INFO replication` of a primary that takes writes: master, a replica in sync.
pub(crate) fn is_writable_primary(info: &str) -> bool {
    info.lines().any(|line| line.trim_end() == "role:master") && count_in_sync(info) >= 1
}

/// Keeps `shared.in_sync` at the number of replicas the primary sees in sync,
/// until `shutdown` fires.
pub(crate) async fn track_replicas(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TRACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
        let primary = shared.endpoints.borrow().primary;
        let Some(primary) = primary else { continue };
        let info = shared.nodes.call(primary, shared.settings.attempt_timeout(), |mut conn| async move {
            redis::cmd("INFO").arg("replication").query_async::<String>(&mut conn).await
        });
        let Some(info) = shutdown.run_until_cancelled(info).await else { return };
        match info {
            Ok(info) => {
                let in_sync = shared.acks.lock().expect("acks lock").in_sync(&info, Instant::now());
                let before = shared.in_sync.swap(in_sync, Ordering::Relaxed);
                if before != in_sync {
                    debug!(before, in_sync, "replicas in sync changed");
                }
            }
            Err(err) => debug!(endpoint = %primary, cause = %err, "reading replication state failed"),
        }
    }
}

/// The replica lines of `INFO replication` that are online with a recent ack
/// (`slave0:ip=10.0.0.2,port=6379,state=online,offset=42,lag=0`), as
/// (ip:port, acknowledged offset).
fn online_replicas(info: &str) -> impl Iterator<Item = (String, u64)> + '_ {
    info.lines()
        .filter(|line| line.starts_with("slave") && line.as_bytes().get(5).is_some_and(u8::is_ascii_digit))
        .filter_map(|line| {
            let field = |name: &str| {
                line.split([':', ',']).find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
            };
            let recent =
                field("lag").and_then(|lag| lag.trim().parse::<u64>().ok()).is_some_and(|lag| lag <= MAX_IN_SYNC_LAG_S);
            (field("state") == Some("online") && recent).then(|| {
                let offset = field("offset").and_then(|o| o.trim().parse().ok()).unwrap_or(0);
                (format!("{}:{}", field("ip").unwrap_or(""), field("port").unwrap_or("")), offset)
            })
        })
}

/// Counts the replicas in `INFO replication` that are online with a recent ack.
pub(crate) fn count_in_sync(info: &str) -> i64 {
    online_replicas(info).count() as i64
}

/// When each replica was last seen caught up with the primary or its
/// acknowledged offset moving: one behind the primary that has done neither
/// for [`SILENT_AFTER`] is not in sync, however recent Redis's whole-second
/// `lag` says its last ack was.
#[derive(Default)]
pub(crate) struct Acks {
    last_moved: HashMap<String, (u64, Instant)>,
}

impl Acks {
    /// The replicas in sync by `info`, read at `now`.
    pub(crate) fn in_sync(&mut self, info: &str, now: Instant) -> i64 {
        let primary_offset: u64 = info
            .lines()
            .find_map(|line| line.trim_end().strip_prefix("master_repl_offset:"))
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let mut seen = HashMap::new();
        let mut count = 0;
        for (replica, offset) in online_replicas(info) {
            let moved = match self.last_moved.get(&replica) {
                Some(&(before, at)) if before == offset && offset < primary_offset => at,
                _ => now,
            };
            if now.duration_since(moved) < SILENT_AFTER {
                count += 1;
            }
            seen.insert(replica, (offset, moved));
        }
        self.last_moved = seen;
        count
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Acks, count_in_sync, is_writable_primary};

    #[test]
    fn a_master_with_an_in_sync_replica_takes_writes_and_others_do_not() {
        let replica = "slave0:ip=10.0.0.2,port=6379,state=online,offset=42,lag=0";
        assert!(is_writable_primary(&format!("# Replication\r\nrole:master\r\n{replica}\r\n")));
        assert!(!is_writable_primary("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"));
        assert!(!is_writable_primary(&format!("role:slave\r\n{replica}\r\n")));
    }

    #[test]
    fn counts_online_replicas_with_a_recent_ack() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n\
            slave0:ip=127.0.0.1,port=6381,state=online,offset=100,lag=0\r\n\
            slave1:ip=127.0.0.1,port=6382,state=online,offset=90,lag=7\r\n\
            slave2:ip=127.0.0.1,port=6383,state=wait_bgsave,offset=0,lag=0\r\n\
            slave_read_repl_offset:100\r\nmaster_repl_offset:100\r\n";
        assert_eq!(count_in_sync(info), 1);
    }

    #[test]
    fn a_replica_behind_whose_acks_stopped_for_a_second_is_not_in_sync_and_a_slow_one_is() {
        let info = |cut: u64, slow: u64, primary: u64| {
            format!(
                "role:master\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset={cut},lag=1\r\n\
                 slave1:ip=10.0.0.3,port=6380,state=online,offset={slow},lag=1\r\nmaster_repl_offset:{primary}\r\n"
            )
        };
        let mut acks = Acks::default();
        let start = Instant::now();
        assert_eq!(acks.in_sync(&info(100, 100, 100), start), 2);
        // Writes go on: the slow replica acknowledges them late, the cut one never.
        assert_eq!(acks.in_sync(&info(100, 120, 200), start + Duration::from_millis(400)), 2);
        assert_eq!(acks.in_sync(&info(100, 190, 300), start + Duration::from_millis(900)), 2);
        assert_eq!(acks.in_sync(&info(100, 280, 400), start + Duration::from_millis(1100)), 1);
        // Caught up (nothing left to acknowledge), even a silent one is in sync,
        // and its silence counts from then (the primary is read every 250 ms):
        // a write a minute later finds it in sync until it has been behind for
        // a second.
        assert_eq!(acks.in_sync(&info(400, 400, 400), start + Duration::from_millis(3000)), 2);
        assert_eq!(acks.in_sync(&info(400, 400, 400), start + Duration::from_millis(62_900)), 2);
        assert_eq!(acks.in_sync(&info(400, 400, 500), start + Duration::from_millis(63_000)), 2);
        assert_eq!(acks.in_sync(&info(400, 500, 600), start + Duration::from_millis(63_800)), 2);
        assert_eq!(acks.in_sync(&info(400, 600, 700), start + Duration::from_millis(64_100)), 1);
    }

    #[test]
    fn no_replicas_means_zero() {
        assert_eq!(count_in_sync("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"), 0);
    }
}
