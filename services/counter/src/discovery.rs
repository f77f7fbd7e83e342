//! Where Redis is: fixed addresses, or the passing instances of `redis-primary` and
//! `redis-replica` in Consul, followed with blocking queries so a failover reaches
//! the store within a second or two. When Consul cannot be reached the last known
//! endpoints stay in force and the watch retries with backoff.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::background::Background;
use crate::config::{ConsulTls, ConsulToken};
use crate::metrics::Metrics;

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
}
