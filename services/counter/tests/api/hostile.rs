//! Hostile input gets a 4xx or a closed connection, never a crash or a count change.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app};

/// Sends raw bytes and returns the status code of the answer, or None if the
/// server closed the connection without one.
async fn raw(app: &TestApp, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(app.addr.trim_start_matches("http://")).await.unwrap();
    // The server may answer and close before reading all of a huge request.
    let _ = stream.write_all(request).await;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut head)).await.ok()?.ok()?;
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn assert_client_error(status: Option<u16>, what: &str) {
    if let Some(code) = status {
        assert!((400..500).contains(&code), "{what}: got {code}, want 4xx or a closed connection");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_4xx_or_a_close_and_change_nothing() {
    let app = spawn_app().await;

    let huge_header =
        [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".as_slice(), &vec![b'a'; 64 * 1024], b"\r\n\r\n"].concat();
    assert_client_error(raw(&app, &huge_header).await, "huge header");

    let many_headers: Vec<u8> = (0..2000).flat_map(|i| format!("X-H{i}: v\r\n").into_bytes()).collect();
    let many = [b"GET / HTTP/1.1\r\nHost: x\r\n".as_slice(), &many_headers, b"\r\n"].concat();
    assert_client_error(raw(&app, &many).await, "too many headers");

    let declared_huge = b"POST /inc HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    assert_eq!(raw(&app, declared_huge).await, Some(413), "declared huge body");

    let chunk = format!("{:x}\r\n{}\r\n", 4096, "z".repeat(4096));
    let chunked = format!("POST /inc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n");
    assert_eq!(raw(&app, chunked.as_bytes()).await, Some(411), "chunked body (CL+TE smuggling cannot be told from it)");

    assert_client_error(raw(&app, b"\x00\x01\x02 garbage\r\n\r\n").await, "garbage request line");
    assert_client_error(raw(&app, b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n").await, "traversal");
    assert_client_error(raw(&app, b"GET / HTTP/1.1\r\nHost: x\r\nAccept: \xff\xfe\r\n\r\n").await, "binary Accept");
    assert_eq!(raw(&app, b"GET /inc HTTP/1.1\r\nHost: x\r\nAccept: image/png\r\n\r\n").await, Some(406));
    assert_eq!(raw(&app, b"GET / HTTP/1.1\r\nHost: x\r\nAccept: garbage;;;q=x\r\n\r\n").await, Some(406));

    let headers_101: String = (0..99).map(|i| format!("X-H{i}: v\r\n")).collect();
    let just_over = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers_101}Accept: */*\r\n\r\n");
    assert_eq!(raw(&app, just_over.as_bytes()).await, Some(431), "101 header lines");
    assert_eq!(raw(&app, b"POST /inc HTTP/1.1\r\n\r\n").await, Some(400), "no Host");
    assert_eq!(raw(&app, b"POST /inc HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await, Some(400), "two Hosts");
    let smuggle = b"POST /inc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(raw(&app, smuggle).await, Some(411), "CL+TE");

    assert_eq!(app.get("/health/live").await.status(), 200, "the process stays up");
    assert_eq!(app.count_at("/").await, 0, "no hostile request incremented the count");
}
