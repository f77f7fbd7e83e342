//! The HTTP/1.1 server: keep-alive, a header read timeout and size cap (slowloris,
//! huge headers), a cap on open connections, accept errors logged and survived,
//! and a graceful drain bounded by the caller's timeout, after which the
//! connections still open are closed: `serve` returns with none left. With a
//! TLS acceptor every connection is HTTPS (plain HTTP fails the handshake),
//! and each request carries which [`Peer`] sent it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::response::Body;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A client must send its whole request head within this. hyper starts the
    /// same timer when a keep-alive connection goes idle, so it is also the idle
    /// timeout: a connection that sends nothing for this long is closed.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) read before answering 431.
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// Longest wait for in-flight requests after shutdown starts.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Who sent a request, as the connection proved it; a request extension the
/// routes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Plain HTTP: the local stack on loopback, where nothing is verified.
    Plain,
    /// HTTPS with the gateway's client certificate: a certificate of the CA
    /// the service trusts that names [`GATEWAY_CLIENT_NAME`].
    Gateway,
    /// HTTPS with another client certificate of that CA: the metrics
    /// scraper's (`prometheus.counter`), the operators' (`operator.counter`).
    OtherClient,
    /// HTTPS without a client certificate (the local Consul agent's health check).
    Anonymous,
}

/// The name the gateway's client certificate carries (a DNS SAN; the
/// cluster's certificates tool, scripts/counterops/certs.py, gives it to
/// HOST-gateway-client.pem alone). Only that certificate gets past
/// `/metrics` and `/health/*`: the scraper's key cannot increment.
pub const GATEWAY_CLIENT_NAME: &str = "gateway.counter";

impl Peer {
    /// The peer whose verified chain starts with `leaf`.
    fn presenting(leaf: &CertificateDer<'_>) -> Peer {
        let gateway = ServerName::try_from(GATEWAY_CLIENT_NAME).expect("GATEWAY_CLIENT_NAME is a DNS name");
        match webpki::EndEntityCert::try_from(leaf) {
            Ok(cert) if cert.verify_is_valid_for_subject_name(&gateway).is_ok() => Peer::Gateway,
            _ => Peer::OtherClient,
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then stops accepting
/// (new connections are refused), lets in-flight requests finish and closes idle
/// keep-alive connections, waiting at most `limits.drain_timeout`; then closes
/// what is left and returns once every connection's task has ended. With `tls`,
/// each connection's handshake must end within `limits.header_read_timeout`.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    // At most 100 header lines (hyper's default, kept on the stack): more get 431.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // The connections' tasks, to close the ones the drain leaves. Finished ones
    // are reaped at each accept, so the set holds about the open connections.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // EMFILE and friends pass; don't spin on them.
                    warn!(cause = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(&http, watcher, stream, Peer::Plain, handler, permit).await;
            };
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let peer = match stream.get_ref().1.peer_certificates() {
                        Some([leaf, ..]) => Peer::presenting(leaf),
                        _ => Peer::Anonymous,
                    };
                    serve_connection(&http, watcher, stream, peer, handler, permit).await;
                }
                Ok(Err(err)) => debug!(cause = %err, "TLS handshake failed"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        });
    }

    drop(listener);
    info!(drain_timeout_s = limits.drain_timeout.as_secs_f64(), "shutting down: no new connections, draining");
    match tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await {
        Ok(()) => info!("drained"),
        Err(_) => warn!("drain timed out; closing the remaining connections"),
    }
    // Drained, every task is ending by itself; what the timeout left is aborted,
    // which drops (closes) its connection.
    connections.shutdown().await;
}

/// One connection's requests, each tagged with `peer`, until it closes or the
/// drain closes it.
async fn serve_connection<S, H, Fut>(
    http: &http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    stream: S,
    peer: Peer,
    handler: H,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        let response = handler(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    if let Err(err) = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await {
        debug!(cause = %err, "connection ended with an error");
    }
    drop(permit);
}
