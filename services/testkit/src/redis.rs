//! A real `redis-server` on a free loopback port, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::TestPki;
use crate::{free_port, scratch_dir, signal, wait_for};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// The admin user `cli` speaks as on a server with ACLs.
    admin_password: Option<String>,
    /// TLS only: the CA `cli` verifies the server against (a copy in `dir`).
    tls_ca: Option<PathBuf>,
}

/// The admin user every ACL test server gets, so the harness can still look inside.
pub const ACL_ADMIN: &str = "user admin on >admin-test-password ~* &* +@all";
const ADMIN_PASSWORD: &str = "admin-test-password";

impl RedisServer {
    /// A primary without persistence (tests want speed, not durability).
    pub fn primary() -> RedisServer {
        RedisServer::start(&[])
    }

    /// A primary whose users are the `acl` lines (Redis aclfile syntax) plus
    /// [`ACL_ADMIN`]; the harness's `cli` authenticates as admin.
    pub fn primary_with_acl(acl: &str) -> RedisServer {
        let dir = scratch_dir("redis-acl");
        let file = dir.join("users.acl");
        std::fs::write(&file, format!("{acl}\n{ACL_ADMIN}\n")).unwrap();
        RedisServer::start_in(dir.clone(), &["--aclfile", file.to_str().unwrap()], Some(ADMIN_PASSWORD.into()), None)
    }

    /// A primary that speaks TLS only (`port 0`, `tls-port`), with `pki`'s
    /// server certificate for 127.0.0.1; clients may present no certificate
    /// (`tls-auth-clients optional`), as in the cluster.
    pub fn primary_tls(pki: &TestPki) -> RedisServer {
        RedisServer::start_in(scratch_dir("redis-tls"), &[], None, Some(pki))
    }

    /// A TLS-only replica of the TLS primary `primary`, replicating over TLS
    /// (`tls-replication yes`), returned once synced.
    pub fn replica_tls_of(primary: &RedisServer, pki: &TestPki) -> RedisServer {
        let port = primary.port.to_string();
        let args = ["--replicaof", "127.0.0.1", &port, "--tls-replication", "yes"];
        let replica = RedisServer::start_in(scratch_dir("redis-tls"), &args, None, Some(pki));
        replica.wait_synced(primary);
        replica
    }

    /// A TLS primary and one synced TLS replica of it, both with `pki`'s certificate.
    pub fn pair_tls(pki: &TestPki) -> (RedisServer, RedisServer) {
        let primary = RedisServer::primary_tls(pki);
        let replica = RedisServer::replica_tls_of(&primary, pki);
        (primary, replica)
    }

    /// A replica of `primary` with the same users, replicating as `user`, once synced.
    pub fn replica_with_acl(primary: &RedisServer, acl: &str, user: &str, password: &str) -> RedisServer {
        let dir = scratch_dir("redis-acl");
        let file = dir.join("users.acl");
        std::fs::write(&file, format!("{acl}\n{ACL_ADMIN}\n")).unwrap();
        let port = primary.port.to_string();
        let args = ["--aclfile", file.to_str().unwrap(), "--replicaof", "127.0.0.1", &port];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--masteruser", user, "--masterauth", password]);
        let replica = RedisServer::start_in(dir.clone(), &args, Some(ADMIN_PASSWORD.into()), None);
        replica.wait_synced(primary);
        replica
    }

    /// A replica of `primary`, returned once its initial sync finished.
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        replica.wait_synced(primary);
        replica
    }

    fn wait_synced(&self, primary: &RedisServer) {
        let replica = self;
        wait_for("the replica's initial sync", Duration::from_secs(10), || {
            replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
        });
        wait_for("the primary to see the replica online", Duration::from_secs(10), || {
            primary.cli(&["INFO", "replication"]).contains("state=online")
        });
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
        RedisServer::start_in(scratch_dir("redis"), extra, None, None)
    }

    fn start_in(dir: PathBuf, extra: &[&str], admin_password: Option<String>, tls: Option<&TestPki>) -> RedisServer {
        let port = free_port();
        let mut args: Vec<String> =
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].iter().map(|s| s.to_string()).collect();
        let mut tls_ca = None;
        match tls {
            None => args.extend(["--port".into(), port.to_string()]),
            Some(pki) => {
                // Copies in the server's own dir: it outlives the PKI's files.
                let copy = |from: &std::path::Path, name: &str| {
                    let to = dir.join(name);
                    std::fs::copy(from, &to).expect("copying a TLS file");
                    to.display().to_string()
                };
                let ca = copy(pki.ca_cert(), "ca.pem");
                args.extend(["--port".into(), "0".into(), "--tls-port".into(), port.to_string()]);
                args.extend(["--tls-cert-file".into(), copy(pki.server_cert(), "server.pem")]);
                args.extend(["--tls-key-file".into(), copy(pki.server_key(), "server.key")]);
                args.extend(["--tls-ca-cert-file".into(), ca.clone(), "--tls-auth-clients".into(), "optional".into()]);
                tls_ca = Some(PathBuf::from(ca));
            }
        }
        args.extend(["--dir".into(), dir.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/install (Debian package redis-server)");
        let server = RedisServer { port, child: Some(child), dir, admin_password, tls_ca };
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
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string(), "--no-raw", "--no-auth-warning"]);
        if let Some(ca) = &self.tls_ca {
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        if let Some(password) = &self.admin_password {
            command.args(["--user", "admin"]).env("REDISCLI_AUTH", password);
        }
        self.run_cli(command, args)
    }

    /// Runs `redis-cli` as `user` with `password` (`None`: unauthenticated),
    /// returning what it printed on stdout and stderr, to check refusals.
    pub fn cli_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string(), "--no-raw", "--no-auth-warning"]);
        if let Some(ca) = &self.tls_ca {
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        if let Some((user, password)) = user {
            command.args(["--user", user]).env("REDISCLI_AUTH", password);
        }
        match command.args(args).output() {
            Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            Err(err) => format!("redis-cli failed: {err}"),
        }
    }

    fn run_cli(&self, mut command: Command, args: &[&str]) -> String {
        let out = command.args(args).output();
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

/// Passwords of the service users in [`counter_acl`], for tests only.
pub const TEST_PASSWORDS: [(&str, &str); 3] =
    [("web", "web-test-password"), ("web-inc", "web-inc-test-password"), ("replication", "replication-test-password")];

/// The deployment's own Redis users (`redis/users.acl.j2`, what each
/// service may run), each with the password `<user>-test-password` in place
/// of the `#{{ ... }}` hash the deployment renders. Only the user lines: an
/// aclfile holds nothing else (the template's comments are Jinja's).
pub fn counter_acl() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../redis/users.acl.j2");
    let template = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    template
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("user "))
        .map(|line| {
            let user = line.split_whitespace().nth(1).unwrap_or_default();
            match (line.find("#{{"), line.find("}}")) {
                (Some(start), Some(end)) => {
                    format!("{}>{user}-test-password{}", &line[..start], &line[end + 2..])
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
