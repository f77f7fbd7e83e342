//! A real Consul dev agent on free loopback ports, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{cached_tool, free_port, scratch_dir, wait_for};

pub struct ConsulAgent {
    pub http_port: u16,
    child: Child,
    dir: PathBuf,
}

impl ConsulAgent {
    /// `consul agent -dev` on loopback with every port free-picked.
    pub fn dev() -> ConsulAgent {
        let bin = std::env::var_os("CONSUL_BIN").map(PathBuf::from).or_else(|| cached_tool("consul")).unwrap_or_else(
            || PathBuf::from("consul"), // PATH, as a last resort
        );
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
        let child = Command::new(&bin)
            .args(["agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "warn"])
            .arg(format!("-config-file={}", config.display()))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): run scripts/install to build Consul", bin.display()));
        let agent = ConsulAgent { http_port, child, dir };
        wait_for("consul to elect itself leader", Duration::from_secs(30), || {
            agent.get("/v1/status/leader").is_some_and(|leader| leader.len() > 2)
        });
        agent
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
