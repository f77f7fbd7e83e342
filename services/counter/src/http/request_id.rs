//! The request id: the trace id of a W3C `traceparent` from the gateway, else a
//! well-formed `x-request-id`, else a new random one. Echoed as `x-request-id`.

use http::HeaderMap;

/// The id, and whether the caller sent it (someone is tracing this request).
pub fn from_headers(headers: &HeaderMap) -> (String, bool) {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .or_else(|| headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|id| is_safe_id(id)))
        .map(|id| (id.to_owned(), true))
        .unwrap_or_else(|| (format!("{:032x}", rand::random::<u128>()), false))
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; an all-zero id is invalid.
fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2) && hex(id, 32) && hex(parent, 16) && hex(flags, 2) && id.bytes().any(|b| b != b'0')).then_some(id)
}

/// Ids are logged and echoed: keep them short and free of anything a log or header could misread.
fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn takes_the_trace_id_of_a_traceparent() {
        let h = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
        assert_eq!(from_headers(&h), ("4bf92f3577b34da6a3ce929d0e0e4736".to_string(), true));
    }

    #[test]
    fn falls_back_to_a_safe_request_id_then_a_new_one() {
        assert_eq!(from_headers(&headers(&[("x-request-id", "abc-123")])), ("abc-123".to_string(), true));
        let (fresh, traced) = from_headers(&headers(&[("x-request-id", "bad id\"")]));
        assert!(!traced, "a made-up id is nobody's trace");
        assert_eq!(fresh.len(), 32);
        assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()));
        let bad_tp = headers(&[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")]);
        assert_ne!(from_headers(&bad_tp).0, "00000000000000000000000000000000");
    }
}
