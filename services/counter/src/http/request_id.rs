//! The request id: the trace id of a W3C `traceparent` from the gateway, else a
//! well-formed `x-request-id`, else a new random one. Echoed as `x-request-id`.
//! It is kept as the header value it is echoed as: a caller's `x-request-id` is
//! reused as received, and a new one is written once, without a `String`.

use http::{HeaderMap, HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The id, and whether the caller sent it (someone is tracing this request).
pub fn from_headers(headers: &HeaderMap) -> (HeaderValue, bool) {
    let traced = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .and_then(|id| HeaderValue::from_str(id).ok())
        .or_else(|| headers.get(HEADER).filter(|v| v.to_str().is_ok_and(is_safe_id)).cloned());
    match traced {
        Some(id) => (id, true),
        None => (random_id(), false),
    }
}

/// 32 lowercase hex digits of a random 128-bit number.
fn random_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u128>();
    let mut hex = [0u8; 32];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = HEX[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value")
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
        assert_eq!(from_headers(&h), (HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736"), true));
    }

    #[test]
    fn falls_back_to_a_safe_request_id_then_a_new_one() {
        assert_eq!(from_headers(&headers(&[("x-request-id", "abc-123")])), (HeaderValue::from_static("abc-123"), true));
        let (fresh, traced) = from_headers(&headers(&[("x-request-id", "bad id\"")]));
        assert!(!traced, "a made-up id is nobody's trace");
        assert_eq!(fresh.len(), 32);
        assert!(fresh.as_bytes().iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let bad_tp = headers(&[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")]);
        assert_ne!(from_headers(&bad_tp).0, "00000000000000000000000000000000");
    }

    #[test]
    fn new_ids_differ_and_use_every_digit_position() {
        let ids: Vec<HeaderValue> = (0..64).map(|_| random_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] != w[1]));
        for position in 0..32 {
            assert!(ids.iter().any(|id| id.as_bytes()[position] != b'0'), "digit {position} is always 0");
        }
    }
}
