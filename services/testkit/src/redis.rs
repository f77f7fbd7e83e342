//! A real `redis-server` on a free loopback port, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, scratch_dir, signal, wait_for};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    /// A primary without persistence (tests want speed, not durability).
    pub fn primary() -> RedisServer {
        RedisServer::start(&[])
    }

    /// A replica of `primary`, returned once its initial sync finished.
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        wait_for("the replica's initial sync", Duration::from_secs(10), || {
            replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
        });
        wait_for("the primary to see the replica online", Duration::from_secs(10), || {
            primary.cli(&["INFO", "replication"]).contains("state=online")
        });
        replica
    }

    /// A primary and one synced replica of it.
    pub fn pair() -> (RedisServer, RedisServer) {
        let primary = RedisServer::primary();
        let replica = RedisServer::replica_of(&primary);
        (primary, replica)
    }

    /// Waits until `key` holds `value` here (replication is asynchronous).
    pub fn wait_for_value(&self, key: &str, value: &str) {
        wait_for(&format!("{key} = {value} on :{}", self.port), Duration::from_secs(5), || {
            self.cli(&["GET", key]) == value
        });
    }

    fn start(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = scratch_dir("redis");
        let mut args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--dir".into(), dir.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/install (Debian package redis-server)");
        let server = RedisServer { port, child: Some(child), dir };
        wait_for("redis-server to answer PING", Duration::from_secs(10), || server.cli(&["PING"]) == "PONG");
        server
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Runs `redis-cli` against this server; its trimmed output, or "" when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string(), "--no-raw"]).args(args).output();
        match out {
            Ok(out) => String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string(),
            Err(_) => String::new(),
        }
    }

    /// The counter's value as stored here (0 when missing).
    pub fn count(&self, key: &str) -> i64 {
        let raw = self.cli(&["GET", key]);
        if raw == "(nil)" { 0 } else { raw.parse().unwrap_or_else(|_| panic!("not a count: {raw:?}")) }
    }

    /// SIGSTOP: the process hangs with its sockets open, like a frozen machine.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// SIGKILL and reap: connections are refused from now on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server ignores SIGKILL until continued on some systems' tooling: continue first.
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
