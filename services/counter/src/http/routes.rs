//! The public contract (`GET /`, `GET|POST /inc`) and the per-instance endpoints
//! (`/health/live`, `/health/ready`, `/metrics`). Every request gets a request id,
//! echoed in the response with the instance's identity; every line logged for a
//! request is in a span carrying that id.
//! The service's access log is one "answered" line per request: at `info` for a
//! request someone traces (it came with an id), fails or is slow; at `debug` for
//! the rest and for health checks and scrapes. Formatting a JSON line for every
//! request cost 38 % of web's throughput (docs/observability.md); the gateway's
//! access log still has every request with its id. For the same reason the span
//! is made only when a line is logged: making one for every request (its fields
//! rendered as JSON, entered at every poll) was a fifth of web's own CPU time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use tracing::level_filters::LevelFilter;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use super::cross_site;
use super::instance;
use super::negotiate::{Format, negotiate};
use super::request_id;
use super::response::{self, Body};
use super::server::Peer;
use crate::config::Role;
use crate::logic::{CountStore, Side};
use crate::metrics::Metrics;

/// `/inc` needs no body; anything larger than this is refused unread.
const MAX_BODY_BYTES: usize = 1024;
/// A request answered slower than this is logged at `info` (microseconds).
const SLOW_US: u64 = 100_000;
/// How long a refused body may take to arrive before the 411 or 413 goes out anyway.
const REFUSED_BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// A refused body declared up to this size is read (and discarded) before the
/// 413; a larger one is refused unread.
const MAX_DRAINED_BYTES: u64 = 1 << 20;
/// A slow body must not hold a connection past this.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes of one service: the store it uses and which half of the contract it serves.
pub struct Routes<S> {
    pub store: S,
    pub role: Role,
    pub metrics: Metrics,
    /// `X-Served-By` of every response ([`super::served_by`]).
    pub served_by: HeaderValue,
}

impl<S: CountStore> Routes<S> {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let (request_id, traced) = request_id::from_headers(req.headers());
        let log = RequestSpan::new(&request_id);
        let method = req.method().clone();
        let (route, mut response) = self.route(req, &log).await;
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        let elapsed_us = elapsed.as_micros() as u64;
        // Probed every second by Consul and Traefik, scraped by Prometheus: not traffic.
        let probe = matches!(route, "/health/live" | "/health/ready" | "/metrics");
        let notable = traced || status >= 400 || elapsed_us >= SLOW_US;
        if notable && !probe {
            log.span().in_scope(|| info!(%method, route, status, elapsed_us, "answered"));
        } else if LevelFilter::current() >= LevelFilter::DEBUG {
            log.span().in_scope(|| debug!(%method, route, status, elapsed_us, "answered"));
        }
        let headers = response.headers_mut();
        headers.insert(request_id::HEADER, request_id);
        headers.insert(instance::HEADER, self.served_by.clone());
        self.metrics.request(route, status, elapsed);
        response
    }

    async fn route(&self, req: Request<Incoming>, log: &RequestSpan<'_>) -> (&'static str, Response<Body>) {
        if !has_valid_host(&req) {
            return (
                "other",
                response::error(StatusCode::BAD_REQUEST, "bad_host", "exactly one valid Host header required"),
            );
        }
        let method = req.method().clone();
        let reading = matches!(method, Method::GET | Method::HEAD);
        // Over HTTPS, a client without a certificate of the trusted CA may
        // only probe health (the local Consul agent); another certificate
        // than the gateway's (the scraper's, the operators') may read
        // /metrics too; the rest is the gateway's alone.
        let health = matches!(req.uri().path(), "/health/live" | "/health/ready");
        let metrics = req.uri().path() == "/metrics";
        match req.extensions().get::<Peer>() {
            Some(Peer::Anonymous) if !health => {
                return (
                    "other",
                    response::error(
                        StatusCode::FORBIDDEN,
                        "client_certificate_required",
                        "a client certificate of the services' CA is required (the gateway's; the scraper's reads /metrics)",
                    ),
                );
            }
            Some(Peer::OtherClient) if !health && !metrics => {
                return (
                    "other",
                    response::error(
                        StatusCode::FORBIDDEN,
                        "gateway_certificate_required",
                        "only the gateway may ask this; this client certificate reads /metrics and /health/* alone",
                    ),
                );
            }
            _ => {}
        }
        match req.uri().path() {
            "/health/live" if reading => ("/health/live", response::text(StatusCode::OK, "live\n")),
            "/health/ready" if reading => ("/health/ready", self.ready(log).await),
            "/metrics" if reading => ("/metrics", response::metrics(self.metrics.encode())),
            "/health/live" | "/health/ready" | "/metrics" => ("other", response::method_not_allowed("GET, HEAD")),
            "/" if self.role.reads() => match reading {
                true => ("/", self.read(&req, log).await),
                false => ("/", response::method_not_allowed("GET, HEAD")),
            },
            "/inc" if self.role.increments() => match method {
                Method::GET | Method::POST => ("/inc", self.increment(req, log).await),
                _ => ("/inc", response::method_not_allowed("GET, POST")),
            },
            _ => ("other", response::error(StatusCode::NOT_FOUND, "not_found", "no such route")),
        }
    }

    async fn read(&self, req: &Request<Incoming>, log: &RequestSpan<'_>) -> Response<Body> {
        let format = match accepted(req, &[Format::Text, Format::Json, Format::Html]) {
            Ok(format) => format,
            Err(response) => return response,
        };
        // The page fetches the count itself: serving it needs no store.
        if format == Format::Html {
            return response::count(crate::logic::Count(0), Format::Html);
        }
        match self.store.get().await {
            Ok(count) => response::count(count, format),
            Err(err) => log.span().in_scope(|| {
                warn!(cause = %err, "read failed");
                response::store_error(&err)
            }),
        }
    }

    async fn increment(&self, req: Request<Incoming>, log: &RequestSpan<'_>) -> Response<Body> {
        // Everything that can refuse the request is checked before the count changes.
        let format = match accepted(&req, &[Format::Text, Format::Json]) {
            Ok(format) => format,
            Err(response) => return response,
        };
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let host = host.or_else(|| req.uri().authority().map(|a| a.as_str()));
        let cross_site = cross_site::from_another_site(req.headers(), host);
        // The body is read first even when refused (see MAX_DRAINED_BYTES).
        if let Err(response) = drain_small_body(req).await {
            return response;
        }
        if cross_site {
            return response::error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "a browser may increment only from Counter's own page",
            );
        }
        match self.store.increment().await {
            Ok(count) => response::count(count, format),
            Err(err) => log.span().in_scope(|| {
                warn!(cause = %err, "increment failed");
                response::store_error(&err)
            }),
        }
    }

    /// Probes run in the span: a breaker opening on the way logs a line.
    ///
    /// An incrementing service whose primary is gone (a failover: none known
    /// yet, or the one named does not answer) stays ready while it reaches a
    /// replica: every instance is in the same state, each holds increments
    /// until the new primary is known (`--primary-wait-ms`), and dropping
    /// them all from routing would only turn held increments into the
    /// gateway's 503s, then cost the time to route to them again (measured:
    /// ~1.2 s of "no available server" after each failover). An instance that
    /// reaches no Redis node at all is not ready.
    async fn ready(&self, log: &RequestSpan<'_>) -> Response<Body> {
        let side = if self.role.increments() { Side::Write } else { Side::Read };
        let probed = match self.store.probe(side).instrument(log.span().clone()).await {
            Err(err) if matches!(side, Side::Write) => {
                self.store.probe(Side::Read).instrument(log.span().clone()).await.map_err(|_| err)
            }
            other => other,
        };
        match probed {
            Ok(()) => response::text(StatusCode::OK, "ready\n"),
            Err(err) => log.span().in_scope(|| {
                warn!(cause = %err, "not ready");
                response::unavailable(1, "not_ready", "store unreachable")
            }),
        }
    }
}

/// The span of one request, `request` with its id, made on first use: most
/// requests log nothing and never pay for one.
struct RequestSpan<'a> {
    request_id: &'a HeaderValue,
    /// OnceLock, not OnceCell: the request's future holds a reference across
    /// .await and must stay Send.
    span: OnceLock<Span>,
}

impl<'a> RequestSpan<'a> {
    fn new(request_id: &'a HeaderValue) -> RequestSpan<'a> {
        RequestSpan { request_id, span: OnceLock::new() }
    }

    fn span(&self) -> &Span {
        self.span.get_or_init(|| {
            // Ids are visible ASCII by construction (request_id.rs).
            let request_id = self.request_id.to_str().unwrap_or_default();
            info_span!("request", request_id = %request_id)
        })
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host header, with more than one,
/// or with one that is not an authority, gets 400. HTTP/1.0 may omit it.
fn has_valid_host(req: &Request<Incoming>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => req.version() < Version::HTTP_11,
        (Some(host), None) => host.is_empty() || host.to_str().is_ok_and(is_host),
        (Some(_), Some(_)) => false,
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2): an authority without userinfo, with
/// a port that fits in 16 bits if there is one.
fn is_host(raw: &str) -> bool {
    let Ok(authority) = raw.parse::<http::uri::Authority>() else { return false };
    // The port after the last ':' outside an IPv6 literal; empty is allowed by the grammar.
    let port = match raw.rfind(']') {
        Some(end) => raw[end + 1..].strip_prefix(':'),
        None => raw.rsplit_once(':').map(|(_, port)| port),
    };
    let port_ok = port.is_none_or(|p| p.is_empty() || p.parse::<u16>().is_ok());
    port_ok && !raw.contains('@') && !authority.host().is_empty()
}

// The refusal is the response itself, built once per refused request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn accepted(req: &Request<Incoming>, offered: &[Format]) -> Result<Format, Response<Body>> {
    let accept = match req.headers().get(header::ACCEPT).map(|v| v.to_str()) {
        None => None,
        Some(Ok(accept)) => Some(accept),
        Some(Err(_)) => {
            return Err(response::error(StatusCode::BAD_REQUEST, "bad_accept", "Accept header is not text"));
        }
    };
    negotiate(accept, offered).ok_or_else(|| {
        response::error(StatusCode::NOT_ACCEPTABLE, "not_acceptable", "can answer text/plain or application/json only")
    })
}

#[allow(clippy::result_large_err)]
/// Reads and discards a body of at most [`MAX_BODY_BYTES`], within [`BODY_TIMEOUT`].
async fn drain_small_body(req: Request<Incoming>) -> Result<(), Response<Body>> {
    let too_large = || response::error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "request body too large");
    // hyper lets Transfer-Encoding win over a Content-Length sent with it and
    // drops the latter, so a CL+TE conflict (request smuggling's shape) cannot be
    // told from plain chunked here. `/inc` needs no body: refuse chunked outright.
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        discard(req.into_body(), MAX_BODY_BYTES as u64).await;
        return Err(response::error(StatusCode::LENGTH_REQUIRED, "length_required", "chunked bodies are not accepted"));
    }
    let body = req.into_body();
    if body.is_end_stream() {
        return Ok(());
    }
    let declared = body.size_hint().lower();
    if declared > MAX_BODY_BYTES as u64 {
        if declared <= MAX_DRAINED_BYTES {
            discard(body, MAX_DRAINED_BYTES).await;
        }
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) if err.is::<LengthLimitError>() => Err(too_large()),
        // Bad chunked framing or a peer that went away mid-body.
        Ok(Err(_)) => Err(response::error(StatusCode::BAD_REQUEST, "bad_body", "malformed request body")),
        Err(_) => Err(response::error(StatusCode::REQUEST_TIMEOUT, "body_timeout", "request body too slow")),
    }
}

/// Reads and drops what a proxy is still sending of a refused body, at most
/// `limit` bytes within [`REFUSED_BODY_TIMEOUT`]: closing with unread bytes
/// makes the kernel send a reset, which can beat the answer to the proxy, and
/// Traefik then reports a 502 instead of the 4xx (seen with a 64 KiB body).
async fn discard(body: Incoming, limit: u64) {
    let mut body = Limited::new(body, limit as usize);
    let read_all = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(REFUSED_BODY_TIMEOUT, read_all).await;
}

#[cfg(test)]
mod tests {
    use super::is_host;

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_16_bit_port() {
        for ok in ["counter.test", "127.0.0.1:8080", "[::1]:80", "localhost:", "web-inc.service.consul"] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in ["a b", "evil.test/x", "user@evil.test", "evil.test:99999999", "[::1", ":80", "x:y"] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
