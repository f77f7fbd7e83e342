//! Increments sent by a browser on behalf of another site are refused.
//!
//! `GET /inc` increments (the contract keeps it for `curl`), so without this
//! any web page could make its visitors' browsers count: an `<img
//! src=".../inc">` or a form posted to `/inc`. Browsers say where a request
//! comes from (`Sec-Fetch-Site`, and `Origin` on every cross-origin request
//! and every POST), tools like `curl` say nothing; so the rule refuses only
//! what a browser marks as coming from elsewhere, and Counter's own page
//! (same origin) and every non-browser client go on as before.

use http::{HeaderMap, header};

/// `Sec-Fetch-Site` (Fetch Metadata): `same-origin` is Counter's own page,
/// `none` a URL the user typed or bookmarked; `same-site` and `cross-site` are
/// other pages.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// True when a browser sent this request for a page of another origin.
/// `host` is the authority the request was sent to (its `Host`).
pub fn from_another_site(headers: &HeaderMap, host: Option<&str>) -> bool {
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    // Older browsers send no Fetch Metadata but do send Origin: it must name
    // the host the request went to ("null", from a sandboxed or file page,
    // names none).
    match headers.get(header::ORIGIN).map(|origin| origin.to_str()) {
        None => false,
        Some(Ok(origin)) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            match (origin_host, host) {
                (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
                _ => true,
            }
        }
        Some(Err(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::from_another_site;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value))).collect()
    }

    #[test]
    fn curl_and_the_own_page_may_increment() {
        let host = Some("127.0.0.1:8080");
        assert!(!from_another_site(&headers(&[]), host));
        assert!(!from_another_site(&headers(&[("sec-fetch-site", "same-origin")]), host));
        assert!(!from_another_site(&headers(&[("sec-fetch-site", "none")]), host));
        assert!(!from_another_site(&headers(&[("origin", "http://127.0.0.1:8080")]), host));
        assert!(!from_another_site(
            &headers(&[("origin", "HTTPS://Counter.Example:8443")]),
            Some("counter.example:8443")
        ));
    }

    #[test]
    fn another_sites_page_may_not() {
        let host = Some("127.0.0.1:8080");
        assert!(from_another_site(&headers(&[("sec-fetch-site", "cross-site")]), host));
        assert!(from_another_site(&headers(&[("sec-fetch-site", "same-site")]), host));
        // Fetch Metadata decides when both are there.
        assert!(from_another_site(
            &headers(&[("sec-fetch-site", "cross-site"), ("origin", "http://127.0.0.1:8080")]),
            host
        ));
        assert!(from_another_site(&headers(&[("origin", "https://evil.example")]), host));
        assert!(from_another_site(&headers(&[("origin", "null")]), host));
        assert!(from_another_site(&headers(&[("origin", "http://127.0.0.1:8080")]), None));
    }
}
