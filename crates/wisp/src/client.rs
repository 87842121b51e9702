//! A small client of wisp's Kubernetes-style REST API, over hyper-util's pooled HTTP/1 client.
//!
//! It knows the URL shapes (`/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`, core kinds
//! under `/api/v1`), the media types kubectl uses (merge patches, server-side `Table`s), the
//! newline-delimited watch stream, and Kubernetes' `Status` error objects, which it turns into
//! [`ApiError::Status`] so commands can branch on `NotFound`/`Conflict` and users see the
//! server's own message. Plain HTTP only: wisp's API listens on loopback by default.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use wisp_api::kinds::ResourceInfo;

/// `Accept` for a server-side table, falling back to plain JSON.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
/// RFC 7386 JSON merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

/// Where the client looks for the server when neither `--server` nor `WISP_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// A `kind: Status` failure returned by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ...
    pub reason: String,
    pub message: String,
    pub kind: String,
    pub name: String,
    pub causes: Vec<Cause>,
}

/// One `details.causes[]` entry: which field is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl StatusError {
    /// Reads a `Status` object; `None` if `body` is not one.
    pub fn from_status(body: &Value, http_code: u16) -> Option<StatusError> {
        if body.get("kind").and_then(Value::as_str) != Some("Status") {
            return None;
        }
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        let details = body.get("details");
        let causes = details
            .and_then(|d| d.get("causes"))
            .and_then(Value::as_array)
            .map(|causes| {
                causes
                    .iter()
                    .map(|c| Cause {
                        reason: s(c.get("reason")),
                        message: s(c.get("message")),
                        field: s(c.get("field")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(StatusError {
            code: body
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(http_code),
            reason: s(body.get("reason")),
            message: s(body.get("message")),
            kind: s(details.and_then(|d| d.get("kind"))),
            name: s(details.and_then(|d| d.get("name"))),
            causes,
        })
    }
}

impl std::fmt::Display for StatusError {
    /// kubectl's wording: `The Service "hello" is invalid: <field>: <message>` for validation
    /// failures with causes, `Error from server (<Reason>): <message>` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cause = |c: &Cause| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        };
        if self.reason == "Invalid" && !self.causes.is_empty() {
            let what = if self.kind.is_empty() {
                "The request is invalid".to_string()
            } else {
                format!("The {} {:?} is invalid", self.kind, self.name)
            };
            if let [only] = self.causes.as_slice() {
                return write!(f, "{what}: {}", cause(only));
            }
            write!(f, "{what}:")?;
            for c in &self.causes {
                write!(f, "\n* {}", cause(c))?;
            }
            return Ok(());
        }
        let reason = if self.reason.is_empty() {
            "Unknown"
        } else {
            &self.reason
        };
        write!(f, "Error from server ({reason}): {}", self.message)?;
        for c in &self.causes {
            if !self.message.contains(&c.message) {
                write!(f, "\n* {}", cause(c))?;
            }
        }
        Ok(())
    }
}

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the wisp API at {server}: is `wisp serve` running? ({detail})")]
    Unreachable { server: String, detail: String },
    #[error("{0}")]
    Status(Box<StatusError>),
    #[error("unexpected answer from the wisp API ({method} {path}): HTTP {code}: {body}")]
    Unexpected {
        method: String,
        path: String,
        code: u16,
        body: String,
    },
    #[error("invalid server URL {0:?}: want http://HOST:PORT (wisp's client speaks plain HTTP)")]
    BadServer(String),
}

impl ApiError {
    pub fn status(&self) -> Option<&StatusError> {
        match self {
            ApiError::Status(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 404 || s.reason == "NotFound")
    }
    pub fn is_conflict(&self) -> bool {
        self.status().is_some_and(|s| s.reason == "Conflict")
    }
    pub fn is_already_exists(&self) -> bool {
        self.status().is_some_and(|s| s.reason == "AlreadyExists")
    }
}

/// `http://host:port` without a trailing slash; a bare `host:port` gets `http://`.
pub fn normalize_server(server: &str) -> Result<String, ApiError> {
    let s = server.trim();
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    match with_scheme.parse::<http::Uri>() {
        Ok(uri)
            if uri.scheme_str() == Some("http") && uri.host().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(with_scheme.trim_end_matches('/').to_string())
        }
        _ => Err(ApiError::BadServer(server.to_string())),
    }
}

/// The URL path of a resource's collection: in `namespace` if the resource is namespaced and
/// a namespace is given, else across all namespaces (or cluster-scoped).
pub fn collection_path(info: &ResourceInfo, namespace: Option<&str>) -> String {
    let root = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    match namespace {
        Some(ns) if info.namespaced => {
            format!("{root}/namespaces/{}/{}", encode(ns), info.plural)
        }
        _ => format!("{root}/{}", info.plural),
    }
}

/// The URL path of one object.
pub fn object_path(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}/{}", collection_path(info, namespace), encode(name))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&k2=v2` (empty when there are no pairs), values percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// One event of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `ERROR`.
    pub type_: String,
    pub object: Value,
}

/// An open `?watch=true` response: newline-delimited JSON events.
pub struct WatchStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl WatchStream {
    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ApiError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if let Some(ev) = parse_watch_line(&line)? {
                    return Ok(Some(ev));
                }
                continue;
            }
            if self.done {
                let rest = std::mem::take(&mut self.buf);
                return parse_watch_line(&rest);
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                // A dropped connection ends the stream; callers re-watch.
                Some(Err(_)) => self.done = true,
            }
        }
    }
}

fn parse_watch_line(line: &[u8]) -> Result<Option<WatchEvent>, ApiError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| ApiError::Unexpected {
        method: "GET".into(),
        path: "watch".into(),
        code: 200,
        body: format!("unreadable watch event ({e}): {text}"),
    })?;
    Ok(Some(WatchEvent {
        type_: v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        object: v.get("object").cloned().unwrap_or(Value::Null),
    }))
}

/// A connection-pooled client of one wisp API server.
#[derive(Clone)]
pub struct Client {
    server: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(server: &str) -> Result<Client, ApiError> {
        let server = normalize_server(server)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client { server, http })
    }

    /// The server's base URL, as given.
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<http::Response<Incoming>, ApiError> {
        let uri = format!("{}{path}", self.server);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("wisp/", env!("CARGO_PKG_VERSION")),
            );
        let body = match body {
            Some((ctype, bytes)) => {
                req = req.header(header::CONTENT_TYPE, ctype);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|_| ApiError::BadServer(self.server.clone()))?;
        self.http.request(req).await.map_err(|e| {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            if e.is_connect() {
                ApiError::Unreachable {
                    server: self.server.clone(),
                    detail,
                }
            } else {
                ApiError::Unexpected {
                    method: method.to_string(),
                    path: path.to_string(),
                    code: 0,
                    body: format!("the connection failed: {detail}"),
                }
            }
        })
    }

    /// Sends a request and reads a JSON answer; a non-2xx answer becomes an error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value, ApiError> {
        let body = body.map(|(ctype, v)| (ctype, serde_json::to_vec(v).unwrap_or_default()));
        let resp = self.send(method.clone(), path, accept, body).await?;
        let code = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| ApiError::Unexpected {
                method: method.to_string(),
                path: path.to_string(),
                code: code.as_u16(),
                body: format!("the answer was cut off: {e}"),
            })?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if code.is_success() {
            return parsed.ok_or_else(|| ApiError::Unexpected {
                method: method.to_string(),
                path: path.to_string(),
                code: code.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        if let Some(status) = parsed
            .as_ref()
            .and_then(|v| StatusError::from_status(v, code.as_u16()))
        {
            return Err(ApiError::Status(Box::new(status)));
        }
        if code == StatusCode::NOT_FOUND {
            // A server that does not know the path at all (older or another API server).
            return Err(ApiError::Status(Box::new(StatusError {
                code: 404,
                reason: "NotFound".into(),
                message: format!("the server could not find the requested resource ({path})"),
                ..StatusError::default()
            })));
        }
        Err(ApiError::Unexpected {
            method: method.to_string(),
            path: path.to_string(),
            code: code.as_u16(),
            body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request(Method::GET, path, JSON, None).await
    }

    /// A server-side `Table` of the object or collection at `path`.
    pub async fn get_table(&self, path: &str) -> Result<Value, ApiError> {
        self.request(Method::GET, path, TABLE_ACCEPT, None).await
    }

    pub async fn create(&self, path: &str, object: &Value) -> Result<Value, ApiError> {
        self.request(Method::POST, path, JSON, Some((JSON, object)))
            .await
    }

    pub async fn replace(&self, path: &str, object: &Value) -> Result<Value, ApiError> {
        self.request(Method::PUT, path, JSON, Some((JSON, object)))
            .await
    }

    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.request(Method::PATCH, path, JSON, Some((MERGE_PATCH, patch)))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        let opts = serde_json::json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        });
        self.request(Method::DELETE, path, JSON, Some((JSON, &opts)))
            .await
    }

    /// GETs `path` and hands back the body to read as it arrives (watches, followed logs); a
    /// non-2xx answer becomes an error.
    pub async fn open(&self, path: &str) -> Result<Incoming, ApiError> {
        let resp = self.send(Method::GET, path, JSON, None).await?;
        let code = resp.status();
        if !code.is_success() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            if let Some(status) = parsed
                .as_ref()
                .and_then(|v| StatusError::from_status(v, code.as_u16()))
            {
                return Err(ApiError::Status(Box::new(status)));
            }
            return Err(ApiError::Unexpected {
                method: "GET".into(),
                path: path.to_string(),
                code: code.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        Ok(resp.into_body())
    }

    /// Opens a watch (`path` must carry `?watch=true` and any selectors).
    pub async fn watch(&self, path: &str) -> Result<WatchStream, ApiError> {
        let body = self.open(path).await?;
        Ok(WatchStream {
            body,
            buf: Vec::new(),
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wisp_api::kinds;

    #[test]
    fn paths_follow_kubernetes() {
        assert_eq!(
            object_path(&kinds::SERVICES, Some("default"), "hello"),
            "/apis/serving.knative.dev/v1/namespaces/default/services/hello"
        );
        assert_eq!(
            collection_path(&kinds::REVISIONS, None),
            "/apis/serving.knative.dev/v1/revisions"
        );
        assert_eq!(
            collection_path(&kinds::NAMESPACES, Some("default")),
            "/api/v1/namespaces"
        );
        assert_eq!(
            object_path(&kinds::NAMESPACES, Some("x"), "team"),
            "/api/v1/namespaces/team"
        );
        assert_eq!(
            collection_path(&kinds::CONFIGMAPS, Some("default")),
            "/api/v1/namespaces/default/configmaps"
        );
        assert_eq!(
            query(&[
                ("labelSelector", "serving.knative.dev/service=hello"),
                ("watch", "true")
            ]),
            "?labelSelector=serving.knative.dev%2Fservice%3Dhello&watch=true"
        );
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            normalize_server("http://127.0.0.1:7070/").ok().as_deref(),
            Some("http://127.0.0.1:7070")
        );
        assert_eq!(
            normalize_server("localhost:7070").ok().as_deref(),
            Some("http://localhost:7070")
        );
        assert!(normalize_server("https://example.com").is_err());
        assert!(normalize_server("http://").is_err());
    }

    #[test]
    fn status_errors_read_like_kubectl() {
        let not_found = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "services.serving.knative.dev \"nope\" not found",
            "reason": "NotFound", "code": 404,
            "details": {"name": "nope", "kind": "services"}
        });
        let e = StatusError::from_status(&not_found, 404).unwrap_or_default();
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): services.serving.knative.dev \"nope\" not found"
        );
        let err = ApiError::Status(Box::new(e));
        assert!(err.is_not_found() && !err.is_conflict());

        let invalid = json!({
            "kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Service \"hello\" is invalid: ...",
            "details": {"name": "hello", "kind": "Service", "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].image"},
                {"reason": "FieldValueInvalid", "message": "Invalid value: -1", "field": "spec.template.spec.containerConcurrency"}
            ]}
        });
        let e = StatusError::from_status(&invalid, 422).unwrap_or_default();
        assert_eq!(
            e.to_string(),
            "The Service \"hello\" is invalid:\n\
             * spec.template.spec.containers[0].image: Required value\n\
             * spec.template.spec.containerConcurrency: Invalid value: -1"
        );
        assert_eq!(
            StatusError::from_status(&json!({"kind": "Service"}), 200),
            None
        );
    }

    #[test]
    fn watch_lines() {
        let ev = parse_watch_line(br#"{"type":"ADDED","object":{"kind":"Service"}}"#);
        assert_eq!(
            ev.ok().flatten(),
            Some(WatchEvent {
                type_: "ADDED".into(),
                object: json!({"kind": "Service"})
            })
        );
        assert!(matches!(parse_watch_line(b"  \n"), Ok(None)));
        assert!(parse_watch_line(b"{nope").is_err());
    }

    /// Serves one canned HTTP/1.1 response per connection, in order.
    async fn serve(responses: Vec<String>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for resp in responses {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        format!("http://{addr}")
    }

    fn response(code: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn talks_to_a_server() {
        let watch_body = "{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n{\"type\":\"MODIFIED\",\"object\":{\"n\":2}}\n";
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            20,
            &watch_body[..20],
            watch_body.len() - 20,
            &watch_body[20..]
        );
        let server = serve(vec![
            response("200 OK", r#"{"kind":"Service","metadata":{"name":"a"}}"#),
            response(
                "404 Not Found",
                r#"{"kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"services.serving.knative.dev \"b\" not found"}"#,
            ),
            response("500 Internal Server Error", "boom"),
            chunked,
        ])
        .await;
        let client = Client::new(&server).unwrap_or_else(|e| panic!("{e}"));
        let got = client.get("/x").await.ok();
        assert_eq!(
            got,
            Some(json!({"kind": "Service", "metadata": {"name": "a"}}))
        );
        let err = client.get("/y").await.err();
        assert!(err.as_ref().is_some_and(ApiError::is_not_found), "{err:?}");
        let err = client
            .get("/z")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "unexpected answer from the wisp API (GET /z): HTTP 500: boom"
        );
        let mut stream = client
            .watch("/w?watch=true")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let a = stream
            .next()
            .await
            .ok()
            .flatten()
            .map(|e| (e.type_, e.object));
        let b = stream
            .next()
            .await
            .ok()
            .flatten()
            .map(|e| (e.type_, e.object));
        assert_eq!(a, Some(("ADDED".to_string(), json!({"n": 1}))));
        assert_eq!(b, Some(("MODIFIED".to_string(), json!({"n": 2}))));
        assert!(matches!(stream.next().await, Ok(None)));
    }

    #[tokio::test]
    async fn says_plainly_when_the_server_is_down() {
        // A port nobody listens on: bind, learn it, close.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(1);
        drop(listener);
        let client = Client::new(&format!("127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
        let err = client
            .get("/version")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "cannot reach the wisp API at http://127.0.0.1:{port}: is `wisp serve` running?"
            )),
            "{err}"
        );
    }
}
