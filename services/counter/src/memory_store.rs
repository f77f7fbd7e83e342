//! An in-memory [`CountStore`] for unit tests of the logic and the HTTP layer.
//! Never used by the services: they run on Redis.

use std::sync::Mutex;

use crate::logic::{Count, CountStore, Side, StoreError};

/// Counts in memory; `fail_with` makes every call fail, to test error paths.
#[derive(Default)]
pub struct MemoryStore {
    /// std Mutex, not tokio's: never held across an .await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    count: i64,
    failing: Option<fn() -> StoreError>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes every later call fail with the error `make` builds (None heals).
    pub fn fail_with(&self, make: Option<fn() -> StoreError>) {
        self.state.lock().unwrap().failing = make;
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut state = self.state.lock().unwrap();
        match state.failing {
            Some(make) => Err(make()),
            None => Ok(f(&mut state)),
        }
    }
}

impl CountStore for MemoryStore {
    async fn get(&self) -> Result<Count, StoreError> {
        self.with(|s| Count(s.count))
    }

    async fn increment(&self) -> Result<Count, StoreError> {
        self.with(|s| {
            s.count += 1;
            Count(s.count)
        })
    }

    async fn probe(&self, _side: Side) -> Result<(), StoreError> {
        self.with(|_| ())
    }
}
