//! Redis over TLS (`--redis-tls-ca`) against real TLS-only `redis-server`s:
//! counts are exact over TLS, and a server the CA did not sign, or a TLS port
//! spoken to in plain TCP, gives a 503 and never a count.

use counter::Role;
use testkit::{RedisServer, TestPki};

use crate::helpers::{TestApp, blocking, client, spawn_service};

/// A fresh CA, and a TLS-only primary + replica with certificates it signed.
async fn tls_pair() -> (TestPki, RedisServer, RedisServer) {
    blocking(|| {
        let pki = TestPki::new();
        let (primary, replica) = RedisServer::pair_tls(&pki);
        (pki, primary, replica)
    })
    .await
}

/// [`tls_pair`] and a service of `role` started with `extra` flags (the CA
/// flag, if any, is the caller's).
async fn spawn_tls_app(role: Role, extra: &[&str]) -> (TestApp, TestPki) {
    let (pki, primary, replica) = tls_pair().await;
    let addr = spawn_service(role, &primary, &[&replica], extra).await;
    (TestApp { addr, client: client(), primary, replica }, pki)
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_increments_over_tls_are_exact() {
    let (pki, primary, replica) = tls_pair().await;
    primary.cli(&["SET", "counter", "41"]);
    replica.wait_for_value("counter", "41");
    let tls = ["--redis-tls-ca", pki.ca_arg(), "--wait-timeout-ms", "2000"];
    let web = spawn_service(Role::Web, &primary, &[&replica], &tls).await;
    let inc = spawn_service(Role::WebInc, &primary, &[&replica], &tls).await;
    let http = client();

    let read = http.get(format!("{web}/")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap().trim(), "41", "read over TLS");

    for expected in 42..=61 {
        let answer = http.post(format!("{inc}/inc")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap().trim().parse::<i64>().unwrap(), expected);
    }
    assert_eq!(primary.count("counter"), 61, "every acknowledged increment counted once");
    replica.wait_for_value("counter", "61");
    let read = http.get(format!("{web}/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(read.trim(), "61", "the replica, read over TLS, has them all");
    let ready = http.get(format!("{inc}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the write side is ready over TLS");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_the_ca_did_not_sign_is_refused_and_nothing_is_counted() {
    let other = blocking(TestPki::new).await;
    let flags = ["--redis-tls-ca", other.ca_arg(), "--store-timeout-ms", "500", "--wait-timeout-ms", "500"];
    let (web, _pki) = spawn_tls_app(Role::All, &flags).await;
    web.primary.cli(&["SET", "counter", "7"]);

    for path in ["/", "/inc"] {
        let refused = if path == "/" { web.get(path).await } else { web.post(path).await };
        assert_eq!(refused.status(), 503, "{path}: an unverified server is no store");
        assert!(refused.headers().contains_key("retry-after"), "{path}");
        let body = refused.text().await.unwrap();
        assert!(!body.contains('7'), "{path}: no count leaks: {body}");
    }
    assert_eq!(web.primary.count("counter"), 7, "the increment never reached the server");
    assert_eq!(web.get("/health/ready").await.status(), 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_another_ip_is_refused_even_from_the_right_ca() {
    let (pki, primary, replica) = blocking(|| {
        // Signed by the trusted CA, but for 192.0.2.1 only: not the address connected to.
        let pki = TestPki::for_names(&["192.0.2.1"]);
        let (primary, replica) = RedisServer::pair_tls(&pki);
        (pki, primary, replica)
    })
    .await;
    primary.cli(&["SET", "counter", "7"]);
    let flags = ["--redis-tls-ca", pki.ca_arg(), "--store-timeout-ms", "500", "--wait-timeout-ms", "500"];
    let addr = spawn_service(Role::All, &primary, &[&replica], &flags).await;
    let web = TestApp { addr, client: client(), primary, replica };

    assert_eq!(web.get("/").await.status(), 503);
    assert_eq!(web.post("/inc").await.status(), 503);
    assert_eq!(web.primary.count("counter"), 7, "nothing counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_tcp_to_a_tls_port_gets_no_data() {
    let (web, _pki) = spawn_tls_app(Role::All, &["--store-timeout-ms", "500", "--wait-timeout-ms", "500"]).await;
    web.primary.cli(&["SET", "counter", "7"]);

    let read = web.get("/").await;
    assert_eq!(read.status(), 503);
    assert!(read.headers().contains_key("retry-after"));
    let inc = web.post("/inc").await;
    assert_eq!(inc.status(), 503);
    assert!(inc.headers().contains_key("retry-after"));
    assert_eq!(web.primary.count("counter"), 7, "nothing counted");
}
