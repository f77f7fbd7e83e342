//! Test harness: real `redis-server` and Consul processes on free loopback ports,
//! and the service binaries started as a user would. Every process is killed when
//! its handle drops, so a failing test leaves nothing behind.
//!
//! # Layout
//! - [`redis`]: a primary or replica `redis-server`, with stop/pause/resume.
//! - [`consul`]: a Consul dev agent and service (de)registration.
//! - [`process`]: a service binary started with flags, waited for, signalled.
//! - [`tls`]: a throwaway CA and a server certificate for 127.0.0.1.

pub mod consul;
pub mod process;
pub mod redis;
pub mod tls;

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use consul::ConsulAgent;
pub use process::ServiceProcess;
pub use redis::RedisServer;
pub use tls::TestPki;

/// A port that was free a moment ago on 127.0.0.1 (TCP and UDP: Consul's
/// gossip wants both), never handed out twice by this process.
///
/// Not `bind(0)`: that returns an ephemeral port, and the tests' own outgoing
/// connections (curl, Redis clients, reqwest) take their source ports from the
/// same range, so one of them could hold the port by the time a server binds
/// it. Ports are taken in turn from below the kernel's ephemeral range, from a
/// start that differs per process.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (low, high) = unclaimed_port_range();
    let span = u32::from(high - low);
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id() * 97 % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let port = low + (NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {low} and {high}")
}

/// Ports below the kernel's ephemeral range (`ip_local_port_range`, 32768 by
/// default) and above the well-known services' ports.
fn unclaimed_port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (20000, ephemeral_low.max(22000))
}

/// A fresh scratch directory for one process's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("counter-test-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}

/// Polls `check` every 20 ms until it returns true; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where the project's installer puts its tools, to find `consul` without PATH.
pub fn cached_tool(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("COUNTER_CACHE").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(home.join("counter"))
    })?;
    let path = cache.join("bin").join(name);
    path.exists().then_some(path)
}

/// Sends a signal by name (`STOP`, `CONT`, `TERM`, `KILL`) with the `kill` utility.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid} failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let (low, high) = unclaimed_port_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        for port in ports {
            assert!((low..high).contains(&port), "{port} is outside {low}..{high}");
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{port} is not free: {e}"));
        }
    }
}
