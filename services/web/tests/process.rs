//! The `web` binary as Nomad runs it: it binds Nomad's address and logs JSON.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{RedisServer, free_port, scratch_dir, signal, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_web");

#[test]
fn binds_nomads_address_serves_reads_and_logs_json_lines_with_the_request_id() {
    let primary = RedisServer::primary();
    let replica = RedisServer::replica_of(&primary);
    primary.cli(&["SET", "counter", "41"]);
    replica.wait_for_value("counter", "41");
    let port = free_port();
    let log_dir = scratch_dir("web-logs");
    let mut child = Command::new(BIN)
        .args(["--redis-primary", &primary.addr(), "--redis-replicas", &replica.addr()])
        .args(["--log-dir", log_dir.to_str().unwrap(), "--log-level", "debug"])
        .env("NOMAD_IP_http", "127.0.0.1")
        .env("NOMAD_PORT_http", port.to_string())
        .env_remove("CONSUL_HTTP_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("web to listen on NOMAD_PORT_http", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let out = Command::new("curl")
        .args(["-s", "-H", "x-request-id: trace-me-42", "-H", "Accept: image/png"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let body = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}/")]).output().unwrap();
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();

    assert_eq!(String::from_utf8_lossy(&body.stdout), "41\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not_acceptable"));
    assert!(status.success());
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("every stdout line is JSON")).collect();
    assert!(lines.iter().any(|l| l["message"] == "serving"), "{stdout}");
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == "trace-me-42"),
        "a line logged while serving the request names it: {stdout}"
    );
    let file = std::fs::read_dir(&log_dir).unwrap().next().expect("a rolling log file").unwrap().path();
    assert!(std::fs::read_to_string(file).unwrap().contains("\"serving\""));
    let _ = Path::new(&log_dir);
}
