//! Test harness: a gateway on a loopback port, small in-process upstream apps (real hyper
//! servers on loopback), and a pooled client. No network mocks.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::sync::{Notify, Semaphore, oneshot};
use wisp_gateway::{
    Gateway, GatewayEvent, GatewayOptions, HostRoute, RevisionConfig, RevisionKey, RoutingTable,
};

pub type TestBody = BoxBody<Bytes, std::io::Error>;

/// Generous limit for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body fed chunk by chunk from a channel (ends when the sender is dropped).
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

pub fn channel_body() -> (mpsc::Sender<Bytes>, TestBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

/// What an upstream app saw.
pub struct UpstreamState {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub requests: AtomicUsize,
    pub connections: AtomicUsize,
    /// `/block` waits for a permit.
    pub gate: Semaphore,
    /// `/stream` sends its second chunk when notified.
    pub stream_go: Notify,
    /// Notified when `/upload` receives its first bytes.
    pub upload_started: Notify,
}

impl Default for UpstreamState {
    fn default() -> Self {
        UpstreamState {
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            stream_go: Notify::new(),
            upload_started: Notify::new(),
        }
    }
}

struct InFlightGuard(Arc<UpstreamState>);

impl InFlightGuard {
    fn new(state: &Arc<UpstreamState>) -> Self {
        state.requests.fetch_add(1, Ordering::SeqCst);
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(state.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An in-process app on a loopback port. Paths:
/// `/` answers its name; `/headers` echoes request headers as `name: value` lines (and sets
/// hop-by-hop response headers); `/sleep/MS`; `/block` (waits for a `gate` permit);
/// `/stream` (a chunk, then another once `stream_go` is notified); `/stall` (a chunk, then
/// nothing); `/upload` (counts the body's bytes); `/ws` (101 then echoes bytes).
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, false).await
    }

    pub async fn start_h2c(name: &str) -> Self {
        Self::start_with(name, true).await
    }

    async fn start_with(name: &str, h2c: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState::default());
        let (app_name, app_state) = (name.to_owned(), state.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                app_state.connections.fetch_add(1, Ordering::SeqCst);
                let (name, state) = (app_name.clone(), app_state.clone());
                let service = service_fn(move |req| app(name.clone(), state.clone(), req));
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    if h2c {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    }
                });
            }
        });
        Upstream {
            name: name.to_owned(),
            addr,
            state,
            task,
        }
    }
}

async fn app(
    name: String,
    state: Arc<UpstreamState>,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let guard = InFlightGuard::new(&state);
    let path = req.uri().path().to_owned();
    let version = req.version();
    let mut response = match path.as_str() {
        "/headers" => {
            let mut text = format!("version: {:?}\nuri: {}\n", req.version(), req.uri());
            for (k, v) in req.headers() {
                text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            let mut r = Response::new(full(text));
            let h = r.headers_mut();
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("connection", "x-hop".parse().unwrap());
            h.insert("x-hop", "1".parse().unwrap());
            h.insert("x-app", name.parse().unwrap());
            r
        }
        p if p.starts_with("/sleep/") => {
            let ms: u64 = p["/sleep/".len()..].parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full(name))
        }
        "/block" => {
            state.gate.acquire().await.unwrap().forget();
            Response::new(full(name))
        }
        "/stream" | "/stall" => {
            let (tx, body) = channel_body();
            let stall = path == "/stall";
            let state = state.clone();
            tokio::spawn(async move {
                let _guard = guard;
                tx.send(Bytes::from_static(b"first\n")).await.ok();
                if stall {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                state.stream_go.notified().await;
                tx.send(Bytes::from_static(b"second\n")).await.ok();
            });
            return Ok(Response::new(body));
        }
        "/upload" => {
            let mut total = 0usize;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Ok(data) = frame.into_data() {
                    if total == 0 && !data.is_empty() {
                        state.upload_started.notify_one();
                    }
                    total += data.len();
                }
            }
            Response::new(full(total.to_string()))
        }
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let _guard = guard;
                if let Ok(upgraded) = on_upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            r.headers_mut().insert("upgrade", "echo".parse().unwrap());
            return Ok(r);
        }
        _ => Response::new(full(name)),
    };
    response
        .headers_mut()
        .insert("x-app-version", format!("{version:?}").parse().unwrap());
    drop(guard);
    Ok(response)
}

/// A gateway serving on a loopback port, with helpers to route and to send requests.
pub struct Harness {
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub events: UnboundedReceiver<GatewayEvent>,
    pub client: Client<HttpConnector, TestBody>,
    table: Mutex<RoutingTable>,
    shutdown: Option<oneshot::Sender<()>>,
    pub serve: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_options(GatewayOptions::default()).await
    }

    pub async fn with_options(options: GatewayOptions) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let gateway = Gateway::with_options(options, tx);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = gateway.clone();
        let serve = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build_http();
        Harness {
            gateway,
            addr,
            events,
            client,
            table: Mutex::new(RoutingTable::new()),
            shutdown: Some(stop),
            serve: Some(serve),
        }
    }

    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }

    /// Stops accepting and drains; returns when `serve` has returned.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(serve) = self.serve.take() {
            tokio::time::timeout(DEADLINE, serve)
                .await
                .expect("serve drains")
                .unwrap();
        }
    }

    /// Adds a revision with `config` and `upstreams` as its endpoints.
    pub fn revision(
        &self,
        name: &str,
        config: RevisionConfig,
        upstreams: &[&Upstream],
    ) -> RevisionKey {
        let key = RevisionKey::new("default", name);
        self.gateway.set_revision(key.clone(), config);
        self.gateway
            .set_endpoints(&key, upstreams.iter().map(|u| u.addr).collect());
        key
    }

    /// Routes `host` to `targets` (on top of the hosts routed before).
    pub fn route(&self, host: &str, targets: &[(&RevisionKey, u32)]) {
        let mut table = self.table.lock().unwrap();
        table.insert(
            host,
            HostRoute {
                namespace: "default".into(),
                route: host.split('.').next().unwrap_or(host).into(),
                targets: targets.iter().map(|(k, p)| ((*k).clone(), *p)).collect(),
            },
        );
        self.gateway.set_routes(table.clone());
    }

    pub fn request(&self, host: &str, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .uri(format!("http://{}{}", self.addr, path))
            .header("host", host)
    }

    pub async fn send(&self, req: Request<TestBody>) -> (StatusCode, hyper::HeaderMap, String) {
        let response = tokio::time::timeout(DEADLINE, self.client.request(req))
            .await
            .expect("response in time")
            .expect("response");
        let (parts, body) = response.into_parts();
        let bytes = tokio::time::timeout(DEADLINE, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        let (status, _, body) = self
            .send(self.request(host, path).body(full("")).unwrap())
            .await;
        (status, body)
    }
}

/// Waits (polling, bounded by [`DEADLINE`]) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `f` with a [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Reads from a raw stream until the end of an HTTP head.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = within("head", stream.read(&mut byte)).await.unwrap();
        assert!(
            n > 0,
            "connection closed in head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

pub async fn write_all(stream: &mut tokio::net::TcpStream, data: &[u8]) {
    stream.write_all(data).await.unwrap();
}
