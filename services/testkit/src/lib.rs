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

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use consul::ConsulAgent;
pub use process::ServiceProcess;
pub use redis::RedisServer;
pub use tls::TestPki;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("binding 127.0.0.1:0")
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
