//! A real Consul dev agent on free loopback ports, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cached_tool, free_port, scratch_dir};

pub struct ConsulAgent {
    pub http_port: u16,
    child: Child,
    dir: PathBuf,
}

/// Attempts at a dev agent: its ports are picked free a moment before Consul binds
/// them, so a parallel test can take one in between; a fresh set then succeeds.
const START_ATTEMPTS: usize = 3;
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

impl ConsulAgent {
    /// `consul agent -dev` on loopback with every port free-picked, once it is
    /// its own leader. An attempt that exits or never elects itself is reported
    /// with its log's tail and retried on fresh ports; the last failure panics.
    pub fn dev() -> ConsulAgent {
        let bin = std::env::var_os("CONSUL_BIN").map(PathBuf::from).or_else(|| cached_tool("consul")).unwrap_or_else(
            || PathBuf::from("consul"), // PATH, as a last resort
        );
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            match ConsulAgent::start(&bin) {
                Ok(agent) => return agent,
                Err(why) => {
                    eprintln!("consul dev agent, attempt {attempt} of {START_ATTEMPTS}: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("consul dev agent never became leader in {START_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    fn start(bin: &Path) -> Result<ConsulAgent, String> {
        let dir = scratch_dir("consul");
        let http_port = free_port();
        let ports = format!(
            r#"ports {{ http = {http_port}, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = {}, serf_wan = {}, server = {} }}"#,
            free_port(),
            free_port(),
            free_port()
        );
        let config = dir.join("ports.hcl");
        std::fs::write(&config, ports).expect("writing consul config");
        let log = std::fs::File::create(dir.join("consul.log")).expect("creating consul log");
        let child = Command::new(bin)
            .args(["agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "warn"])
            .arg(format!("-config-file={}", config.display()))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): run scripts/install to build Consul", bin.display()));
        let mut agent = ConsulAgent { http_port, child, dir };
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            if agent.get("/v1/status/leader").is_some_and(|leader| leader.len() > 2) {
                return Ok(agent);
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                return Err(format!("exited ({status}); its log ends:\n{}", agent.log_tail()));
            }
            if Instant::now() >= deadline {
                return Err(format!("no leader after {LEADER_TIMEOUT:?}; its log ends:\n{}", agent.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines Consul wrote, to say why an attempt failed (the file
    /// goes with the scratch dir when the agent drops).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("consul.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl").args(["-sf", &format!("{}{path}", self.url())]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn put(&self, path: &str, body: &str) {
        let out = Command::new("curl")
            .args(["-sf", "-X", "PUT", "--data-binary", body, &format!("{}{path}", self.url())])
            .output()
            .expect("curl is needed to talk to consul");
        assert!(out.status.success(), "PUT {path} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Registers a service instance without checks (so it is passing).
    pub fn register(&self, name: &str, id: &str, port: u16) {
        let body = format!(r#"{{"Name":"{name}","ID":"{id}","Address":"127.0.0.1","Port":{port}}}"#);
        self.put("/v1/agent/service/register", &body);
    }

    pub fn deregister(&self, id: &str) {
        self.put(&format!("/v1/agent/service/deregister/{id}"), "");
    }
}

impl Drop for ConsulAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
