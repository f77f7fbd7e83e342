//! Stopping: once `run_until_stopped` returns, nothing of the service is left,
//! neither a task in the runtime nor a connection to Redis.

use std::time::{Duration, Instant};

use counter::{Application, Config, Role};
use testkit::{ConsulAgent, RedisServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{blocking, client};

/// Connections Redis counts now (`CLIENT LIST`; `redis-cli`'s own included).
fn clients(server: &RedisServer) -> usize {
    server.cli(&["CLIENT", "LIST"]).matches("id=").count()
}

/// Polls `check` every 20 ms for up to 3 s; panics naming `what` with `shown()`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool, shown: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: {}", shown());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A service built from `args` and serving: its base URL, the sender that stops
/// it, and the task running `run_until_stopped`.
async fn start(args: &[&str]) -> (String, oneshot::Sender<()>, JoinHandle<()>) {
    let config = Config::from_iter_or_exit(Role::All, args);
    let app = Application::build(&config).await.expect("building the application");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (base, stop, server)
}

/// Stops the service and waits for `run_until_stopped` to return.
async fn stop(stop: oneshot::Sender<()>, server: JoinHandle<()>) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("run_until_stopped returns within the drain and stop bounds")
        .expect("the server task did not panic");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_stop_no_task_is_left_and_no_redis_connection_stays_open() {
    let (primary, replica) = blocking(RedisServer::pair).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let (tasks_before, primary_before, replica_before) =
        (runtime.num_alive_tasks(), clients(&primary), clients(&replica));
    let (p, r) = (primary.addr(), replica.addr());
    let (base, stopper, server) =
        start(&["counter", "--listen", "127.0.0.1:0", "--redis-primary", &p, "--redis-replicas", &r]).await;
    let client = client();
    // Reads, increments and readiness: the lanes, the tracker and both nodes get used.
    for path in ["/inc", "/", "/health/ready", "/inc"] {
        assert_eq!(client.get(format!("{base}{path}")).send().await.unwrap().status(), 200, "GET {path}");
    }
    // While it runs it holds connections and tasks, or this test would prove nothing.
    assert!(clients(&primary) > primary_before, "connected to the primary");
    assert!(clients(&replica) > replica_before, "connected to the replica");
    assert!(runtime.num_alive_tasks() > tasks_before, "tasks running");

    // The client's keep-alive connection is still open: the drain closes it.
    stop(stopper, server).await;
    drop(client);

    let list = |server: &RedisServer| server.cli(&["CLIENT", "LIST"]);
    let alive = || format!("{} alive, {tasks_before} before", runtime.num_alive_tasks());
    eventually("every task ended", || runtime.num_alive_tasks() == tasks_before, alive).await;
    eventually("no connection to the primary", || clients(&primary) == primary_before, || list(&primary)).await;
    eventually("no connection to the replica", || clients(&replica) == replica_before, || list(&replica)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_stop_the_consul_watches_have_ended_too() {
    let (consul, node) = blocking(|| (ConsulAgent::dev(), RedisServer::primary())).await;
    consul.register("redis-primary", "primary", node.port);
    consul.register("redis-replica", "replica", node.port);
    let runtime = tokio::runtime::Handle::current().metrics();
    let (tasks_before, clients_before) = (runtime.num_alive_tasks(), clients(&node));
    let url = consul.url();

    let (base, stopper, server) = start(&["counter", "--listen", "127.0.0.1:0", "--consul", &url]).await;
    let client = client();
    // The endpoints arrive with Consul's first answer: wait for a read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.get(format!("{base}/")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "no read served from Consul's endpoints");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(runtime.num_alive_tasks() > tasks_before, "tasks running");

    stop(stopper, server).await;
    drop(client);

    eventually(
        "every task ended, the two watches included",
        || runtime.num_alive_tasks() == tasks_before,
        || format!("{} alive, {tasks_before} before", runtime.num_alive_tasks()),
    )
    .await;
    eventually("no connection to redis", || clients(&node) == clients_before, || node.cli(&["CLIENT", "LIST"])).await;
}
