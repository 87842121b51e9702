//! wisp's web dashboard: one page of plain HTML, CSS and JavaScript, compiled into the binary
//! and served at `/dashboard/` on the API port.
//!
//! The page is a client like the CLI: every two seconds it reads the same REST API (Services,
//! Revisions, Routes, Brokers, Triggers, Events) and the Prometheus text at `/metrics`, and
//! works out rates and latency percentiles itself (`assets/prom.mjs`). This crate owns those
//! assets and the router that serves them. It must not read the store or compute anything for
//! the page, and nothing it serves reaches outside the daemon: no asset names an external URL
//! (a unit test checks), and the page's Content-Security-Policy allows its own origin only.

use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Where the dashboard is mounted (the page's own links are relative to it).
pub const PATH: &str = "/dashboard/";

/// One file of the page, compiled in.
struct Asset {
    /// Its name under [`PATH`]; the empty name is the page itself.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        name: "app.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.mjs"),
    },
    Asset {
        name: "prom.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/prom.mjs"),
    },
    Asset {
        name: "charts.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/charts.mjs"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

/// The page may load and fetch from its own origin only: it works offline, and a name or
/// message that made it into the markup could not load anything from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes: `/dashboard` (a redirect), `/dashboard/` and its assets. Merge it
/// into the API server's router.
pub fn router() -> Router {
    let mut router = Router::new().route(
        PATH.trim_end_matches('/'),
        get(|| async { Redirect::permanent(PATH) }),
    );
    for asset in ASSETS {
        router = router.route(
            &format!("{PATH}{}", asset.name),
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        );
    }
    router
}

/// FNV-1a of the bytes: an ETag that changes when a build changes the asset.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", fnv1a(asset.body));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    // Revalidate every time: a new binary must never run with an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.name.is_empty() {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, body)
    }

    fn text(asset: &Asset) -> &'static str {
        std::str::from_utf8(asset.body).expect("assets are UTF-8")
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type() {
        for asset in ASSETS {
            let path = format!("{PATH}{}", asset.name);
            let (status, headers, body) = get(&path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type, "{path}");
            assert_eq!(body, asset.body, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(
                headers.contains_key(header::CONTENT_SECURITY_POLICY),
                asset.name.is_empty(),
                "{path}: the page, and only the page, carries the CSP"
            );
        }
        let (status, _, _) = get("/dashboard/nope.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_bare_path_redirects_so_relative_links_resolve() {
        let (status, headers, _) = get("/dashboard", &[]).await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(headers[header::LOCATION], PATH);
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_not_sent_again() {
        let (_, headers, _) = get("/dashboard/app.mjs", &[]).await;
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        let (status, _, body) = get("/dashboard/app.mjs", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, _) = get("/dashboard/app.mjs", &[("if-none-match", "\"0\"")]).await;
        assert_eq!(status, StatusCode::OK);
    }

    /// Works offline: no asset loads or links anything outside the daemon. The one `://` allowed
    /// is SVG's namespace, which is a name, never fetched.
    #[test]
    fn no_asset_names_an_external_url() {
        const SVG_NS: &str = "http://www.w3.org/2000/svg";
        for asset in ASSETS {
            let body = text(asset).replace(SVG_NS, "");
            assert!(
                !body.contains("://"),
                "{}: names an absolute URL: {}",
                asset.name,
                body.lines().find(|l| l.contains("://")).unwrap_or("")
            );
            assert!(
                !body.contains("src=\"//") && !body.contains("href=\"//"),
                "{}: a protocol-relative URL",
                asset.name
            );
        }
    }

    /// Every file the page and its modules refer to is one this router serves.
    #[test]
    fn every_reference_resolves_to_an_asset() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut refs = Vec::new();
        for asset in ASSETS {
            let body = text(asset);
            for marker in ["src=\"", "href=\"", "from './", "from \"./"] {
                for (i, _) in body.match_indices(marker) {
                    let rest = &body[i + marker.len()..];
                    let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                    let target = &rest[..end];
                    // Links to anchors and to the API (`/metrics`) are not assets.
                    if !target.starts_with('#') && !target.starts_with('/') {
                        refs.push((asset.name, target.to_string()));
                    }
                }
            }
        }
        assert!(refs.len() >= 4, "found too few references: {refs:?}");
        for (from, target) in refs {
            assert!(
                names.contains(&target.as_str()),
                "{from:?} refers to {target:?}, which is not served"
            );
        }
    }

    /// Small enough to load at once over any link: the budget is 60 KB.
    #[test]
    fn the_assets_stay_small() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 60 * 1024, "assets are {total} bytes");
    }
}
