//! Discovery through a real Consul dev agent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use counter::{Background, Discovery, Role, metrics::Metrics};
use testkit::{ConsulAgent, RedisServer};

use crate::helpers::{blocking, client};

#[tokio::test(flavor = "multi_thread")]
async fn discovery_follows_a_change_of_redis_primary_within_two_seconds() {
    let consul = blocking(ConsulAgent::dev).await;
    consul.register("redis-primary", "primary-a", 7001);
    let background = Background::new();
    let discovery =
        Discovery::consul(consul.url().parse().unwrap(), None, &Default::default(), Metrics::new(), &background)
            .unwrap();
    let mut endpoints = discovery.subscribe();
    let a: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    tokio::time::timeout(Duration::from_secs(5), endpoints.wait_for(|e| e.primary == Some(a)))
        .await
        .expect("the first primary is discovered")
        .unwrap();

    let switched = Instant::now();
    consul.register("redis-primary", "primary-b", 7002);
    consul.deregister("primary-a");
    tokio::time::timeout(Duration::from_secs(2), endpoints.wait_for(|e| e.primary == Some(b)))
        .await
        .expect("the new primary is seen within 2 s")
        .unwrap();

    assert!(switched.elapsed() < Duration::from_secs(2));
}

/// A `web` discovering Redis through `consul`, served in this process; its `/` URL.
async fn spawn_web_on(consul: &ConsulAgent) -> String {
    let config = counter::Config::from_iter_or_exit(
        Role::Web,
        ["web", "--listen", "127.0.0.1:0", "--consul", &consul.url(), "--store-timeout-ms", "500"],
    );
    let app = counter::Application::build(&config).await.unwrap();
    let url = format!("http://{}/", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    url
}

async fn read(url: &str) -> String {
    client().get(url).send().await.unwrap().text().await.unwrap().trim().to_string()
}

/// Polls `url` until it answers `want`; panics naming `what` after `within`.
async fn read_until(url: &str, want: &str, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let got = read(url).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: wanted {want}, still reading {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_reads_from_whichever_replica_consul_names() {
    let (consul, first, second) = blocking(|| {
        let (first, second) = (RedisServer::primary(), RedisServer::primary());
        first.cli(&["SET", "counter", "11"]);
        second.cli(&["SET", "counter", "22"]);
        (ConsulAgent::dev(), first, second)
    })
    .await;
    consul.register("redis-replica", "replica-1", first.port);
    let url = spawn_web_on(&consul).await;
    read_until(&url, "11", Duration::from_secs(5), "the first replica").await;

    consul.register("redis-replica", "replica-2", second.port);
    consul.deregister("replica-1");

    read_until(&url, "22", Duration::from_secs(2), "the new replica within 2 s").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_a_failover_leaves_no_healthy_node_reads_use_the_last_known_replicas() {
    let (consul, replica, primary) = blocking(|| {
        let (replica, primary) = (RedisServer::primary(), RedisServer::primary());
        replica.cli(&["SET", "counter", "7"]);
        primary.cli(&["SET", "counter", "8"]);
        (ConsulAgent::dev(), replica, primary)
    })
    .await;
    consul.register("redis-replica", "replica", replica.port);
    let url = spawn_web_on(&consul).await;
    read_until(&url, "7", Duration::from_secs(5), "the replica").await;

    // The replica's link is down (its check fails) and no primary passes yet.
    consul.deregister("replica");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        assert_eq!(read(&url).await, "7", "the last known replica still serves reads");
    }

    // A primary is elected: from now on only healthy nodes are read.
    consul.register("redis-primary", "primary", primary.port);
    read_until(&url, "8", Duration::from_secs(5), "the new primary").await;
}
