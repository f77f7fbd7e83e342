//! A service binary started with flags, as an operator or Nomad would.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_for};

pub struct ServiceProcess {
    pub port: u16,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Starts `bin` listening on a free port and waits until `/health/live` answers.
    pub fn start(bin: &Path, args: &[&str]) -> ServiceProcess {
        let port = free_port();
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("CONSUL_HTTP_ADDR")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let process = ServiceProcess { port, child: Some(child) };
        wait_for("the service to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
