//! web-inc against Redis with the deployment's ACL users: it increments as
//! `web-inc`, cannot as `web`, and never prints its password.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::redis::{TEST_PASSWORDS, counter_acl};
use testkit::{RedisServer, free_port, signal, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_web-inc");

fn password(user: &str) -> &'static str {
    TEST_PASSWORDS.iter().find(|(name, _)| *name == user).unwrap().1
}

/// web-inc on a free port, authenticating as `user`; its stdout is captured.
fn start(primary: &RedisServer, user: &str) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--redis-primary", &primary.addr()])
        .args(["--log-level", "debug", "--wait-timeout-ms", "2000"])
        .env("COUNTER_REDIS_USERNAME", user)
        .env("COUNTER_REDIS_PASSWORD", password(user))
        .env_remove("CONSUL_HTTP_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("web-inc to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port)
}

fn stop(mut child: Child) -> String {
    signal(child.id(), "TERM");
    child.wait().unwrap();
    std::io::read_to_string(child.stdout.take().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn increments_as_the_web_inc_user_and_is_refused_as_web() {
    let acl = counter_acl();
    let primary = RedisServer::primary_with_acl(&acl);
    let replica = RedisServer::replica_with_acl(&primary, &acl, "replication", password("replication"));
    // reqwest is built with rustls and no crypto provider of its own.
    counter::tls::install_crypto_provider();
    let client = reqwest::Client::new();

    let (child, port) = start(&primary, "web-inc");
    let url = format!("http://127.0.0.1:{port}/inc");
    for expected in 1..=3 {
        let response = client.post(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), format!("{expected}\n"), "MULTI, INCR, EXEC + WAIT as web-inc");
    }
    replica.wait_for_value("counter", "3");
    let logs = stop(child);
    assert!(!logs.contains(password("web-inc")), "the password is never logged:\n{logs}");

    let (child, port) = start(&primary, "web");
    let refused = client.post(format!("http://127.0.0.1:{port}/inc")).send().await.unwrap();
    assert_eq!(refused.status(), 503, "web's user may not INCR");
    assert!(refused.headers().contains_key("retry-after"));
    let logs = stop(child);
    assert!(logs.to_lowercase().contains("noperm"), "the refusal is logged with Redis's reason:\n{logs}");
    assert!(!logs.contains(password("web")), "the password is never logged");
    assert_eq!(primary.count("counter"), 3, "the refused increment changed nothing");
}

#[test]
fn the_users_have_no_more_rights_than_their_service_needs() {
    let primary = RedisServer::primary_with_acl(&counter_acl());
    let web = Some(("web", password("web")));
    let web_inc = Some(("web-inc", password("web-inc")));
    assert!(primary.cli_as(None, &["GET", "counter"]).contains("NOAUTH"), "the default user is off");
    assert!(primary.cli_as(web, &["INCR", "counter"]).contains("NOPERM"));
    assert!(primary.cli_as(web, &["SET", "counter", "1"]).contains("NOPERM"));
    assert!(primary.cli_as(web, &["GET", "other"]).contains("NOPERM"), "only the counter key");
    assert!(primary.cli_as(web_inc, &["SET", "counter", "1"]).contains("NOPERM"));
    assert!(primary.cli_as(web_inc, &["FLUSHALL"]).contains("NOPERM"));
    assert!(primary.cli_as(web_inc, &["INCR", "other"]).contains("NOPERM"), "only the counter key");
    assert_eq!(primary.cli_as(web_inc, &["INCR", "counter"]).trim(), "(integer) 1");
    // One at a time only: web-inc cannot lower the count or move it by more than one.
    for command in [
        &["INCRBY", "counter", "-5"][..],
        &["INCRBY", "counter", "1000"],
        &["DECR", "counter"],
        &["DECRBY", "counter", "1"],
        &["INCRBYFLOAT", "counter", "1"],
        &["SETRANGE", "counter", "0", "9"],
        &["GETSET", "counter", "0"],
        &["DEL", "counter"],
        &["EVAL", "return 1", "0"],
        &["FCALL", "f", "0"],
    ] {
        assert!(primary.cli_as(web_inc, command).contains("NOPERM"), "{command:?} as web-inc");
    }
    assert_eq!(primary.cli_as(web, &["GET", "counter"]).trim(), "\"1\"");
}
