//! Counter: the shared library behind the `web` and `web-inc` services.
//!
//! The logic ([`CountStore`], owned by [`logic`]) knows nothing of Redis or Consul;
//! [`RedisStore`] implements it, [`Discovery`] tells it where Redis is, and
//! [`Application`] wires one to the other and serves the HTTP contract of
//! `docs/architecture.md`. The binaries only pick a [`Role`] and call [`run`].
//!
//! # Layout
//! - [`logic`]: the count, the [`CountStore`] trait the logic needs, its errors.
//! - [`redis_store`]: the Redis adapter: replica reads with fallback, group-committed
//!   `INCR` × n + `WAIT` writes, per-endpoint circuit breakers ([`breaker`]).
//! - [`discovery`]: Redis endpoints, fixed or followed in Consul with blocking queries;
//!   the Consul connection: ACL token, TLS.
//! - [`tls`]: the CA bundles and client identity read at start, rustls's crypto provider.
//! - [`http`]: the hardened hyper server, routing, content negotiation, request ids.
//! - [`config`], [`telemetry`], [`metrics`]: flags and env parsed once into final
//!   types, logs, Prometheus.
//! - [`reloadable`], [`runtime_file`], [`reload`]: settings changed without a
//!   restart, declared once (Consul KV, rendered by Nomad, applied on SIGHUP).
//! - [`background`]: the tasks that run beside the server, each given the
//!   shutdown signal, joined when the application stops.
//! - [`app`]: `Application::build` / `port` / `run_until_stopped`, and [`run`].
//! - [`memory_store`]: an in-memory [`CountStore`] for tests of the logic and the
//!   `constant` benchmark example.

pub mod app;
pub mod background;
pub mod breaker;
pub mod config;
pub mod discovery;
pub mod http;
pub mod logic;
pub mod memory_store;
pub mod metrics;
pub mod redis_store;
pub mod reload;
pub mod reloadable;
pub mod runtime_file;
pub mod telemetry;
pub mod tls;

pub use app::{Application, run};
pub use background::Background;
pub use breaker::Breaker;
pub use config::{Config, RedisSource, Role};
pub use discovery::{Discovery, Endpoints};
pub use logic::{Count, CountStore, Side, StoreError};
pub use memory_store::MemoryStore;
pub use redis_store::RedisStore;
pub use reloadable::Reloadable;
