//! The services' own HTTPS (`--tls-cert`, `--tls-key`, `--tls-client-ca`), the
//! gateway's hop in a cluster: plain HTTP is refused, the gateway's client
//! certificate of the trusted CA gets every route, another certificate of
//! that CA (the scraper's) gets `/metrics` and `/health/*` only, no
//! certificate gets `/health/*` only (the local Consul agent's check), and a
//! certificate of another CA fails the handshake.

use std::path::Path;
use std::time::Duration;

use counter::Role;
use testkit::{RedisServer, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{blocking, spawn_service};

/// A service of both routes serving HTTPS with `server`'s certificate and
/// believing client certificates of `server`'s CA; its https:// base URL.
async fn spawn_https(server: &TestPki) -> (String, RedisServer, RedisServer) {
    let (primary, replica) = blocking(RedisServer::pair).await;
    let cert = server.server_cert().to_str().unwrap();
    let key = server.server_key().to_str().unwrap();
    let flags = ["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", server.ca_arg(), "--wait-timeout-ms", "5000"];
    let addr = spawn_service(Role::All, &primary, &[&replica], &flags).await;
    (addr.replacen("http://", "https://", 1), primary, replica)
}

/// A client trusting `server`'s CA, presenting the client certificate and
/// key `identity` names when given.
fn https_client(server: &TestPki, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    counter::tls::install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(server.ca_cert()).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10)).add_root_certificate(ca);
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// The gateway's client certificate of `pki`.
fn gateway(pki: &TestPki) -> Option<(&Path, &Path)> {
    Some((pki.client_cert(), pki.client_key()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_certificate_gets_every_route() {
    let pki = blocking(TestPki::new).await;
    let (url, _primary, _replica) = spawn_https(&pki).await;
    let gateway = https_client(&pki, gateway(&pki));
    let before: i64 =
        gateway.get(format!("{url}/")).send().await.unwrap().text().await.unwrap().trim().parse().unwrap();
    let inc = gateway.post(format!("{url}/inc")).send().await.unwrap();
    assert_eq!(inc.status(), 200);
    let after: i64 = gateway.get(format!("{url}/")).send().await.unwrap().text().await.unwrap().trim().parse().unwrap();
    assert_eq!(after, before + 1);
    assert_eq!(gateway.get(format!("{url}/metrics")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_client_certificate_only_health_answers() {
    let pki = blocking(TestPki::new).await;
    let (url, primary, _replica) = spawn_https(&pki).await;
    let anonymous = https_client(&pki, None);
    assert_answers(&anonymous, &url, &["/health/live", "/health/ready"]).await;
    let routes = [("GET", "/"), ("POST", "/inc"), ("GET", "/inc"), ("GET", "/metrics")];
    assert_refused(&anonymous, &url, &routes, "client_certificate_required", primary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrapers_certificate_reads_metrics_and_health_alone() {
    let pki = blocking(TestPki::new).await;
    let (url, primary, _replica) = spawn_https(&pki).await;
    let scraper = https_client(&pki, Some((pki.scraper_cert(), pki.scraper_key())));
    assert_answers(&scraper, &url, &["/metrics", "/health/live", "/health/ready"]).await;
    let routes = [("GET", "/"), ("POST", "/inc"), ("GET", "/inc")];
    assert_refused(&scraper, &url, &routes, "gateway_certificate_required", primary).await;
}

/// Each of `paths` answers `client`'s GET with 200.
async fn assert_answers(client: &reqwest::Client, url: &str, paths: &[&str]) {
    for path in paths {
        assert_eq!(client.get(format!("{url}{path}")).send().await.unwrap().status(), 200, "{path}");
    }
}

/// Each of `routes` answers `client` 403 with the error `code`, and none of
/// them counted an increment on `primary`.
async fn assert_refused(
    client: &reqwest::Client,
    url: &str,
    routes: &[(&str, &str)],
    code: &str,
    primary: RedisServer,
) {
    for (method, path) in routes {
        let response = client.request(method.parse().unwrap(), format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert!(response.text().await.unwrap().contains(code), "{method} {path}");
    }
    let count = blocking(move || primary.cli(&["GET", "counter"])).await;
    assert_eq!(count.trim(), "(nil)", "a refused /inc counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_of_another_ca_fails_the_handshake() {
    let pki = blocking(TestPki::new).await;
    let stranger = blocking(TestPki::new).await;
    let (url, _primary, _replica) = spawn_https(&pki).await;
    let err = https_client(&pki, gateway(&stranger)).get(format!("{url}/")).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_gets_no_answer() {
    let pki = blocking(TestPki::new).await;
    let (url, _primary, _replica) = spawn_https(&pki).await;
    let addr = url.trim_start_matches("https://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP answered: {:?}", String::from_utf8_lossy(&answer));
}
