//! `wisp-testapp`: the small real program wisp's tests deploy, like Knative's test images
//! (helloworld, autoscale, httpproxy...). Std only, no dependencies, so it starts in about a
//! millisecond and the cold-start figures measure wisp rather than the app.
//!
//! Environment:
//! - `PORT` (default 8080), `HOST` (default `0.0.0.0`): where to listen.
//! - `TARGET` (default `World`): `/` answers `Hello {TARGET}!`.
//! - `START_DELAY_MS`: sleep before listening ("starts slowly").
//! - `FAIL_TO_START=1`: print a message on stderr and exit 1 at once.
//! - `CRASH_AFTER=N`: exit 3 after answering N requests (`/healthz` does not count).
//! - `HEALTHZ_FAIL=1`: `/healthz` answers 500 instead of 200.
//!
//! Query parameters of any path but `/healthz` (they combine):
//! - `sleep=MS`: wait before answering; `status=CODE`: answer with that status;
//! - `echo=1`: a JSON document with the method, path, query, headers, argv, working directory,
//!   pid and the environment (`PORT`, `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`, `TARGET`,
//!   plus the names listed in `env=A,B`);
//! - `stream=N`: a chunked body of N lines, 10 ms apart; `body=BYTES`: a body of that size.
//!
//! CloudEvents (requests with a `ce-id` header, binary mode), for the eventing tests:
//! - `RECORD_EVENTS=FILE`: every attempt is appended to FILE as one JSON line (path, query,
//!   the `ce-` attributes, content type, the `traceparent` header, body as text, the status
//!   answered, unix time in ms);
//! - `fail=N`: the first N attempts of each event id are answered 503;
//! - `reply=TYPE`: answer with an event of that type (id `reply-{id}`, same data).
//!
//! As an event source (ContainerSource, SinkBinding): `EMIT_EVENTS=N` sends N events
//! (type `dev.wisp.testapp.emitted`, ids `{K_REVISION}-{i}`, the extensions of
//! `K_CE_OVERRIDES`) to `$K_SINK` once listening, retrying each until it is accepted.
//!
//! One line per request on stdout. SIGTERM (or SIGINT) starts a graceful drain: stop accepting,
//! finish the requests in flight, exit 0.

mod http;

use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{ParseError, Request};

/// Requests read but not yet answered (counted from their first byte).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Requests answered, for `CRASH_AFTER`.
static SERVED: AtomicUsize = AtomicUsize::new(0);
/// Set once the drain has begun: new connections are refused, responses close the connection.
static DRAINING: AtomicBool = AtomicBool::new(false);

struct Config {
    target: String,
    crash_after: usize,
    healthz_fail: bool,
}

fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1" | "true" | "TRUE" | "yes")
    )
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn log(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn main() {
    if env_flag("FAIL_TO_START") {
        eprintln!("wisp-testapp: FAIL_TO_START is set, exiting with status 1");
        std::process::exit(1);
    }
    if let Some(ms) = env_num::<u64>("START_DELAY_MS") {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let port: u16 = match std::env::var("PORT") {
        Err(_) => 8080,
        Ok(p) => match p.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("wisp-testapp: PORT={p:?} is not a port number");
                std::process::exit(2);
            }
        },
    };
    let host: IpAddr = env_num("HOST").unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let cfg = Arc::new(Config {
        target: std::env::var("TARGET").unwrap_or_else(|_| "World".to_string()),
        crash_after: env_num("CRASH_AFTER").unwrap_or(0),
        healthz_fail: env_flag("HEALTHZ_FAIL"),
    });
    let listener = match TcpListener::bind((host, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wisp-testapp: cannot listen on {host}:{port}: {e}");
            std::process::exit(2);
        }
    };
    let local = listener.local_addr().unwrap_or(SocketAddr::new(host, port));
    signal::install();
    std::thread::spawn(move || drain_on_signal(local));
    log(format_args!("wisp-testapp listening on {local}"));
    if let Some(n) = env_num::<usize>("EMIT_EVENTS") {
        std::thread::spawn(move || emit_events(n));
    }

    for conn in listener.incoming() {
        if DRAINING.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let cfg = cfg.clone();
        std::thread::spawn(move || serve_connection(stream, &cfg));
    }
    // Close the listening socket: new connections are refused from now on. The drain thread
    // exits the process once the requests in flight are answered.
    drop(listener);
    loop {
        std::thread::park();
    }
}

/// Waits for SIGTERM/SIGINT, then drains: wake the accept loop so it closes the listener,
/// wait until no request is in flight, exit 0.
fn drain_on_signal(local: SocketAddr) {
    while !signal::received() {
        std::thread::sleep(Duration::from_millis(5));
    }
    DRAINING.store(true, Ordering::SeqCst);
    log(format_args!(
        "wisp-testapp: draining {} request(s) in flight",
        IN_FLIGHT.load(Ordering::SeqCst)
    ));
    let wake_ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let _ = TcpStream::connect_timeout(
        &SocketAddr::new(wake_ip, local.port()),
        Duration::from_secs(1),
    );
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    log(format_args!("wisp-testapp: drained, exiting"));
    std::process::exit(0);
}

/// Decrements [`IN_FLIGHT`] when a request is answered (or abandoned).
struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(stream: TcpStream, cfg: &Config) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut guard = None;
        let parsed = http::read_request(&mut reader, || {
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            guard = Some(InFlight);
        });
        let req = match parsed {
            Ok(Some(req)) => req,
            Ok(None) | Err(ParseError::Io) => return,
            Err(ParseError::Bad(why)) => {
                let body = format!("bad request: {why}\n");
                let _ = http::write_response(
                    &mut writer,
                    400,
                    "text/plain",
                    body.as_bytes(),
                    false,
                    false,
                );
                return;
            }
            Err(ParseError::TooLarge(what)) => {
                let code = if what == "body" { 413 } else { 431 };
                let _ = http::write_response(
                    &mut writer,
                    code,
                    "text/plain",
                    b"too large\n",
                    false,
                    false,
                );
                return;
            }
        };
        let started = Instant::now();
        let keep_alive = req.keep_alive() && !DRAINING.load(Ordering::SeqCst);
        let (code, ok) = match respond(&req, &mut writer, keep_alive, cfg) {
            Ok(code) => (code, true),
            Err(_) => (0, false),
        };
        log(format_args!(
            "{} {} {} {}us",
            req.method,
            req.target,
            code,
            started.elapsed().as_micros()
        ));
        drop(guard);
        if req.path != "/healthz" {
            let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
            if cfg.crash_after > 0 && served >= cfg.crash_after {
                eprintln!(
                    "wisp-testapp: CRASH_AFTER={} reached, exiting with status 3",
                    cfg.crash_after
                );
                std::process::exit(3);
            }
        }
        if !ok || !keep_alive {
            return;
        }
    }
}

/// Answers one request; returns the status sent.
fn respond(
    req: &Request,
    w: &mut TcpStream,
    keep_alive: bool,
    cfg: &Config,
) -> std::io::Result<u16> {
    let head_only = req.method == "HEAD";
    if req.path == "/healthz" {
        let (code, body): (u16, &[u8]) = if cfg.healthz_fail {
            (500, b"unhealthy\n")
        } else {
            (200, b"ok\n")
        };
        http::write_response(w, code, "text/plain", body, keep_alive, head_only)?;
        return Ok(code);
    }
    if let Some(ms) = req.param("sleep").and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let mut code = req
        .param("status")
        .and_then(|v| v.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .unwrap_or(200);
    if let Some(id) = req.header("ce-id") {
        let attempt = {
            let mut seen = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if req
            .param("fail")
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| attempt <= n)
        {
            code = 503;
        }
        record_event(req, code);
        if code < 300
            && let Some(ty) = req.param("reply")
        {
            let reply_id = format!("reply-{id}");
            let content_type = req.header("content-type").unwrap_or("application/json");
            let headers = [
                ("ce-specversion", "1.0"),
                ("ce-id", reply_id.as_str()),
                ("ce-source", "/testapp"),
                ("ce-type", ty),
            ];
            http::write_response_with(
                w,
                code,
                content_type,
                &headers,
                &req.body,
                keep_alive,
                head_only,
            )?;
            return Ok(code);
        }
    }
    if let Some(n) = req.param("stream").and_then(|v| v.parse::<usize>().ok()) {
        http::write_chunked_head(w, code, "text/plain", keep_alive)?;
        if !head_only {
            for i in 0..n {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                http::write_chunk(w, format!("chunk {i}\n").as_bytes())?;
            }
        }
        http::end_chunks(w)?;
        return Ok(code);
    }
    if req.param("echo").is_some_and(|v| v != "0") {
        let body = echo(req);
        http::write_response(
            w,
            code,
            "application/json",
            body.as_bytes(),
            keep_alive,
            head_only,
        )?;
        return Ok(code);
    }
    if let Some(n) = req.param("body").and_then(|v| v.parse::<usize>().ok()) {
        let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        http::write_response(
            w,
            code,
            "application/octet-stream",
            &body,
            keep_alive,
            head_only,
        )?;
        return Ok(code);
    }
    let body = format!("Hello {}!\n", cfg.target);
    http::write_response(
        w,
        code,
        "text/plain",
        body.as_bytes(),
        keep_alive,
        head_only,
    )?;
    Ok(code)
}

/// `EMIT_EVENTS=N`: N events to `$K_SINK` (an `http://host:port/path` URL).
fn emit_events(n: usize) {
    let Ok(sink) = std::env::var("K_SINK") else {
        log(format_args!(
            "wisp-testapp: EMIT_EVENTS is set but K_SINK is not"
        ));
        return;
    };
    let Some(rest) = sink.strip_prefix("http://") else {
        log(format_args!(
            "wisp-testapp: K_SINK={sink:?} is not an http:// URL"
        ));
        return;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // `{"extensions":{"k":"v"}}`, flat enough to pick apart without a JSON parser.
    let mut extensions = Vec::new();
    if let Ok(o) = std::env::var("K_CE_OVERRIDES")
        && let Some(inner) = o
            .split_once("\"extensions\"")
            .and_then(|(_, r)| r.split_once('{'))
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(i, _)| i.to_string())
    {
        for pair in inner.split(',') {
            if let Some((k, v)) = pair.split_once(':') {
                extensions.push((
                    k.trim().trim_matches('"').to_string(),
                    v.trim().trim_matches('"').to_string(),
                ));
            }
        }
    }
    let revision = std::env::var("K_REVISION").unwrap_or_else(|_| "testapp".into());
    for i in 0..n {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nce-specversion: 1.0\r\nce-id: {revision}-{i}\r\nce-source: /testapp\r\nce-type: dev.wisp.testapp.emitted\r\nContent-Type: text/plain\r\n"
        );
        for (k, v) in &extensions {
            head.push_str(&format!("ce-{k}: {v}\r\n"));
        }
        let body = format!("{i}");
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        for _ in 0..300 {
            let sent = TcpStream::connect(authority).and_then(|mut s| {
                s.write_all(head.as_bytes())?;
                let mut answer = String::new();
                std::io::Read::read_to_string(&mut s, &mut answer)?;
                Ok(answer)
            });
            if sent.as_deref().is_ok_and(|a| a.starts_with("HTTP/1.1 2")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    log(format_args!("wisp-testapp: emitted {n} events to {sink}"));
}

/// Attempts per CloudEvent id, for `fail=N`.
static ATTEMPTS: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Appends one attempt to `$RECORD_EVENTS`, one line in one write.
fn record_event(req: &Request, code: u16) {
    use http::json_string as js;
    let Ok(path) = std::env::var("RECORD_EVENTS") else {
        return;
    };
    let attrs: Vec<String> = req
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            k.strip_prefix("ce-")
                .map(|name| format!("{}:{}", js(name), js(&http::percent_decode(v))))
        })
        .collect();
    let query: Vec<String> = req
        .query
        .iter()
        .map(|(k, v)| format!("{}:{}", js(k), js(v)))
        .collect();
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let line = format!(
        "{{\"path\":{},\"query\":{{{}}},\"attributes\":{{{}}},\"content_type\":{},\"traceparent\":{},\"body\":{},\"status\":{code},\"at_ms\":{ms}}}\n",
        js(&req.path),
        query.join(","),
        attrs.join(","),
        js(req.header("content-type").unwrap_or("")),
        js(req.header("traceparent").unwrap_or("")),
        js(&String::from_utf8_lossy(&req.body)),
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The JSON document of `?echo=1`.
fn echo(req: &Request) -> String {
    use http::json_string as js;
    let obj = |pairs: &mut dyn Iterator<Item = (String, String)>| {
        let fields: Vec<String> = pairs
            .map(|(k, v)| format!("{}:{}", js(&k), js(&v)))
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    let mut names: Vec<String> = [
        "PORT",
        "K_SERVICE",
        "K_CONFIGURATION",
        "K_REVISION",
        "TARGET",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(extra) = req.param("env") {
        names.extend(
            extra
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let env = obj(&mut names
        .into_iter()
        .filter_map(|n| std::env::var(&n).ok().map(|v| (n, v))));
    // Repeated headers are joined with ", " as HTTP allows.
    let mut headers: Vec<(String, String)> = Vec::new();
    for (n, v) in &req.headers {
        match headers.iter_mut().find(|(k, _)| k == n) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(v);
            }
            None => headers.push((n.clone(), v.clone())),
        }
    }
    let headers = obj(&mut headers.into_iter());
    let query = obj(&mut req.query.iter().cloned());
    let args: Vec<String> = std::env::args().map(|a| js(&a)).collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "{{\"method\":{},\"path\":{},\"query\":{query},\"headers\":{headers},\"env\":{env},\"args\":[{}],\"cwd\":{},\"pid\":{},\"body_bytes\":{}}}\n",
        js(&req.method),
        js(&req.path),
        args.join(","),
        js(&cwd),
        std::process::id(),
        req.body.len()
    )
}

/// The one place this crate needs `unsafe`: installing a signal handler (std has no API for it
/// and the crate takes no dependencies).
mod signal {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RECEIVED: AtomicBool = AtomicBool::new(false);

    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    extern "C" fn on_signal(_signum: i32) {
        RECEIVED.store(true, Ordering::SeqCst);
    }

    /// Whether SIGTERM or SIGINT arrived.
    pub fn received() -> bool {
        RECEIVED.load(Ordering::SeqCst)
    }

    /// Routes SIGTERM and SIGINT to [`received`].
    #[allow(unsafe_code)]
    pub fn install() {
        unsafe extern "C" {
            fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        }
        // SAFETY: `signal` is libc's, declared with its C signature (`sighandler_t` is a
        // pointer-sized integer; the return value is ignored). The handler lives for the whole
        // program and only stores to an atomic, which is async-signal-safe. SIGTERM and SIGINT
        // are 15 and 2 on every Linux architecture.
        unsafe {
            signal(SIGTERM, on_signal);
            signal(SIGINT, on_signal);
        }
    }
}
