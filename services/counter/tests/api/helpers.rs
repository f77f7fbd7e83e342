//! Spawning an application against real Redis, and a client for it.

use std::time::Duration;

use counter::{Application, Config, Role};
use testkit::RedisServer;

/// A running service plus the Redis pair behind it.
pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub primary: RedisServer,
    pub replica: RedisServer,
}

/// Redis primary + replica and one process serving both routes, with a
/// latency budget for a loaded machine: the tests that use it are about
/// counting. With the production `WAIT` timeout (300 ms) a replica starved of
/// CPU (the whole suite in parallel beside other builds) confirms too late,
/// and the service rightly answers 503 `not_replicated`: that, not a bug in
/// the count, was the 503 these tests saw under load. Tests of the timeouts
/// themselves pass their own.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Role::All, &["--wait-timeout-ms", "5000", "--store-timeout-ms", "2000"]).await
}

pub async fn spawn_app_with(role: Role, extra: &[&str]) -> TestApp {
    let (primary, replica) = blocking(RedisServer::pair).await;
    let addr = spawn_service(role, &primary, &[&replica], extra).await;
    TestApp { addr, client: client(), primary, replica }
}

/// Starts a service in this process on a free port; returns its base URL.
pub async fn spawn_service(role: Role, primary: &RedisServer, replicas: &[&RedisServer], extra: &[&str]) -> String {
    let replicas: Vec<String> = replicas.iter().map(|r| r.addr()).collect();
    let mut args = vec!["counter".to_string(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--redis-primary".into(), primary.addr()]);
    if !replicas.is_empty() {
        args.extend(["--redis-replicas".into(), replicas.join(",")]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let config = Config::from_iter_or_exit(role, args);
    let app = Application::build(&config).await.expect("building the application");
    let addr = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    addr
}

pub fn client() -> reqwest::Client {
    // reqwest is built with rustls and no crypto provider of its own.
    counter::tls::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.addr)).send().await.expect("request failed")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.addr)).send().await.expect("request failed")
    }

    /// The body of a successful text answer, as a number.
    pub async fn count_at(&self, path: &str) -> i64 {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body.trim().parse().expect("a decimal count")
    }
}

/// Runs blocking harness work (redis-cli, signals) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
