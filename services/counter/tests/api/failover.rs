//! Increments through a failover, against real Redis and a real Consul dev
//! agent: while no primary is known, or the one known has just been demoted,
//! an increment is held (up to `--primary-wait-ms`) instead of refused.

use std::time::{Duration, Instant};

use counter::Role;
use testkit::{ConsulAgent, RedisServer};

use crate::helpers::{blocking, client};

/// A `web-inc` discovering Redis through `consul`, served in this process; its `/inc` URL.
async fn spawn_inc_on(consul: &ConsulAgent, extra: &[&str]) -> String {
    let url = consul.url();
    let mut args = vec!["web-inc", "--listen", "127.0.0.1:0", "--consul", &url];
    args.extend_from_slice(extra);
    let config = counter::Config::from_iter_or_exit(Role::WebInc, args);
    let app = counter::Application::build(&config).await.unwrap();
    let url = format!("http://{}/inc", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    url
}

/// Sends one increment to `url` and checks it is still unanswered 800 ms
/// later (`what` names what it should be held through); its answer comes
/// from the returned task.
async fn post_held(url: String, what: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let pending = tokio::spawn(async move { client().post(&url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!pending.is_finished(), "the increment was answered instead of held: {what}");
    pending
}

/// Polls `url` until it answers `status`; panics naming `what` after 5 s.
async fn wait_for_status(url: &str, status: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while client().get(url).send().await.unwrap().status() != status {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on: a primary that has just died.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A web-inc whose only named primary is dead and whose breaker on it is open
/// (for `cooldown_ms`), and a live primary-replica pair not yet named:
/// (consul, the live primary, its replica, the `/inc` URL).
async fn breaker_open_on_a_dead_primary(cooldown_ms: &str) -> (ConsulAgent, RedisServer, RedisServer, String) {
    let (consul, new, replica, dead) = blocking(|| {
        let (new, replica) = RedisServer::pair();
        (ConsulAgent::dev(), new, replica, dead_port())
    })
    .await;
    consul.register("redis-primary", "dead", dead);
    let url = spawn_inc_on(&consul, &["--breaker-failures", "3", "--breaker-cooldown-ms", cooldown_ms]).await;
    // The dead primary refuses connections: nothing is sent, so the first
    // increment is held and tried again every 100 ms (its breaker opens
    // after three), and refused once the primary wait (3 s) is up.
    assert_eq!(client().post(&url).send().await.unwrap().status(), 503);
    (consul, new, replica, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_sent_while_no_primary_is_known_waits_for_the_next_one() {
    let (consul, primary, replica) = blocking(|| {
        let (primary, replica) = RedisServer::pair();
        (ConsulAgent::dev(), primary, replica)
    })
    .await;
    let url = spawn_inc_on(&consul, &[]).await;

    // No redis-primary registered: the failover's gap.
    let sent = Instant::now();
    let pending = post_held(url, "no primary known yet").await;

    consul.register("redis-primary", "primary", primary.port);
    let answer = pending.await.unwrap();
    assert_eq!(answer.status(), 200, "held through the gap, then counted");
    assert_eq!(answer.text().await.unwrap().trim(), "1");
    assert!(sent.elapsed() >= Duration::from_millis(800));
    assert_eq!(primary.count("counter"), 1);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_primary_for_longer_than_the_wait_the_increment_gets_503_and_retry_after() {
    let consul = blocking(ConsulAgent::dev).await;
    let url = spawn_inc_on(&consul, &["--primary-wait-ms", "300"]).await;

    let sent = Instant::now();
    let answer = client().post(&url).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    let waited = sent.elapsed();
    assert!(waited >= Duration::from_millis(300), "refused after {waited:?}, before the wait was up");
    assert!(waited < Duration::from_secs(3), "refused only after {waited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_refused_by_a_demoted_primary_is_counted_once_on_the_new_one() {
    // `old` replicates from `new`: it answers READONLY, as a primary does the
    // moment Sentinel demotes it, while Consul still names it.
    let (consul, new, old) = blocking(|| {
        let new = RedisServer::primary();
        let old = RedisServer::replica_of(&new);
        (ConsulAgent::dev(), new, old)
    })
    .await;
    consul.register("redis-primary", "old", old.port);
    let url = spawn_inc_on(&consul, &[]).await;
    // Discovery has named `old` once the service answers readiness for writes.
    let ready = format!("{}/health/ready", url.trim_end_matches("/inc"));
    wait_for_status(&ready, 200, "web-inc never saw the first primary").await;

    let pending = post_held(url, "the demoted primary's READONLY").await;

    consul.register("redis-primary", "new", new.port);
    consul.deregister("old");
    let answer = pending.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap().trim(), "1");
    assert_eq!(new.count("counter"), 1, "counted once, on the new primary");
}

#[tokio::test(flavor = "multi_thread")]
async fn web_inc_stays_ready_through_a_failover_while_it_reaches_a_replica() {
    let (consul, primary, replica) = blocking(|| {
        let (primary, replica) = RedisServer::pair();
        (ConsulAgent::dev(), primary, replica)
    })
    .await;
    consul.register("redis-primary", "primary", primary.port);
    consul.register("redis-replica", "replica", replica.port);
    let url = spawn_inc_on(&consul, &[]).await;
    let ready = format!("{}/health/ready", url.trim_end_matches("/inc"));
    wait_for_status(&ready, 200, "web-inc never became ready").await;

    // The primary's entry is gone (its check failed): no primary known.
    consul.deregister("primary");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = client().get(&ready).send().await.unwrap().status();
    assert_eq!(status, 200, "unready in a failover while a replica answers");

    // No Redis node answers at all: not ready.
    blocking(move || drop((primary, replica))).await;
    wait_for_status(&ready, 503, "still ready with no Redis node answering").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_meeting_an_open_breaker_on_a_dead_primary_is_held_for_the_new_one() {
    let (consul, new, replica, url) = breaker_open_on_a_dead_primary("10000").await;
    let pending = post_held(url, "the dead primary's open breaker").await;
    consul.register("redis-primary", "new", new.port);
    consul.deregister("dead");
    let answer = pending.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(new.count("counter"), 1);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_held_by_an_open_breaker_waits_on_when_no_primary_is_named_at_its_trial() {
    let (consul, new, replica, url) = breaker_open_on_a_dead_primary("300").await;
    // Held by the open breaker; then the dead primary's entry goes (its check
    // failed) and the breaker's trial, 300 ms on, finds no primary named:
    // the increment must wait on for the new one, not be refused then.
    let pending = tokio::spawn({
        let url = url.clone();
        async move { client().post(&url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    consul.deregister("dead");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!pending.is_finished(), "refused at the breaker's trial instead of held");
    consul.register("redis-primary", "new", new.port);
    let answer = pending.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(new.count("counter"), 1);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_several_primaries_named_the_increment_goes_to_the_one_that_has_a_replica() {
    // After a partition Consul may name the cut-off old primary (here: a
    // port nothing answers on) and a restarted one without replicas next to
    // the real primary, until its agents catch up.
    let (consul, primary, replica, lone, dead_port) = blocking(|| {
        let (primary, replica) = RedisServer::pair();
        let lone = RedisServer::primary();
        (ConsulAgent::dev(), primary, replica, lone, dead_port())
    })
    .await;
    consul.register("redis-primary", "cut-off", dead_port);
    consul.register("redis-primary", "lone", lone.port);
    consul.register("redis-primary", "primary", primary.port);
    let url = spawn_inc_on(&consul, &[]).await;

    let answer = client().post(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap().trim(), "1");
    assert_eq!(primary.count("counter"), 1);
    assert_eq!(lone.count("counter"), 0, "nothing written to the master without a replica");
    drop(replica);
}

#[tokio::test]
async fn an_increment_goes_to_the_promoted_replica_while_consul_still_names_the_dead_primary() {
    // A partition that cuts off the Consul leader with the primary: Sentinel
    // promotes a replica within a second or two, but every Consul agent may
    // hold its check updates for tens of seconds, so the catalog still names
    // the old primary (here: a port nothing answers on) and lists the new
    // one as a replica.
    let (consul, primary, replica, dead_port) = blocking(|| {
        let (primary, replica) = RedisServer::pair();
        (ConsulAgent::dev(), primary, replica, dead_port())
    })
    .await;
    consul.register("redis-primary", "cut-off", dead_port);
    consul.register("redis-replica", "promoted", primary.port);
    consul.register("redis-replica", "replica", replica.port);
    let url = spawn_inc_on(&consul, &[]).await;

    for expected in 1..=3 {
        let answer = client().post(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200, "increment {expected}");
        assert_eq!(answer.text().await.unwrap().trim(), expected.to_string());
    }
    assert_eq!(primary.count("counter"), 3);
    assert_eq!(replica.count("counter"), 3, "acknowledged only once the replica had it");
}

#[tokio::test]
async fn an_increment_refused_with_noreplicas_by_an_old_primary_goes_to_the_one_that_has_a_replica() {
    // After a partition heals, the old primary is back as a master without
    // replicas until Sentinel converts it; its write guard answers
    // NOREPLICAS (nothing applied) while a stale catalog still names it.
    let (consul, old, primary, replica) = blocking(|| {
        let old = RedisServer::primary();
        old.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
        let (primary, replica) = RedisServer::pair();
        (ConsulAgent::dev(), old, primary, replica)
    })
    .await;
    consul.register("redis-primary", "old", old.port);
    consul.register("redis-replica", "promoted", primary.port);
    let url = spawn_inc_on(&consul, &[]).await;

    let answer = client().post(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap().trim(), "1");
    assert_eq!(primary.count("counter"), 1);
    assert_eq!(old.count("counter"), 0, "nothing applied on the old primary");
    drop(replica);
}
