//! Reads: one `GET` answers every caller queued when it was sent, from the next
//! replica in rotation, falling back to the other replicas and then the primary.
//! A caller queued after an acknowledged increment is answered by a `GET` sent
//! after that acknowledgement, and the acknowledgement waited for every in-sync
//! replica, so it sees at least that value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Shared;
use super::nodes::CallError;
use crate::logic::{Count, StoreError};

/// Runs one read lane until `shutdown` fires. A batch already sent is answered first.
pub(crate) async fn lane(shared: Arc<Shared>, shutdown: CancellationToken) {
    let rotation = AtomicUsize::new(0);
    while let Some(batch) = shared.reads.next_batch(&shutdown).await {
        if batch.is_empty() {
            continue;
        }
        let result = read_once(&shared, &rotation).await;
        for reply in batch {
            let _ = reply.send(result.clone());
        }
    }
}

/// The endpoints to try, in order: replicas starting from the next in rotation, then the primary.
///
/// During a failover there is a moment with no healthy primary and no replica
/// whose link is up (their primary just died). Then the last replicas known to
/// be healthy are read: with no primary anywhere, no increment can be
/// acknowledged, so they hold every acknowledged one. The moment Consul names
/// a primary or a healthy replica again, only those are used.
pub(crate) fn read_order(shared: &Shared, rotation: &AtomicUsize) -> Vec<SocketAddr> {
    let endpoints = shared.endpoints.borrow();
    let mut last_known = shared.last_known_replicas.lock().unwrap();
    let replicas: &[SocketAddr] = if !endpoints.replicas.is_empty() {
        last_known.clone_from(&endpoints.replicas);
        &endpoints.replicas
    } else if endpoints.primary.is_none() {
        &last_known
    } else {
        &[]
    };
    let n = replicas.len();
    let start = if n == 0 { 0 } else { rotation.fetch_add(1, Ordering::Relaxed) % n };
    let mut order: Vec<SocketAddr> = (0..n).map(|i| replicas[(start + i) % n]).collect();
    if let Some(primary) = endpoints.primary
        && !order.contains(&primary)
    {
        order.push(primary);
    }
    order
}

async fn read_once(shared: &Shared, rotation: &AtomicUsize) -> Result<Count, StoreError> {
    let deadline = Instant::now() + shared.settings.now().store_timeout;
    let mut last: Option<CallError> = None;
    let mut order = read_order(shared, rotation);
    // A node that dropped our connection is asked once more, on a new one:
    // Sentinel closes every client connection of a node it reconfigures in a
    // failover (CLIENT KILL TYPE normal), and in that moment the one replica
    // left may be the only endpoint there is.
    for _pass in 0..2 {
        let mut dropped = Vec::new();
        for addr in order {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let attempt = remaining.min(shared.settings.attempt_timeout());
            let key = shared.settings.key.clone();
            let result = shared
                .nodes
                .call(addr, attempt, |mut conn| async move {
                    redis::cmd("GET").arg(&key).query_async::<Option<Vec<u8>>>(&mut conn).await
                })
                .await;
            match result {
                Ok(None) => return Ok(Count(0)),
                Ok(Some(raw)) => return Count::parse(&raw),
                Err(err) => {
                    shared.metrics.store_error("get", err.kind());
                    if !matches!(err, CallError::BreakerOpen(_)) {
                        debug!(endpoint = %addr, cause = %err, "read failed; trying the next endpoint");
                    }
                    if err.is_corruption() {
                        return Err(err.into_store_error("reading the count"));
                    }
                    if matches!(&err, CallError::Connection(e) if !e.is_connection_refusal()) {
                        dropped.push(addr);
                    }
                    last = Some(err);
                }
            }
        }
        if dropped.is_empty() {
            break;
        }
        order = dropped;
    }
    let err = match last {
        Some(err) => err.into_store_error("reading the count"),
        None => StoreError::unavailable("reading the count: no redis endpoint known"),
    };
    warn!(cause = %err, "no endpoint could serve a read");
    Err(err)
}
