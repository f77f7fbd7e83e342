//! The Redis adapter's promises: replica reads with fallback, bounded failures,
//! and no acknowledgement before a replica has the increment.

use std::time::{Duration, Instant};

use counter::Role;
use testkit::RedisServer;

use crate::helpers::{blocking, client, spawn_app_with, spawn_service};

#[tokio::test(flavor = "multi_thread")]
async fn reads_come_from_the_replica_then_fall_back_to_the_primary_then_fail_fast() {
    let mut app = spawn_app_with(Role::Web, &["--store-timeout-ms", "500"]).await;
    // Detach the replica and give it its own value, so an answer says where it came from.
    assert_eq!(app.replica.cli(&["REPLICAOF", "NO", "ONE"]), "OK");
    app.replica.cli(&["SET", "counter", "700"]);
    app.primary.cli(&["SET", "counter", "5"]);

    assert_eq!(app.count_at("/").await, 700, "read from the replica");

    app.replica.kill();
    assert_eq!(app.count_at("/").await, 5, "fell back to the primary");

    app.primary.kill();
    let started = Instant::now();
    let down = app.get("/").await;
    let took = started.elapsed();
    assert_eq!(down.status(), 503);
    assert!(down.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(down.json::<serde_json::Value>().await.unwrap()["code"], "store_unavailable");
    assert!(took < Duration::from_secs(2), "answered in {took:?}, not a hang");
    assert_eq!(app.get("/health/ready").await.status(), 503, "not ready without a store");
    assert_eq!(app.get("/health/live").await.status(), 200, "but alive");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_replica_costs_a_bounded_wait_and_reads_still_succeed() {
    let app = spawn_app_with(Role::Web, &["--store-timeout-ms", "600"]).await;
    app.primary.cli(&["SET", "counter", "9"]);
    app.replica.wait_for_value("counter", "9");

    app.replica.pause();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(app.count_at("/").await, 9, "the primary answers when the replica hangs");
    }
    let took = started.elapsed();
    app.replica.resume();

    assert!(took < Duration::from_secs(3), "five reads took {took:?}: the breaker should skip the hung replica");
}

/// A primary, replicas a and b, and web-inc (primary wait 5 s) that has
/// counted 1 and seen both replicas in sync; the URL of its /inc.
async fn web_inc_with_two_replicas_in_sync() -> (RedisServer, RedisServer, RedisServer, String) {
    let (primary, a, b) = blocking(|| {
        let (primary, a) = RedisServer::pair();
        let b = RedisServer::replica_of(&primary);
        (primary, a, b)
    })
    .await;
    let base = spawn_service(Role::WebInc, &primary, &[&a, &b], &["--primary-wait-ms", "5000"]).await;
    let inc = format!("{base}/inc");
    assert_eq!(client().post(&inc).send().await.unwrap().status(), 200);
    b.wait_for_value("counter", "1");
    // Long enough for web-inc to see both replicas in sync (it looks every 250 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    (primary, a, b, inc)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_outwaits_a_replica_that_stopped_acknowledging_instead_of_failing() {
    // A replica cut off by a partition stays connected, and in sync for the
    // primary's own reckoning, for up to 3 s; web-inc stops counting it once
    // it has acknowledged nothing for a second. The other replica confirms
    // at once; the increment is answered once the silent one no longer
    // counts, within the primary wait, not refused.
    let (_primary, a, b, inc) = web_inc_with_two_replicas_in_sync().await;

    b.pause();
    let started = Instant::now();
    let answer = client().post(&inc).send().await.unwrap();
    let waited = started.elapsed();
    b.resume();
    assert_eq!(answer.status(), 200, "refused after {waited:?}");
    assert_eq!(answer.text().await.unwrap().trim(), "2");
    a.wait_for_value("counter", "2");
    // It waited for the silent replica (at least one WAIT timed out), and no
    // longer than it takes to tell it silent: a second behind, not the three
    // Redis's whole-second lag would take.
    assert!(waited >= Duration::from_millis(300), "answered after {waited:?}: was the paused replica counted?");
    assert!(waited < Duration::from_millis(2000), "answered after {waited:?}: waited for the silent replica too long");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_acknowledges_late_still_confirms_every_increment() {
    // Slow but healthy: it stalls for 300 ms at a time (well under the
    // second that tells a silent replica), and answers in between. Every
    // increment sent while it stalls is answered only after it answers
    // again: it stays in the set that must confirm.
    let (_primary, _a, b, inc) = web_inc_with_two_replicas_in_sync().await;

    for round in 0..4 {
        b.pause();
        let paused = Instant::now();
        let request = client().post(&inc).send();
        let sent = tokio::spawn(async move { (request.await, paused.elapsed()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Read before the resume: its acknowledgement may come back before
        // resume() itself returns (a clock read after it once lost by 0.1 ms).
        let resuming = paused.elapsed();
        b.resume();
        let (answer, answered) = sent.await.unwrap();
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200, "round {round}");
        assert!(
            answered >= resuming,
            "round {round}: answered {answered:?} after the stall began, before the slow \
                 replica was let go ({resuming:?}): it was dropped from the set that must confirm"
        );
        // Caught up again before the next stall, as a slow replica is
        // between two of them.
        b.wait_for_value("counter", &(round + 2).to_string());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_increment_is_acknowledged_only_after_a_replica_has_it() {
    let app = spawn_app_with(Role::WebInc, &["--wait-timeout-ms", "1000"]).await;
    assert_eq!(app.count_at("/inc").await, 1);

    app.replica.pause();
    for _ in 0..3 {
        let refused = app.post("/inc").await;
        assert_eq!(refused.status(), 503, "never a 200 while no replica can confirm");
        assert_eq!(refused.headers()["retry-after"], "1");
        assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["code"], "not_replicated");
    }
    app.replica.resume();
    // The refused increments were applied on the primary (4) but never acknowledged.
    app.replica.wait_for_value("counter", "4");

    // After recovery the count is consistent on both nodes.
    let after = app.count_at("/inc").await;
    assert_eq!(after, 5);
    assert_eq!(app.primary.count("counter"), 5);
    app.replica.wait_for_value("counter", "5");
}

#[tokio::test(flavor = "multi_thread")]
async fn increments_get_503_when_the_primary_is_gone_for_longer_than_the_primary_wait() {
    let mut app = spawn_app_with(Role::WebInc, &["--primary-wait-ms", "300"]).await;
    app.primary.kill();

    let started = Instant::now();
    let refused = app.post("/inc").await;

    // Refused connections sent nothing: the increment is held for a primary
    // (a failover's gap), then refused with a hint, not left hanging.
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "refused after {waited:?}, before the wait was up");
    assert!(waited < Duration::from_secs(2), "refused only after {waited:?}");
    // No instance could write now: web-inc stays in routing while it reaches
    // a replica (docs/services.md, "Writes during a failover"), and leaves it
    // when no Redis node answers at all.
    assert_eq!(app.get("/health/ready").await.status(), 200, "ready while a replica answers");
    app.replica.kill();
    assert_eq!(app.get("/health/ready").await.status(), 503, "web-inc is not ready without any Redis node");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_integer_counter_is_a_500_in_json_not_a_panic() {
    let app = spawn_app_with(Role::All, &[]).await;
    app.primary.cli(&["SET", "counter", "not-a-number"]);
    app.replica.wait_for_value("counter", "not-a-number");

    let read = app.get("/").await;
    let inc = app.post("/inc").await;

    assert_eq!(read.status(), 500);
    assert_eq!(read.json::<serde_json::Value>().await.unwrap()["code"], "internal");
    assert_eq!(inc.status(), 500);
    assert_eq!(app.get("/health/live").await.status(), 200, "still up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_survives_the_node_closing_every_client_connection() {
    // The one endpoint there is, as for a web instance whose last replica is
    // being reconfigured by Sentinel, which closes every client connection
    // of the node (CLIENT KILL TYPE normal) as it does so.
    let primary = blocking(RedisServer::primary).await;
    let addr = spawn_service(Role::Web, &primary, &[], &["--store-timeout-ms", "2000"]).await;
    let client = client();
    primary.cli(&["SET", "counter", "7"]);
    let read = || async { client.get(format!("{addr}/")).header("accept", "text/plain").send().await.unwrap() };
    assert_eq!(read().await.text().await.unwrap().trim(), "7", "the shared connection is open");

    let killed = primary.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert_ne!(killed, "0", "our connection was there to be closed");
    for _ in 0..3 {
        let response = read().await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}
