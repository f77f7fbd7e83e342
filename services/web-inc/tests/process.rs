//! The `web-inc` binary as Nomad runs it: signals, exit codes, bad config.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::{RedisServer, ServiceProcess, signal};

const BIN: &str = env!("CARGO_BIN_EXE_web-inc");

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_increments_finish_refuses_new_connections_and_exits_0() {
    let (primary, replica) = tokio::task::spawn_blocking(RedisServer::pair).await.unwrap();
    let mut service = ServiceProcess::start(
        Path::new(BIN),
        &["--redis-primary", &primary.addr(), "--wait-timeout-ms", "5000", "--drain-timeout", "8"],
    );
    // reqwest is built with rustls and no crypto provider of its own.
    counter::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = service.url("/inc");
    assert_eq!(client.post(&url).send().await.unwrap().text().await.unwrap(), "1\n");

    // Hold increments in flight: they wait in WAIT while the replica is frozen.
    replica.pause();
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.post(url).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(service.pid(), "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = std::net::TcpStream::connect(("127.0.0.1", service.port));
    replica.resume();

    assert!(refused.is_err(), "new connections are refused once draining");
    let mut values = Vec::new();
    for request in in_flight {
        let response = request.await.unwrap().expect("an in-flight request got its answer");
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        values.push(body.trim().parse::<i64>().unwrap());
    }
    values.sort();
    assert_eq!(values, (2..=21).collect::<Vec<_>>());
    let status = service.wait_exit(Duration::from_secs(10)).expect("exited within the drain timeout");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(primary.count("counter"), 21);
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CONSUL_HTTP_ADDR")
        .envs(env.iter().copied())
        .output()
        .expect("running web-inc");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--redis-primary", "127.0.0.1:1", "--store-timeout-ms", "soon"], &[], "--store-timeout-ms"),
        (&["--redis-primary", "not-an-address"], &[], "--redis-primary"),
        (&["--redis-primary", "127.0.0.1:1"], &[("COUNTER_WAIT_TIMEOUT_MS", "0")], "--wait-timeout-ms"),
        (&["--redis-primary", "127.0.0.1:1"], &[("NOMAD_PORT_http", "http")], "NOMAD_PORT_http"),
        (&["--redis-primary", "127.0.0.1:1"], &[("NOMAD_IP_http", "::zz"), ("NOMAD_PORT_http", "80")], "NOMAD_IP_http"),
        (&["--consul", "ftp://x"], &[], "--consul"),
        (&[], &[], "--consul"),
        (&["--bogus"], &[], "--bogus"),
    ];
    for (args, env, key) in cases {
        let (code, stderr) = run(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?} {env:?} should name {key}: {stderr}");
    }
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);

    assert!(out.status.success());
    for flag in ["--listen", "--consul", "--redis-primary", "--drain-timeout", "--log-dir"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("CONSUL_HTTP_ADDR"), "{help}");
}
