//! Which instance answered: `X-Served-By: <service>@<id>` on every response, so a
//! client behind the gateway (the live page, curl -i, Traefik's access log) can
//! tell the instances apart. Under Nomad the id is the allocation's short id (what
//! `nomad alloc status` and `scripts/logs` show); elsewhere the listen address.

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("x-served-by");

/// The identity of this process, from `NOMAD_ALLOC_ID` when Nomad runs it.
pub fn served_by(service: &str, addr: SocketAddr) -> HeaderValue {
    identity(service, std::env::var("NOMAD_ALLOC_ID").ok().as_deref(), addr)
}

fn identity(service: &str, alloc_id: Option<&str>, addr: SocketAddr) -> HeaderValue {
    // An allocation id is a UUID; its first 8 hex digits are Nomad's own short form.
    let short = alloc_id
        .map(|id| id.chars().take_while(char::is_ascii_hexdigit).take(8).collect::<String>())
        .filter(|short| short.len() == 8);
    let id = short.unwrap_or_else(|| addr.to_string());
    HeaderValue::from_str(&format!("{service}@{id}")).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "127.0.0.1:8000";

    #[test]
    fn under_nomad_names_the_short_allocation_id() {
        let id = identity("web", Some("6f1c2a9e-0b7d-4e3a-9c1d-2e5f7a8b9c0d"), ADDR.parse().unwrap());
        assert_eq!(id, "web@6f1c2a9e");
    }

    #[test]
    fn elsewhere_or_with_a_malformed_id_names_the_listen_address() {
        assert_eq!(identity("web-inc", None, ADDR.parse().unwrap()), "web-inc@127.0.0.1:8000");
        assert_eq!(identity("web", Some("not an id"), ADDR.parse().unwrap()), "web@127.0.0.1:8000");
    }
}
