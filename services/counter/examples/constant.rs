//! Benchmark baselines on the services' own HTTP server:
//!   constant [ADDR]          answers a constant: the HTTP stack alone
//!   constant [ADDR] memory   the real routes over an in-memory store: the
//!                            stack plus routing, negotiation, request ids,
//!                            spans and metrics, without Redis
//! `web` measured against them shows what each layer costs.

use std::sync::Arc;

use bytes::Bytes;
use counter::http::{Limits, Routes, serve};
use counter::{MemoryStore, Role, app::shutdown_signal, metrics::Metrics};
use http::Response;
use http_body_util::Full;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8999".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let served_by = counter::http::served_by("constant", listener.local_addr()?);
    if args.next().as_deref() == Some("memory") {
        let routes =
            Arc::new(Routes { store: MemoryStore::new(), role: Role::All, metrics: Metrics::new(), served_by });
        let handler = move |req| {
            let routes = routes.clone();
            async move { routes.handle(req).await }
        };
        serve(listener, handler, Limits::default(), None, shutdown_signal()).await;
    } else {
        let handler = |_req| async { Response::new(Full::new(Bytes::from_static(b"42\n"))) };
        serve(listener, handler, Limits::default(), None, shutdown_signal()).await;
    }
    Ok(())
}
