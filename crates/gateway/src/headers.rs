//! Header rewriting for the proxy phase, as pure functions on a `HeaderMap`.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it names, plus the
//!   legacy list Go's `httputil.ReverseProxy` drops, which Knative's activator and queue-proxy
//!   use) are removed in both directions; `TE: trailers` survives (gRPC needs it), and an
//!   upgrade keeps `Connection: upgrade` + `Upgrade` so it can pass through.
//! - The runtime contract's forwarding headers are added: `X-Forwarded-For` (appended),
//!   `X-Forwarded-Proto` and `X-Forwarded-Host` (kept if a proxy in front set them), and an
//!   RFC 7239 `Forwarded` element (appended).

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static K_NETWORK_PROBE: HeaderName = HeaderName::from_static("k-network-probe");
pub static K_NETWORK_HASH: HeaderName = HeaderName::from_static("k-network-hash");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether the request asks to switch protocols (`Connection: upgrade` and an `Upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has_token(headers, "upgrade")
}

fn connection_has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers. With `keep_upgrade`, the upgrade handshake headers stay
/// (`Connection` reduced to `upgrade`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        // Headers named by Connection are hop-by-hop too (rare beyond keep-alive/close).
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if let Some(te) = headers.remove(header::TE) {
        let trailers = te.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    if keep_upgrade && headers.contains_key(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// The client's address, formatted once per connection for the forwarding headers.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// For `X-Forwarded-For`: `192.0.2.1`, `2001:db8::1`.
    xff: HeaderValue,
    /// For `Forwarded: for=`: `192.0.2.1`, `"[2001:db8::1]"`.
    node: String,
}

impl ClientAddr {
    pub fn new(ip: IpAddr) -> Self {
        // An IPv4-mapped IPv6 address is the IPv4 client a dual-stack socket saw.
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let text = ip.to_string();
        let node = match ip {
            IpAddr::V4(_) => text.clone(),
            IpAddr::V6(_) => format!("\"[{text}]\""),
        };
        ClientAddr {
            xff: HeaderValue::from_str(&text).expect("an IP address is a valid header value"),
            node,
        }
    }
}

/// Adds the forwarding headers for a request from `client` to `host` (the `Host` it asked
/// for, as received) over `proto` (`http`).
pub fn add_forwarding(
    headers: &mut HeaderMap,
    client: &ClientAddr,
    host: &HeaderValue,
    proto: &str,
) {
    // X-Forwarded-For: the client appended to any chain a proxy in front reported.
    let xff = match join_values(headers, &X_FORWARDED_FOR) {
        None => client.xff.clone(),
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(client.xff.to_str().unwrap_or_default());
            HeaderValue::from_str(&chain).unwrap_or_else(|_| client.xff.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    if !headers.contains_key(&X_FORWARDED_PROTO)
        && let Ok(value) = HeaderValue::from_str(proto)
    {
        headers.insert(X_FORWARDED_PROTO.clone(), value);
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    // Forwarded (RFC 7239): one more element for this hop.
    let host_text = host.to_str().unwrap_or_default();
    let mut element = String::with_capacity(32 + host_text.len());
    if let Some(existing) = join_values(headers, &header::FORWARDED) {
        element.push_str(&existing);
        element.push_str(", ");
    }
    element.push_str("for=");
    element.push_str(&client.node);
    if !host_text.is_empty() {
        element.push_str(";host=");
        push_token_or_quoted(&mut element, host_text);
    }
    element.push_str(";proto=");
    element.push_str(proto);
    if let Ok(value) = HeaderValue::from_str(&element) {
        headers.insert(header::FORWARDED, value);
    }
}

/// All values of a header joined with ", " (None when absent or not text).
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    let mut joined = first.to_owned();
    for v in values {
        joined.push_str(", ");
        joined.push_str(v.to_str().ok()?);
    }
    Some(joined)
}

/// RFC 7239 values are tokens or quoted strings; `host:port` is not a token.
fn push_token_or_quoted(out: &mut String, value: &str) {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if value.bytes().all(is_tchar) {
        out.push_str(value);
    } else {
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
        h.get(k).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("trailer", "x-checksum"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("content-type", "text/plain"),
            ("traceparent", "00-abc-def-01"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "traceparent"]);
    }

    #[test]
    fn te_trailers_survives() {
        let mut h = map(&[("te", "trailers, deflate")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(get(&h, "te"), Some("trailers"));
    }

    #[test]
    fn upgrades_keep_their_handshake() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(get(&h, "connection"), Some("upgrade"));
        assert_eq!(get(&h, "upgrade"), Some("websocket"));
        assert_eq!(get(&h, "sec-websocket-key"), Some("abc"));
        assert!(!is_upgrade_request(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn forwarding_headers_for_a_direct_client() {
        let mut h = HeaderMap::new();
        let client = ClientAddr::new("192.0.2.7".parse().unwrap());
        let host = HeaderValue::from_static("hello.default.localhost:8080");
        add_forwarding(&mut h, &client, &host, "http");
        assert_eq!(get(&h, "x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(
            get(&h, "x-forwarded-host"),
            Some("hello.default.localhost:8080")
        );
        assert_eq!(
            get(&h, "forwarded"),
            Some("for=192.0.2.7;host=\"hello.default.localhost:8080\";proto=http")
        );
    }

    #[test]
    fn forwarding_headers_extend_a_proxy_chain() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "198.51.100.2"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=203.0.113.1;proto=https"),
        ]);
        let client = ClientAddr::new("2001:db8::1".parse().unwrap());
        let host = HeaderValue::from_static("hello.default.example.com");
        add_forwarding(&mut h, &client, &host, "http");
        assert_eq!(
            get(&h, "x-forwarded-for"),
            Some("203.0.113.1, 198.51.100.2, 2001:db8::1")
        );
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(
            get(&h, "forwarded"),
            Some(
                "for=203.0.113.1;proto=https, for=\"[2001:db8::1]\";host=hello.default.example.com;proto=http"
            )
        );
    }

    #[test]
    fn ipv4_mapped_clients_are_reported_as_ipv4() {
        let mut h = HeaderMap::new();
        let client = ClientAddr::new("::ffff:127.0.0.1".parse().unwrap());
        add_forwarding(&mut h, &client, &HeaderValue::from_static("h"), "http");
        assert_eq!(get(&h, "x-forwarded-for"), Some("127.0.0.1"));
    }
}
