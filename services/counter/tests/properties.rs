//! Property tests (proptest) of the two places where untrusted bytes come in:
//! HTTP requests, through the real server and routes over an in-memory store,
//! and Consul's health answers, through `discovery::parse_health`.
//!
//! Case counts are proptest's default (256 per property), about a second each.
//! For a longer hunt: `PROPTEST_CASES=20000 cargo test -p counter --test properties`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use counter::discovery::parse_health;
use counter::http::{Limits, Routes, serve};
use counter::metrics::Metrics;
use counter::{Count, CountStore, MemoryStore, Role, Side, StoreError};
use proptest::prelude::*;
use serde_json::{Value, json};

// --- request handling --------------------------------------------------------------

/// The test's handle on the store the server uses: read the count, make it fail.
#[derive(Clone)]
struct Shared(Arc<MemoryStore>);

impl CountStore for Shared {
    async fn get(&self) -> Result<Count, StoreError> {
        self.0.get().await
    }
    async fn increment(&self) -> Result<Count, StoreError> {
        self.0.increment().await
    }
    async fn probe(&self, side: Side) -> Result<(), StoreError> {
        self.0.probe(side).await
    }
}

struct Server {
    addr: SocketAddr,
    store: Shared,
    runtime: tokio::runtime::Runtime,
}

/// One server for every case: the real `serve` with default limits and the real routes.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Shared(Arc::new(MemoryStore::new()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let served_by = counter::http::served_by("counter", addr);
        let routes = Arc::new(Routes { store: store.clone(), role: Role::All, metrics: Metrics::new(), served_by });
        let handler = move |req| {
            let routes = routes.clone();
            async move { routes.handle(req).await }
        };
        runtime.spawn(serve(listener, handler, Limits::default(), None, std::future::pending()));
        Server { addr, store, runtime }
    })
}

impl Server {
    fn count(&self) -> i64 {
        self.runtime.block_on(self.store.get()).expect("the store is up between requests").0
    }
}

fn down() -> StoreError {
    StoreError::unavailable("the test took the store down")
}

/// One generated request, and what the test knows about its shape.
#[derive(Debug, Clone)]
struct Generated {
    method: Vec<u8>,
    target: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    /// Nothing in it a careful server may refuse: one good Host, a usable or
    /// no Accept, no Transfer-Encoding, a small body with its exact length.
    clean: bool,
    /// Something in it an increment must be refused for.
    refused: bool,
}

impl Generated {
    fn bytes(&self) -> Vec<u8> {
        let mut out = [&self.method[..], b" ", &self.target, b" HTTP/1.1\r\n"].concat();
        for (name, value) in &self.headers {
            out.extend_from_slice(&[&name[..], b": ", value, b"\r\n"].concat());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The path part of an origin-form target.
    fn path(&self) -> &[u8] {
        self.target.split(|&b| b == b'?').next().unwrap_or_default()
    }

    fn is_inc(&self) -> bool {
        matches!(&self.method[..], b"GET" | b"POST") && self.path() == b"/inc"
    }
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST"]).prop_map(|m| m.as_bytes().to_vec()),
        2 => prop::sample::select(vec!["HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get", "PATCH"])
            .prop_map(|m| m.as_bytes().to_vec()),
        1 => "[A-Za-z!#$%&'*+.^_`|~-]{1,20}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    let base = prop::sample::select(vec!["/", "/inc", "/health/live", "/health/ready", "/metrics", "/x", "/inc/", ""]);
    let suffix = prop_oneof![
        3 => Just(String::new()),
        1 => "[a-zA-Z0-9._~%/-]{0,30}",
        1 => "(%2e|%2f|\\.\\.|/|%00|%c0%ae|%25){1,8}",
    ];
    let query = prop_oneof![3 => Just(String::new()), 1 => "\\?[a-zA-Z0-9=&%._-]{0,20}"];
    // Most requests aim at the routes, so the count-changing ones are common.
    prop_oneof![
        4 => prop::sample::select(vec!["/inc", "/", "/inc?x=1"]).prop_map(|t| t.as_bytes().to_vec()),
        6 => (base, suffix, query).prop_map(|(b, s, q)| format!("{b}{s}{q}").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::sample::select(vec!["*", "http://evil.test/x", "evil.test:443", "//x"]).prop_map(|t| t.as_bytes().to_vec()),
    ]
}

/// What one generated header does to an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Changes nothing a careful server may refuse.
    Clean,
    /// May or may not be refused (arbitrary text or bytes).
    Unknown,
    /// Must get the increment refused: a bad or second Host, nothing
    /// acceptable, chunked framing, a bad Content-Length.
    Refused,
}

fn header() -> impl Strategy<Value = ((Vec<u8>, Vec<u8>), Effect)> {
    use Effect::*;
    let h = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec());
    prop_oneof![
        2 => prop::sample::select(vec!["*/*", "text/plain", "application/json", "text/*", "application/json;q=0.5, text/plain"])
            .prop_map(move |v| (h("Accept", v), Clean)),
        1 => prop::sample::select(vec!["image/png", "*/*;q=0", "text/plain;q=0, application/json;q=0", "image/*, audio/*"])
            .prop_map(move |v| (h("Accept", v), Refused)),
        1 => prop::sample::select(vec![";;;", "text/plain;q=x", "", "*"]).prop_map(move |v| (h("Accept", v), Unknown)),
        1 => "[ -~]{0,40}".prop_map(move |v| (h("Accept", &v), Unknown)),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(|v| ((b"Accept".to_vec(), v), Unknown)),
        // A Host header on top of the one `request` adds is refused for being a second one.
        1 => prop::sample::select(vec!["a b", "user@x", "x:99999", "[::1", "evil.test/x"])
            .prop_map(move |v| (h("Host", v), Refused)),
        1 => Just((h("Transfer-Encoding", "chunked"), Refused)),
        1 => prop::sample::select(vec!["-1", "x", "1, 2", "99999999999999999999"]).prop_map(move |v| (h("Content-Length", v), Refused)),
        2 => ("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,60}").prop_filter_map("a header the test sets itself", |(n, v)| {
            let lower = n.to_ascii_lowercase();
            let reserved = ["host", "accept", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"];
            (!reserved.contains(&lower.as_str())).then(|| ((n.into_bytes(), v.into_bytes()), Clean))
        }),
        1 => prop::collection::vec(any::<u8>(), 0..30).prop_map(|v| ((b"X-Bytes".to_vec(), v), Unknown)),
        1 => "[0-9a-f-]{0,60}".prop_map(move |v| (h("traceparent", &v), Clean)),
        1 => "[ -~]{0,140}".prop_map(move |v| (h("x-request-id", &v), Clean)),
    ]
}

fn request() -> impl Strategy<Value = Generated> {
    let body = prop_oneof![4 => Just(vec![]), 2 => prop::collection::vec(any::<u8>(), 0..1100), 1 => prop::collection::vec(any::<u8>(), 1000..3000)];
    (method(), target(), prop::bool::weighted(0.8), prop::collection::vec(header(), 0..6), body).prop_map(
        |(method, target, with_host, headers, body)| {
            let mut all = Vec::new();
            if with_host {
                all.push((b"Host".to_vec(), b"counter.test".to_vec()));
            }
            // No Host at all, or a body over 1 KiB: refused too.
            let mut worst = if with_host && body.len() <= 1024 { Effect::Clean } else { Effect::Refused };
            // Several Accept headers make one list (`*/*, image/png` is acceptable):
            // no single one of them decides, so none counts as refused alone.
            let accepts = headers.iter().filter(|((name, _), _)| name == b"Accept").count();
            for (h, mut effect) in headers {
                if accepts > 1 && h.0 == b"Accept" && effect == Effect::Refused {
                    effect = Effect::Unknown;
                }
                worst = match (worst, effect) {
                    (Effect::Refused, _) | (_, Effect::Refused) => Effect::Refused,
                    (Effect::Unknown, _) | (_, Effect::Unknown) => Effect::Unknown,
                    _ => Effect::Clean,
                };
                all.push(h);
            }
            Generated {
                method,
                target,
                headers: all,
                body,
                clean: worst == Effect::Clean,
                refused: worst == Effect::Refused,
            }
        },
    )
}

/// Sends the request on a fresh connection; the status of the first answer, or
/// None when the server closed without one.
fn exchange(addr: SocketAddr, request: &[u8]) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may refuse and close before reading everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no answer and no close within 10 s: {e}"),
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3)).and_then(|s| s.parse().ok());
    (status, text)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Any request: 2xx or 4xx (503 with the store down), never a hang or a
    /// crash; the count moves by one exactly for an answered GET|POST /inc, and
    /// a clean one is always answered.
    #[test]
    fn any_request_gets_2xx_or_4xx_and_counts_only_a_well_formed_increment(
        req in request(), store_up in prop::bool::weighted(0.85)
    ) {
        let server = server();
        let before = server.count();
        server.store.0.fail_with(if store_up { None } else { Some(down) });
        let (status, text) = exchange(server.addr, &req.bytes());
        server.store.0.fail_with(None);
        let after = server.count();

        if let Some(status) = status {
            let ok = (200..300).contains(&status) || (400..500).contains(&status) || (status == 503 && !store_up);
            prop_assert!(ok, "status {} for {:?}:\n{}", status, req, text);
            if status == 405 {
                prop_assert!(text.to_ascii_lowercase().contains("\r\nallow: "), "405 without Allow:\n{}", text);
            }
            if status == 503 {
                prop_assert!(text.to_ascii_lowercase().contains("\r\nretry-after: "), "503 without Retry-After");
            }
        }
        let counted = status == Some(200) && req.is_inc();
        prop_assert_eq!(after - before, i64::from(counted), "count moved {} -> {} on {:?} answered {:?}", before, after, req, status);
        if req.refused && req.is_inc() {
            prop_assert!(matches!(status, None | Some(400..=499)), "a malformed increment answered {:?}: {:?}", status, req);
        }
        if req.clean && req.is_inc() {
            let want = if store_up { 200 } else { 503 };
            prop_assert_eq!(status, Some(want), "a well-formed increment was refused: {:?}\n{}", req, text);
        }
        if req.clean && &req.method[..] == b"GET" && req.path() == b"/" {
            prop_assert!(matches!(status, Some(200 | 503 | 406)), "GET / answered {:?}", status);
        }
    }
}

// --- Consul health answers ---------------------------------------------------------

/// What `parse_health` must return for a JSON value: None where Consul's shape
/// is broken (a wrong type, a missing field, a port out of range), else the
/// connectable addresses, sorted and without duplicates. Like serde, it takes a
/// struct as an object (unknown keys ignored) or as an array of exactly its
/// fields in order.
fn model(body: &Value) -> Option<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for entry in body.as_array()? {
        let [node, service] = fields(entry, &["Node", "Service"])?;
        let [node_address] = fields(node?, &["Address"])?;
        let node_address = node_address?.as_str()?;
        let [service_address, port] = fields(service?, &["Address", "Port"])?;
        let service_address = match service_address {
            None => "",
            Some(v) => v.as_str()?,
        };
        let port = u16::try_from(port?.as_u64()?).ok()?;
        let host = if service_address.is_empty() { node_address } else { service_address };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let connectable = match ip {
                IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
                IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
            };
            if port != 0 && connectable {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// A struct's fields by name from an object, or by position from an array of
/// exactly that many; None when the value can be neither.
fn fields<'a, const N: usize>(value: &'a Value, names: &[&str; N]) -> Option<[Option<&'a Value>; N]> {
    match value {
        Value::Object(map) => Some(names.map(|n| map.get(n))),
        Value::Array(items) if items.len() == N => Some(std::array::from_fn(|i| Some(&items[i]))),
        _ => None,
    }
}

fn address() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => any::<[u8; 4]>().prop_map(|o| json!(IpAddr::from(o).to_string())),
        1 => any::<[u8; 16]>().prop_map(|o| json!(IpAddr::from(o).to_string())),
        1 => prop::sample::select(vec!["", "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "redis.service.consul",
            "127.0.0.1:6379", "256.1.1.1", "1.2.3", "::ffff:1.2.3.4", "fe80::1%eth0", " 127.0.0.1", "01.02.03.04"])
            .prop_map(|s| json!(s)),
        1 => ".{0,40}".prop_map(|s| json!(s)),
        1 => json_value(),
    ]
}

fn port() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any::<u16>().prop_map(|p| json!(p)),
        1 => prop::sample::select(vec![json!(0), json!(65536), json!(-1), json!(1e300), json!(6379.5), json!(u64::MAX),
            json!(i64::MIN), json!("6379"), json!(null), json!(true)]),
        1 => json_value(),
    ]
}

/// Any JSON: nesting, wrong types, huge and fractional numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A health entry in Consul's shape, with any part possibly missing or of the wrong type.
fn entry() -> impl Strategy<Value = Value> {
    let maybe = |v: BoxedStrategy<Value>| prop::option::weighted(0.85, v);
    (
        maybe(address().boxed()),
        maybe(address().boxed()),
        maybe(port().boxed()),
        prop::option::weighted(0.95, Just(())),
        prop::option::of(json_value()),
    )
        .prop_map(|(node_addr, svc_addr, port, has_service, extra)| {
            let mut node = serde_json::Map::new();
            if let Some(a) = node_addr {
                node.insert("Address".into(), a);
            }
            node.insert("Node".into(), json!("m1"));
            let mut service = serde_json::Map::new();
            if let Some(a) = svc_addr {
                service.insert("Address".into(), a);
            }
            if let Some(p) = port {
                service.insert("Port".into(), p);
            }
            service.insert("ID".into(), json!("redis"));
            let mut e = serde_json::Map::new();
            e.insert("Node".into(), Value::Object(node));
            if has_service.is_some() {
                e.insert("Service".into(), Value::Object(service));
            }
            e.insert("Checks".into(), extra.unwrap_or_else(|| json!([])));
            Value::Object(e)
        })
}

proptest! {
    /// Arbitrary bytes never panic, and an answer is sorted, distinct and connectable.
    #[test]
    fn parse_health_survives_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(addrs) = parse_health(&body) {
            let value: Value = serde_json::from_slice(&body).expect("parse_health accepted invalid JSON");
            prop_assert_eq!(Some(addrs), model(&value));
        }
    }

    /// Consul-shaped answers with random holes and wrong types: exactly the model's result.
    #[test]
    fn parse_health_returns_exactly_the_connectable_endpoints(
        entries in prop::collection::vec(entry(), 0..8),
        wrap in prop::sample::select(vec![0u8, 0, 0, 0, 1, 2]),
    ) {
        let body = match wrap {
            0 => Value::Array(entries),
            1 => json!({ "entries": entries }),
            _ => Value::Array(vec![Value::Array(entries)]),
        };
        let raw = serde_json::to_vec(&body).unwrap();
        prop_assert_eq!(parse_health(&raw).ok(), model(&body), "{}", String::from_utf8_lossy(&raw));
    }

    /// Any JSON value at all: the same.
    #[test]
    fn parse_health_matches_the_model_on_any_json(body in json_value()) {
        let raw = serde_json::to_vec(&body).unwrap();
        prop_assert_eq!(parse_health(&raw).ok(), model(&body));
    }
}
