//! Black-box tests of the services, in process on port 0, against real
//! `redis-server` processes (and a real Consul dev agent for discovery).

mod contract;
mod discovery;
mod failover;
mod gateway_tls;
mod helpers;
mod hostile;
mod shutdown;
mod store;
mod tls;
