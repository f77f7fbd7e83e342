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

#[test]
fn reads_from_the_replica_as_the_web_user_without_logging_its_password() {
    use testkit::redis::{TEST_PASSWORDS, counter_acl};
    let pass = |user: &str| TEST_PASSWORDS.iter().find(|(name, _)| *name == user).unwrap().1;
    let acl = counter_acl();
    let primary = RedisServer::primary_with_acl(&acl);
    let replica = RedisServer::replica_with_acl(&primary, &acl, "replication", pass("replication"));
    primary.cli(&["SET", "counter", "77"]);
    replica.wait_for_value("counter", "77");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log-level", "debug"])
        .args(["--redis-primary", &primary.addr(), "--redis-replicas", &replica.addr()])
        .env("COUNTER_REDIS_USERNAME", "web")
        .env("COUNTER_REDIS_PASSWORD", pass("web"))
        .env_remove("CONSUL_HTTP_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("web to listen", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let body = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}/")]).output().unwrap();
    let ready = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/health/ready")])
        .output()
        .unwrap();
    signal(child.id(), "TERM");
    child.wait().unwrap();
    let logs = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();

    assert_eq!(String::from_utf8_lossy(&body.stdout), "77\n", "GET as web");
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "200", "PING as web");
    assert!(!logs.contains(pass("web")), "the password is never logged:\n{logs}");
}

#[test]
fn sighup_applies_a_new_runtime_file_without_a_restart() {
    let primary = RedisServer::primary();
    primary.cli(&["SET", "counter", "5"]);
    let dir = scratch_dir("web-runtime");
    let runtime = dir.join("runtime.env");
    std::fs::write(&runtime, "COUNTER_LOG_LEVEL=warn\n").unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--redis-primary", &primary.addr()])
        .args(["--runtime-file", runtime.to_str().unwrap(), "--log-level", "info"])
        .env_remove("CONSUL_HTTP_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("web to listen", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let get = |id: &str| {
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("x-request-id: {id}"), &format!("http://127.0.0.1:{port}/")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n", "served across the reload");
    };
    get("before-reload");
    std::fs::write(&runtime, "# from Consul KV\nCOUNTER_LOG_LEVEL=debug\n").unwrap();
    // The reload's outcome is counted in /metrics: wait for it there.
    let reloads = |outcome: &str| {
        let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}/metrics")]).output().unwrap();
        let needle = format!("counter_runtime_reloads_total{{outcome=\"{outcome}\"}} 1");
        String::from_utf8_lossy(&out.stdout).contains(&needle)
    };
    signal(child.id(), "HUP");
    wait_for("the reload to be applied", Duration::from_secs(5), || reloads("applied"));
    get("after-reload");
    std::fs::write(&runtime, "COUNTER_STORE_TIMEOUT_MS=1\n").unwrap();
    signal(child.id(), "HUP");
    wait_for("the bad file to be rejected", Duration::from_secs(5), || reloads("rejected"));
    get("after-rejected-reload");
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let about = |id: &str| lines.iter().filter(|l| l["span"]["request_id"] == id).count();

    assert!(status.success(), "the same process served to the end: {status:?}");
    assert_eq!(about("before-reload"), 0, "warn level: no request lines yet:\n{stdout}");
    assert!(lines.iter().any(|l| l["message"] == "runtime settings applied" && l["log_level"] == "debug"), "{stdout}");
    assert!(about("after-reload") > 0, "debug level after SIGHUP:\n{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN"
                && l["reason"].as_str().is_some_and(|r| r.contains("COUNTER_STORE_TIMEOUT_MS"))),
        "a bad file is rejected, naming the key:\n{stdout}"
    );
    assert!(about("after-rejected-reload") > 0, "the running settings (debug) stay after a rejected file");
}

#[test]
fn a_bad_runtime_file_at_start_exits_2_naming_the_key() {
    let dir = scratch_dir("web-runtime-bad");
    let runtime = dir.join("runtime.env");
    std::fs::write(&runtime, "COUNTER_BREAKER_FAILURES=lots\n").unwrap();
    let out = Command::new(BIN)
        .args(["--redis-primary", "127.0.0.1:1", "--runtime-file", runtime.to_str().unwrap()])
        .env_remove("CONSUL_HTTP_ADDR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("COUNTER_BREAKER_FAILURES"), "{stderr}");
}

#[test]
fn an_invalid_redis_tls_ca_exits_2_naming_the_flag() {
    let dir = scratch_dir("web-tls-bad");
    let not_a_ca = dir.join("ca.pem");
    std::fs::write(&not_a_ca, "not a certificate\n").unwrap();
    for (how, env) in [("flag", false), ("COUNTER_REDIS_TLS_CA", true)] {
        let mut command = Command::new(BIN);
        command.args(["--redis-primary", "127.0.0.1:1"]).env_remove("CONSUL_HTTP_ADDR");
        if env {
            command.env("COUNTER_REDIS_TLS_CA", &not_a_ca);
        } else {
            command.arg("--redis-tls-ca").arg(&not_a_ca);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{how}: {stderr}");
        assert!(stderr.contains("--redis-tls-ca"), "{how}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["--redis-primary", "127.0.0.1:1", "--redis-tls-ca", "/nonexistent/ca.pem"])
        .env_remove("CONSUL_HTTP_ADDR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--redis-tls-ca: cannot read /nonexistent/ca.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serves_over_tls_to_redis_as_a_process() {
    let pki = testkit::TestPki::new();
    let (primary, replica) = RedisServer::pair_tls(&pki);
    primary.cli(&["SET", "counter", "41"]);
    replica.wait_for_value("counter", "41");
    let web = testkit::ServiceProcess::start(
        Path::new(BIN),
        &["--redis-primary", &primary.addr(), "--redis-replicas", &replica.addr(), "--redis-tls-ca", pki.ca_arg()],
    );
    let body = Command::new("curl").args(["-s", &web.url("/")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "41\n");
}

#[test]
fn at_info_it_logs_traced_and_failed_requests_not_every_success() {
    let primary = RedisServer::primary();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--redis-primary", &primary.addr(), "--log-level", "info"])
        .env_remove("CONSUL_HTTP_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("web to listen", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let curl = |extra: &[&str], path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null"])
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        head.lines().find_map(|l| l.strip_prefix("x-request-id: ")).unwrap().trim().to_string()
    };
    let untraced = curl(&[], "/");
    let traced = curl(&["-H", "x-request-id: someone-traces-this"], "/");
    let failed = curl(&[], "/no-such-page");
    signal(child.id(), "TERM");
    child.wait().unwrap();
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let answered = |id: &str| {
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|l| l["message"] == "answered" && l["span"]["request_id"] == id)
    };

    assert_eq!(traced, "someone-traces-this");
    assert!(answered(&traced), "a request that came with an id is logged:\n{stdout}");
    assert!(answered(&failed), "a 404 is logged under the id the service made up:\n{stdout}");
    assert!(!answered(&untraced), "an untraced success is not, at info:\n{stdout}");
}
