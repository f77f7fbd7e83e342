//! A bounded queue of callers that lanes drain in batches: one Redis round trip
//! answers everyone who was waiting when it was sent. Reads use it to coalesce
//! `GET`s, writes to share one `WAIT` (group commit).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::logic::{Count, StoreError};

pub(crate) type Reply = oneshot::Sender<Result<Count, StoreError>>;

/// Callers beyond this many waiting get a fast 503 instead of an unbounded queue.
const CAPACITY: usize = 16_384;
/// The largest batch one round trip answers.
const MAX_BATCH: usize = 4_096;

#[derive(Clone)]
pub(crate) struct Queue {
    tx: mpsc::Sender<Reply>,
    /// tokio Mutex: a lane holds it across `recv().await` so only one lane waits
    /// for the next caller at a time; the others are busy with their batches.
    rx: Arc<Mutex<mpsc::Receiver<Reply>>>,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        let (tx, rx) = mpsc::channel(CAPACITY);
        Queue { tx, rx: Arc::new(Mutex::new(rx)) }
    }

    /// Enqueues a caller and waits for its answer.
    pub(crate) async fn call(&self, what: &str) -> Result<Count, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(reply).map_err(|_| StoreError::unavailable(format!("{what}: too many waiting callers")))?;
        answer.await.unwrap_or_else(|_| Err(StoreError::unavailable(format!("{what}: store worker stopped"))))
    }

    /// The next batch: waits for one caller, then takes everyone already waiting.
    /// `None` once `shutdown` fires while waiting; callers still queued then are
    /// answered "store worker stopped" when the queue drops with their replies.
    pub(crate) async fn next_batch(&self, shutdown: &CancellationToken) -> Option<Vec<Reply>> {
        tokio::select! {
            // A caller already queued is served before the signal is looked at.
            biased;
            batch = self.take_batch() => batch,
            () = shutdown.cancelled() => None,
        }
    }

    async fn take_batch(&self) -> Option<Vec<Reply>> {
        let mut rx = self.rx.lock().await;
        let first = rx.recv().await?;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(reply) => batch.push(reply),
                Err(_) => break,
            }
        }
        // Callers that gave up (client gone) need no answer, and no write.
        batch.retain(|reply| !reply.is_closed());
        Some(batch)
    }
}
