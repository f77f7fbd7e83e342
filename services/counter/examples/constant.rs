//! Benchmark baseline: the services' own HTTP server answering a constant, no
//! store. `web` measured against it shows what the store and logic cost.
//!
//! usage: constant [ADDR:PORT]   (default 127.0.0.1:8999)

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8999".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let handler = |_req| async { Response::new(Full::new(Bytes::from_static(b"42\n"))) };
    counter::http::serve(listener, handler, counter::http::Limits::default(), counter::app::shutdown_signal()).await;
    Ok(())
}
