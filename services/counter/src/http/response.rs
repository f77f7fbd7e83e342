//! Building responses: the count in each format, one-line JSON errors, and the
//! one place where a [`StoreError`] becomes a status code.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tracing::error;

use super::negotiate::Format;
use crate::logic::{Count, StoreError};

pub type Body = Full<Bytes>;

const PAGE: &str = include_str!("page.html");

pub fn count(count: Count, format: Format) -> Response<Body> {
    match format {
        Format::Text => with_type(StatusCode::OK, "text/plain; charset=utf-8", rendered(format_args!("{count}\n"))),
        Format::Json => {
            with_type(StatusCode::OK, "application/json", rendered(format_args!("{{\"count\":{count}}}\n")))
        }
        Format::Html => page(),
    }
}

/// A short body written on the stack and copied once into its `Bytes` (a
/// `String` would be a second allocation when its capacity is not its length).
fn rendered(args: std::fmt::Arguments) -> Bytes {
    use std::io::Write;
    // `{"count":-9223372036854775808}\n` is 32 bytes.
    const ROOM: usize = 40;
    let mut buf = [0u8; ROOM];
    let mut rest = &mut buf[..];
    match rest.write_fmt(args) {
        Ok(()) => {
            let len = ROOM - rest.len();
            Bytes::copy_from_slice(&buf[..len])
        }
        Err(_) => Bytes::from(args.to_string()),
    }
}

/// The live page; it fetches the count itself, so it never embeds request data.
fn page() -> Response<Body> {
    let mut response = with_type(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body)
}

pub fn metrics(body: String) -> Response<Body> {
    with_type(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
}

/// `{"error":"...","code":"..."}` on one line. Messages are fixed strings: never echo input.
pub fn error(status: StatusCode, code: &'static str, message: &'static str) -> Response<Body> {
    let message = serde_json::to_string(message).expect("a str always serializes");
    let body = format!("{{\"error\":{message},\"code\":\"{code}\"}}\n");
    with_type(status, "application/json", body)
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The one mapping from store failures to HTTP: 503 + Retry-After for anything
/// that may pass, 500 (cause logged, not shown) for what will not.
pub fn store_error(err: &StoreError) -> Response<Body> {
    match err {
        StoreError::Unavailable { retry_after, .. } => {
            unavailable(retry_after.as_secs().max(1), "store_unavailable", "store unavailable, retry later")
        }
        StoreError::NotReplicated { .. } => {
            unavailable(1, "not_replicated", "increment not confirmed by a replica; it may or may not be counted")
        }
        StoreError::Corrupt(_) => {
            error!(cause = %err, "the stored count is unusable");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}

pub fn unavailable(retry_after_s: u64, code: &'static str, message: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn counts_render_whole_at_both_ends_of_the_range() {
        for n in [0, 7, i64::MAX, i64::MIN] {
            assert_eq!(body(count(Count(n), Format::Text)).await, format!("{n}\n"));
            assert_eq!(body(count(Count(n), Format::Json)).await, format!("{{\"count\":{n}}}\n"));
        }
        assert_eq!(rendered(format_args!("{}", "x".repeat(100))), "x".repeat(100), "longer than the stack buffer");
    }
}
