//! Where Redis is: fixed addresses, or the passing instances of `redis-primary` and
//! `redis-replica` in Consul, followed with blocking queries so a failover reaches
//! the store within a second or two. When Consul cannot be reached the last known
//! endpoints stay in force and the watch retries with backoff.
//!
//! How the service connects to Consul lives here too: its ACL token
//! ([`ConsulToken`]) and how an `https://` address is verified ([`ConsulTls`]),
//! both read and checked once at start.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use http::HeaderValue;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::background::Background;
use crate::metrics::Metrics;
use crate::tls::{CaBundle, ClientIdentity};

/// Consul service names; the role checks behind them live in `consul/`.
pub const PRIMARY_SERVICE: &str = "redis-primary";
pub const REPLICA_SERVICE: &str = "redis-replica";

/// The Redis nodes the store may use right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// None while no single healthy primary is known: writes are then held,
    /// or sent to the node Consul names (here or in `contested` or
    /// `replicas`) that proves to be the primary.
    pub primary: Option<SocketAddr>,
    pub replicas: Vec<SocketAddr>,
    /// Every healthy `redis-primary` when more than one is (else empty). Seen
    /// after a partition: the cut-off old primary's entry stays healthy in
    /// the catalog until Consul's agents catch up, which took 20 s when one
    /// agent's sync was stuck on an RPC to the cut-off Consul leader.
    pub contested: Vec<SocketAddr>,
}

/// A source of [`Endpoints`] that the store follows. It holds the sender, so
/// the channel stays open as long as the store that owns it.
pub struct Discovery {
    tx: watch::Sender<Endpoints>,
}

impl Discovery {
    /// Fixed addresses, for runs without Consul.
    pub fn fixed(endpoints: Endpoints) -> Discovery {
        Discovery { tx: watch::Sender::new(endpoints) }
    }

    /// Follows both services in Consul from tasks of `background`, which end when
    /// it stops. `token` is the Consul ACL token, sent on every query; `tls` says
    /// how an https:// address is verified. Fails only if the TLS client cannot be built.
    pub fn consul(
        base: reqwest::Url,
        token: Option<ConsulToken>,
        tls: &ConsulTls,
        metrics: Metrics,
        background: &Background,
    ) -> anyhow::Result<Discovery> {
        let tx = watch::Sender::new(Endpoints::default());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            headers.insert("x-consul-token", token.header_value().clone());
        }
        let client = consul_client(headers, tls)?;
        for service in [PRIMARY_SERVICE, REPLICA_SERVICE] {
            let watcher = Watcher {
                client: client.clone(),
                base: base.clone(),
                service,
                tx: tx.clone(),
                metrics: metrics.clone(),
            };
            background.spawn(watcher.run(background.shutdown()));
        }
        Ok(Discovery { tx })
    }

    pub fn subscribe(&self) -> watch::Receiver<Endpoints> {
        self.tx.subscribe()
    }
}

/// The HTTP(S) client for Consul: one for the life of the process, its
/// connections kept alive between blocking queries (one TLS handshake each).
fn consul_client(headers: reqwest::header::HeaderMap, tls: &ConsulTls) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        // A blocking query holds the request for up to WAIT; add room for Consul's jitter.
        .timeout(BLOCKING_WAIT + Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2));
    if let Some(ca) = &tls.ca {
        let roots = reqwest::Certificate::from_pem_bundle(ca.pem())
            .with_context(|| format!("--consul-cacert (CONSUL_CACERT): {}", ca.path().display()))?;
        // Only this CA: not the system's roots as well.
        builder = builder.tls_certs_only(roots);
    }
    if let Some(identity) = &tls.identity {
        let identity = reqwest::Identity::from_pem(identity.pem())
            .context("--consul-client-cert / --consul-client-key (CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY)")?;
        builder = builder.identity(identity);
    }
    builder.build().context("building the Consul HTTP client")
}

/// A Consul ACL token, checked to be a valid header value and marked sensitive,
/// so neither `Debug` nor the HTTP client shows it.
#[derive(Clone, Debug)]
pub struct ConsulToken(HeaderValue);

impl ConsulToken {
    pub fn parse(token: &str) -> Result<ConsulToken, String> {
        let mut value = HeaderValue::from_str(token).map_err(|_| "not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok(ConsulToken(value))
    }

    /// The token from CONSUL_HTTP_TOKEN or the file CONSUL_HTTP_TOKEN_FILE names
    /// (as the Consul CLI reads them); `None` when Consul runs without ACLs.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<ConsulToken>, String> {
        let (token, origin) = match env("CONSUL_HTTP_TOKEN").filter(|t| !t.trim().is_empty()) {
            Some(token) => (token, "CONSUL_HTTP_TOKEN".to_string()),
            None => {
                let Some(path) = env("CONSUL_HTTP_TOKEN_FILE").filter(|p| !p.is_empty()) else {
                    return Ok(None);
                };
                let token = std::fs::read_to_string(&path)
                    .map_err(|e| format!("CONSUL_HTTP_TOKEN_FILE: cannot read {path}: {e}"))?;
                if token.trim().is_empty() {
                    return Err(format!("CONSUL_HTTP_TOKEN_FILE: {path} is empty"));
                }
                (token, format!("CONSUL_HTTP_TOKEN_FILE: {path}"))
            }
        };
        ConsulToken::parse(token.trim()).map(Some).map_err(|e| format!("{origin}: {e}"))
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// How an `https://` Consul address is verified, and who the service is to it.
#[derive(Clone, Debug, Default)]
pub struct ConsulTls {
    /// `CONSUL_CACERT`: the only CA trusted for Consul's certificate; `None`:
    /// the system's roots.
    pub ca: Option<CaBundle>,
    /// `CONSUL_CLIENT_CERT` + `CONSUL_CLIENT_KEY`, for a Consul that verifies
    /// incoming HTTPS clients.
    pub identity: Option<ClientIdentity>,
}

impl ConsulTls {
    /// Reads `--consul-cacert` and the client identity (a certificate needs its
    /// key and the other way round); errors name the flag and its variable.
    pub fn read(
        cacert: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<ConsulTls, String> {
        let ca = match cacert {
            Some(path) => Some(CaBundle::read(path).map_err(|e| format!("--consul-cacert (CONSUL_CACERT): {e}"))?),
            None => None,
        };
        let identity = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity::read(cert, key).map_err(|(which, e)| match which {
                "cert" => format!("--consul-client-cert (CONSUL_CLIENT_CERT): {e}"),
                _ => format!("--consul-client-key (CONSUL_CLIENT_KEY): {e}"),
            })?),
            (None, None) => None,
            (Some(_), None) => {
                return Err("--consul-client-cert (CONSUL_CLIENT_CERT) needs --consul-client-key".into());
            }
            (None, Some(_)) => {
                return Err("--consul-client-key (CONSUL_CLIENT_KEY) needs --consul-client-cert".into());
            }
        };
        Ok(ConsulTls { ca, identity })
    }
}

/// How long Consul may hold one blocking query open before answering "no change".
const BLOCKING_WAIT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Watcher {
    client: reqwest::Client,
    base: reqwest::Url,
    service: &'static str,
    tx: watch::Sender<Endpoints>,
    metrics: Metrics,
}

impl Watcher {
    /// Follows the service until `shutdown` fires.
    async fn run(self, shutdown: CancellationToken) {
        let mut index: u64 = 0;
        let mut backoff = BACKOFF_MIN;
        while let Some(polled) = shutdown.run_until_cancelled(self.poll(index)).await {
            let pause = match polled {
                Ok((next_index, addrs)) => {
                    backoff = BACKOFF_MIN;
                    // Consul's rule: an index that goes backwards means start over.
                    index = if next_index < index { 0 } else { next_index };
                    self.publish(addrs);
                    // Without an index the query cannot block: don't spin.
                    (next_index == 0).then_some(BACKOFF_MIN)
                }
                Err(err) => {
                    warn!(service = self.service, cause = %err, retry_in_ms = backoff.as_millis() as u64,
                        "consul query failed; keeping the last known endpoints");
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    index = 0;
                    Some(pause)
                }
            };
            if let Some(pause) = pause
                && shutdown.run_until_cancelled(tokio::time::sleep(pause)).await.is_none()
            {
                return;
            }
        }
    }

    async fn poll(&self, index: u64) -> anyhow::Result<(u64, Vec<SocketAddr>)> {
        let mut url = self.base.join(&format!("v1/health/service/{}", self.service))?;
        url.query_pairs_mut()
            .append_pair("passing", "1")
            .append_pair("index", &index.to_string())
            .append_pair("wait", &format!("{}s", BLOCKING_WAIT.as_secs()));
        let response = self.client.get(url).send().await?.error_for_status()?;
        let next_index = response
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = response.bytes().await?;
        Ok((next_index, parse_health(&body)?))
    }

    fn publish(&self, addrs: Vec<SocketAddr>) {
        let service = self.service;
        let changed = self.tx.send_if_modified(|endpoints| {
            let next = match service {
                PRIMARY_SERVICE => Endpoints {
                    primary: single(&addrs, service),
                    contested: if addrs.len() > 1 { addrs.clone() } else { Vec::new() },
                    ..endpoints.clone()
                },
                _ => Endpoints { replicas: addrs.clone(), ..endpoints.clone() },
            };
            let changed = *endpoints != next;
            *endpoints = next;
            changed
        });
        if changed {
            self.metrics.discovery_change(service);
            info!(service, endpoints = ?addrs, "redis endpoints changed");
        }
    }
}

fn single(addrs: &[SocketAddr], service: &str) -> Option<SocketAddr> {
    match addrs {
        [one] => Some(*one),
        [] => None,
        many => {
            warn!(service, endpoints = ?many, "more than one healthy primary; writing only to the one that proves to be it");
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: Node,
    service: Service,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Node {
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Service {
    #[serde(default)]
    address: String,
    port: u16,
}

/// Parses Consul's `/v1/health/service/<name>` answer into socket addresses, sorted
/// so that equal sets compare equal. The service address wins over the node's, as
/// Consul documents; entries whose address is not an IP are skipped with a warning.
pub fn parse_health(body: &[u8]) -> anyhow::Result<Vec<SocketAddr>> {
    let entries: Vec<HealthEntry> = serde_json::from_slice(body)?;
    let mut addrs: Vec<SocketAddr> = entries
        .into_iter()
        .filter_map(|e| {
            let host = if e.service.address.is_empty() { e.node.address } else { e.service.address };
            match host.parse::<IpAddr>() {
                Ok(ip) if e.service.port != 0 && is_unicast(ip) => Some(SocketAddr::new(ip, e.service.port)),
                Ok(_) => {
                    warn!(address = %host, port = e.service.port, "skipping a redis instance nobody can connect to");
                    None
                }
                Err(_) => {
                    warn!(address = %host, "skipping a redis instance whose address is not an IP");
                    None
                }
            }
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// An address a connection can go to: not 0.0.0.0 / ::, not multicast or broadcast.
fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_health_prefers_the_service_address_and_sorts() {
        let body = br#"[
          {"Node":{"Address":"10.0.0.9"},"Service":{"Address":"198.18.0.12","Port":6379},"Checks":[]},
          {"Node":{"Address":"198.18.0.11"},"Service":{"Address":"","Port":6379}}
        ]"#;
        let addrs = parse_health(body).unwrap();
        assert_eq!(addrs, vec!["198.18.0.11:6379".parse().unwrap(), "198.18.0.12:6379".parse().unwrap()]);
    }

    #[test]
    fn parse_health_skips_hostnames_and_rejects_garbage() {
        let body = br#"[{"Node":{"Address":"redis.example"},"Service":{"Address":"","Port":1}}]"#;
        assert!(parse_health(body).unwrap().is_empty());
        assert!(parse_health(b"{not json").is_err());
        assert!(parse_health(br#"[{"Node":{},"Service":{"Port":70000}}]"#).is_err());
        let unusable = br#"[{"Node":{"Address":"0.0.0.0"},"Service":{"Port":6379}},
                            {"Node":{"Address":"127.0.0.1"},"Service":{"Port":0}},
                            {"Node":{"Address":"224.0.0.1"},"Service":{"Port":6379}}]"#;
        assert!(parse_health(unusable).unwrap().is_empty());
    }

    #[test]
    fn two_primaries_mean_no_primary() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(single(&[a], "p"), Some(a));
        assert_eq!(single(&[a, b], "p"), None);
        assert_eq!(single(&[], "p"), None);
    }

    #[test]
    fn the_consul_token_comes_from_the_variable_or_its_file() {
        let dir = std::env::temp_dir().join(format!("counter-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let path = file.display().to_string();
        let token = |env: &dyn Fn(&str) -> Option<String>| {
            ConsulToken::from_env(env).map(|t| t.map(|t| t.header_value().to_str().unwrap().to_string()))
        };
        let both = |k: &str| match k {
            "CONSUL_HTTP_TOKEN" => Some("from-env".to_string()),
            "CONSUL_HTTP_TOKEN_FILE" => Some(path.clone()),
            _ => None,
        };
        assert_eq!(token(&both).unwrap().as_deref(), Some("from-env"));
        let file_only = |k: &str| (k == "CONSUL_HTTP_TOKEN_FILE").then(|| path.clone());
        assert_eq!(token(&file_only).unwrap().as_deref(), Some("from-file"));
        assert_eq!(token(&|_| None).unwrap(), None);
        let missing = |k: &str| (k == "CONSUL_HTTP_TOKEN_FILE").then(|| "/nonexistent/token".to_string());
        assert!(token(&missing).unwrap_err().starts_with("CONSUL_HTTP_TOKEN_FILE:"));
        let not_a_header = |k: &str| (k == "CONSUL_HTTP_TOKEN").then(|| "bad\ttoken\u{7f}".to_string());
        assert!(token(&not_a_header).unwrap_err().starts_with("CONSUL_HTTP_TOKEN:"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_consul_client_builds_with_a_ca_and_an_identity() {
        let pki = testkit::TestPki::new();
        let tls = ConsulTls {
            ca: Some(CaBundle::read(pki.ca_cert()).unwrap()),
            identity: Some(ClientIdentity::read(pki.server_cert(), pki.server_key()).unwrap()),
        };
        let background = Background::new();
        let url = "https://127.0.0.1:1".parse().unwrap();
        let built = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { Discovery::consul(url, None, &tls, Metrics::new(), &background).map(drop) });
        built.unwrap();
    }
}
