//! The counting logic's view of storage. The trait lives here, with the code that
//! uses it, so an adapter can change without the logic changing.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// A counter value as stored: never negative in practice, but Redis counts in i64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(pub i64);

impl Count {
    /// Parses a stored value; anything but a decimal integer is corruption, not zero.
    pub fn parse(raw: &[u8]) -> Result<Count, StoreError> {
        std::str::from_utf8(raw).ok().and_then(|s| s.parse::<i64>().ok()).map(Count).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "counter value is not an integer: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(64)])
            ))
        })
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which half of the store an operation needs: reads may use replicas, writes need
/// the primary. Readiness is judged per side, so `web` is ready without a primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Read,
    Write,
}

/// Why the store could not answer. Mapped to an HTTP status in one place
/// (`http::response`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// No endpoint could serve the call in time; the client should retry after the hint.
    #[error("store unavailable: {reason}")]
    Unavailable { reason: String, retry_after: Duration },
    /// The write was applied on the primary, but not enough replicas confirmed it in
    /// time, so it is not acknowledged (it may or may not be counted).
    #[error("increment not confirmed by {wanted} replica(s) in time (confirmed by {confirmed})")]
    NotReplicated { confirmed: i64, wanted: i64 },
    /// The stored value cannot be a count; an operator must look.
    #[error("corrupt counter: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn unavailable(reason: impl Into<String>) -> StoreError {
        StoreError::Unavailable { reason: reason.into(), retry_after: Duration::from_secs(1) }
    }
}

/// What the count logic needs from storage.
pub trait CountStore: Send + Sync + 'static {
    /// The current count; a missing counter is zero.
    fn get(&self) -> impl Future<Output = Result<Count, StoreError>> + Send;
    /// Adds one and returns the new count, only once the increment is durable
    /// (for Redis: a replica has it).
    fn increment(&self) -> impl Future<Output = Result<Count, StoreError>> + Send;
    /// Whether the given side can serve now (readiness).
    fn probe(&self, side: Side) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_decimal_integers() {
        assert_eq!(Count::parse(b"42").unwrap(), Count(42));
        assert_eq!(Count::parse(b"-3").unwrap(), Count(-3));
    }

    #[test]
    fn parse_calls_anything_else_corrupt() {
        for raw in [&b"abc"[..], b"", b"1.5", b" 1", b"\xff\xfe", b"99999999999999999999"] {
            assert!(matches!(Count::parse(raw), Err(StoreError::Corrupt(_))), "{raw:?}");
        }
    }
}
