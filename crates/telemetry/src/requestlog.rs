//! The request log: one JSON line per request the gateway answered, in a size-capped file.
//!
//! Why lines are formatted on the request's task straight into a buffer, and written by a
//! thread of its own: a write may wait on the disk, and the request path must never wait.
//! Each worker thread appends to its own buffer (one of [`SHARDS`], so the lock guarding it is
//! only ever contended by the writer's swap), with no allocation per line; every
//! [`BATCH_PAUSE`] the writer swaps the buffers out and writes them with one system call
//! each. A buffer past [`SHARD_CAP`] (the writer fell behind) drops further lines, counted in
//! `wisp_request_log_dropped_total`, rather than slowing requests down. An idle writer parks
//! until the first line of the next busy spell wakes it; under load no request pays for a
//! wake-up. Lines of different threads may therefore be out of order by up to a pause.
//!
//! The shape follows the request log template Knative documents (`httpRequest` with
//! `requestMethod`, `requestUrl`, `status`, `latency`, ... as Google Cloud's `LogEntry`
//! reads it), with wisp's routing facts beside it:
//!
//! ```text
//! {"time":"2026-11-20T10:00:00.123456Z","httpRequest":{"requestMethod":"GET",
//!  "requestUrl":"/hello?x=1","requestSize":"0","status":200,"responseSize":"12",
//!  "userAgent":"curl/8.5.0","remoteIp":"127.0.0.1","serverIp":"127.0.0.1:40113",
//!  "latency":"0.000412s","protocol":"HTTP/1.1"},"traceId":"4bf92f3577b34da6a3ce929d0e0e4736",
//!  "host":"hello.default.localhost","namespace":"default","service":"hello",
//!  "configuration":"hello","revision":"hello-00001","held":false}
//! ```
//!
//! `time` is always UTC with six decimals, so lines sort (and `since` filters) as strings.
//! Rotation: when the file would pass its cap it becomes `requests.log.1` (replacing the
//! previous one), so the log takes at most twice the cap on disk.

use std::cell::Cell;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use hyper_version::version_text;
use prometheus_client::encoding::DescriptorEncoder;
use wisp_gateway::RequestRecord;

use crate::expose;
use crate::metric::Counter;
use crate::serving::RevisionLabels;

/// Default cap of `requests.log` before it rotates.
pub const DEFAULT_MAX_BYTES: u64 = 32 << 20;
/// Buffers lines are appended to, one per worker thread (threads beyond share them).
pub const SHARDS: usize = 8;
/// Bytes one buffer holds at most between two writes; lines past it are dropped.
pub const SHARD_CAP: usize = 4 << 20;
/// Between two looks at the buffers, the writer waits this long for lines to gather (a line
/// is on disk at most about this much after its request ended).
pub const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// What the writer did.
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: Counter,
    pub dropped: Counter,
}

/// What the request path and the writer share.
#[derive(Debug)]
struct Shared {
    shards: [Mutex<String>; SHARDS],
    /// The writer found nothing and parked: the next line wakes it.
    parked: AtomicBool,
    /// Every handle is gone: write what is left and stop.
    closed: AtomicBool,
    writer: std::sync::OnceLock<std::thread::Thread>,
    stats: LogStats,
}

impl Shared {
    fn shard(&self, i: usize) -> MutexGuard<'_, String> {
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

/// This thread's buffer.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(Some(i));
            i
        }
    })
}

/// Ends the writer when the last handle goes.
#[derive(Debug)]
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake();
    }
}

/// The request path's side: cheap to clone, never blocks on the disk.
#[derive(Debug, Clone)]
pub struct RequestLog {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
    path: Arc<Path>,
}

impl RequestLog {
    /// Opens (appends to) `path`, creating its directory, and starts the writer thread. It
    /// writes what is left and ends when every clone of the returned handle is gone.
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<RequestLog> {
        let writer = Writer::open(path.clone(), max_bytes.max(1))?;
        let shared = Arc::new(Shared {
            shards: std::array::from_fn(|_| Mutex::new(String::new())),
            parked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            writer: std::sync::OnceLock::new(),
            stats: LogStats::default(),
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("wisp-request-log".into())
            .spawn(move || writer.run(&thread_shared))?;
        let _ = shared.writer.set(handle.thread().clone());
        Ok(RequestLog {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// Appends the line of `r` to this thread's buffer; drops it (counted) when the writer
    /// is behind.
    pub fn record(&self, r: &RequestRecord<'_>, labels: Option<&RevisionLabels>) {
        {
            let mut buf = self.shared.shard(shard_index());
            if buf.len() >= SHARD_CAP {
                drop(buf);
                self.shared.stats.dropped.inc();
                return;
            }
            format_line(&mut buf, r, labels);
            buf.push('\n');
        }
        if self.shared.parked.load(Ordering::SeqCst)
            && self.shared.parked.swap(false, Ordering::SeqCst)
        {
            self.shared.wake();
        }
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        expose::counters(
            enc,
            "wisp_request_log_lines",
            "Request log lines written",
            &[(Vec::new(), self.stats().written.get())],
        )?;
        expose::counters(
            enc,
            "wisp_request_log_dropped",
            "Request log lines dropped because the writer was behind (or the file could not be written)",
            &[(Vec::new(), self.stats().dropped.get())],
        )
    }
}

mod hyper_version {
    use hyper::Version;

    pub fn version_text(v: Version) -> &'static str {
        match v {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP",
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed and
/// not all zeros.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let id = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (hex(version, 2)
        && version != "ff"
        && hex(id, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && id.bytes().any(|b| b != b'0'))
    .then_some(id)
}

/// RFC 3339, UTC, microseconds: fixed width, so lines compare as strings.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Appends `s` as a JSON string (quoted, escaped).
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    json_str(out, value);
}

/// The JSON line of `r` (without newline), appended to `out`.
pub fn format_line(out: &mut String, r: &RequestRecord<'_>, labels: Option<&RevisionLabels>) {
    // Numbers through itoa and literals through push_str: `write!` costs more than the rest
    // of the line together.
    let mut n = itoa::Buffer::new();
    let _ = write!(
        out,
        "{{\"time\":\"{}\",\"httpRequest\":{{\"requestMethod\":",
        humantime::format_rfc3339_micros(r.start)
    );
    json_str(out, r.method.as_str());
    let url = r.uri.path_and_query().map_or("/", |p| p.as_str());
    field(out, "requestUrl", url);
    if let Some(size) = r.request_size {
        out.push_str(",\"requestSize\":\"");
        out.push_str(n.format(size));
        out.push('"');
    }
    out.push_str(",\"status\":");
    out.push_str(n.format(r.status));
    out.push_str(",\"responseSize\":\"");
    out.push_str(n.format(r.response_size));
    out.push('"');
    if let Some(ua) = r.user_agent {
        field(out, "userAgent", ua);
    }
    let _ = write!(out, ",\"remoteIp\":\"{}\"", r.remote);
    if let Some(replica) = r.replica {
        let _ = write!(out, ",\"serverIp\":\"{replica}\"");
    }
    if let Some(referer) = r.referer {
        field(out, "referer", referer);
    }
    let micros = r.latency.as_micros();
    out.push_str(",\"latency\":\"");
    out.push_str(n.format(micros / 1_000_000));
    out.push('.');
    let frac = n.format(micros % 1_000_000);
    for _ in frac.len()..6 {
        out.push('0');
    }
    out.push_str(frac);
    out.push_str("s\",\"protocol\":\"");
    out.push_str(version_text(r.version));
    out.push_str("\"}");
    if let Some(id) = r.traceparent.and_then(trace_id) {
        field(out, "traceId", id);
    }
    field(out, "host", r.host);
    match (labels, r.revision) {
        (Some(l), _) => {
            field(out, "namespace", &l.namespace);
            if !l.service.is_empty() {
                field(out, "service", &l.service);
            }
            if !l.configuration.is_empty() {
                field(out, "configuration", &l.configuration);
            }
            field(out, "revision", &l.revision);
        }
        (None, Some(key)) => {
            field(out, "namespace", &key.namespace);
            field(out, "revision", &key.name);
        }
        (None, None) => {}
    }
    out.push_str(if r.held {
        ",\"held\":true}"
    } else {
        ",\"held\":false}"
    });
}

/// The file side: owned by the writer thread.
struct Writer {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    size: u64,
}

impl Writer {
    fn open(path: PathBuf, max_bytes: u64) -> io::Result<Writer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path,
            max_bytes,
            file,
            size,
        })
    }

    fn rotated(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".1");
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, Self::rotated(&self.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Writes `chunk` (whole lines), rotating first at a line that would take the file past
    /// its cap.
    fn write_chunk(&mut self, chunk: &str) -> io::Result<()> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let room =
                usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
            // The longest run of whole lines that still fits.
            let fits = if rest.len() <= room {
                rest.len()
            } else {
                rest[..room].rfind('\n').map_or(0, |i| i + 1)
            };
            let take = match fits {
                0 if self.size > 0 => {
                    self.rotate()?;
                    continue;
                }
                // A line longer than the cap: whole, into the fresh file.
                0 => rest.find('\n').map_or(rest.len(), |i| i + 1),
                n => n,
            };
            self.file.write_all(&rest.as_bytes()[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    fn run(mut self, shared: &Shared) {
        let mut spare = String::new();
        let mut warned = false;
        loop {
            let mut wrote = false;
            for i in 0..SHARDS {
                {
                    let mut buf = shared.shard(i);
                    if buf.is_empty() {
                        continue;
                    }
                    std::mem::swap(&mut *buf, &mut spare);
                }
                wrote = true;
                let lines = spare.bytes().filter(|b| *b == b'\n').count() as u64;
                match self.write_chunk(&spare) {
                    Ok(()) => shared.stats.written.add(lines),
                    Err(e) => {
                        shared.stats.dropped.add(lines);
                        if !warned {
                            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the request log; lines are dropped");
                            warned = true;
                        }
                    }
                }
                spare.clear();
            }
            if wrote {
                std::thread::sleep(BATCH_PAUSE);
                continue;
            }
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            // Nothing came in a whole pause: park until a line (or the end) wakes us. The
            // flag is set before looking once more, so a line appended meanwhile is seen
            // either here or by its writer, which then unparks us.
            shared.parked.store(true, Ordering::SeqCst);
            let empty = (0..SHARDS).all(|i| shared.shard(i).is_empty());
            if empty && !shared.closed.load(Ordering::SeqCst) {
                std::thread::park();
            }
            shared.parked.store(false, Ordering::SeqCst);
        }
    }
}

/// The log files to read, oldest first.
pub fn files(path: &Path) -> [PathBuf; 2] {
    [Writer::rotated(path), path.to_path_buf()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use hyper::{Method, Uri, Version};
    use wisp_gateway::RevisionKey;

    fn record<'a>(method: &'a Method, uri: &'a Uri, key: &'a RevisionKey) -> RequestRecord<'a> {
        RequestRecord {
            start: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_001),
            latency: Duration::from_micros(1234),
            method,
            version: Version::HTTP_11,
            host: "hello.default.localhost",
            uri,
            status: 200,
            request_size: Some(0),
            response_size: 12,
            revision: Some(key),
            replica: Some(SocketAddr::from(([127, 0, 0, 1], 40113))),
            held: true,
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: Some("curl/8 \"quoted\"\n"),
            referer: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            trace: wisp_gateway::trace::HopTrace::of(None, false),
            held_for: None,
        }
    }

    #[test]
    fn a_line_is_json_with_knatives_fields_and_wisps() {
        let (m, u, k) = (
            Method::GET,
            Uri::from_static("/a/b?x=1&y=%222%22"),
            RevisionKey::new("default", "hello-00001"),
        );
        let labels = RevisionLabels {
            namespace: "default".into(),
            service: "hello".into(),
            configuration: "hello".into(),
            revision: "hello-00001".into(),
        };
        let mut line = String::new();
        format_line(&mut line, &record(&m, &u, &k), Some(&labels));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.000001Z");
        let h = &v["httpRequest"];
        assert_eq!(h["requestMethod"], "GET");
        assert_eq!(h["requestUrl"], "/a/b?x=1&y=%222%22");
        assert_eq!(h["requestSize"], "0");
        assert_eq!(h["status"], 200);
        assert_eq!(h["responseSize"], "12");
        assert_eq!(h["userAgent"], "curl/8 \"quoted\"\n");
        assert_eq!(h["remoteIp"], "127.0.0.1");
        assert_eq!(h["serverIp"], "127.0.0.1:40113");
        assert_eq!(h["latency"], "0.001234s");
        assert_eq!(h["protocol"], "HTTP/1.1");
        assert!(h.get("referer").is_none());
        assert_eq!(v["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["host"], "hello.default.localhost");
        assert_eq!(v["service"], "hello");
        assert_eq!(v["revision"], "hello-00001");
        assert_eq!(v["held"], true);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn unrouted_requests_have_no_revision() {
        let (m, u, k) = (
            Method::POST,
            Uri::from_static("/"),
            RevisionKey::new("a", "b"),
        );
        let mut r = record(&m, &u, &k);
        r.revision = None;
        r.replica = None;
        r.request_size = None;
        r.traceparent = None;
        let mut line = String::new();
        format_line(&mut line, &r, None);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("revision").is_none());
        assert!(v.get("traceId").is_none());
        assert!(v["httpRequest"].get("requestSize").is_none());
        assert!(v["httpRequest"].get("serverIp").is_none());
    }

    #[test]
    fn trace_ids_only_from_well_formed_traceparents() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id(&format!("00-{id}-00f067aa0ba902b7-01")), Some(id));
        assert_eq!(trace_id(&format!("00-{id}-00f067aa0ba902b7")), None);
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            trace_id(&format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase())),
            None
        );
        assert_eq!(trace_id(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
        assert_eq!(trace_id("garbage"), None);
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\u{1}b\u{7f}\\");
        assert_eq!(s, "\"a\\u0001b\\u007f\\\\\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\u{1}b\u{7f}\\");
    }

    #[test]
    fn the_writer_rotates_at_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("requests.log");
        let (m, u, k) = (
            Method::GET,
            Uri::from_static("/"),
            RevisionKey::new("a", "b"),
        );
        {
            let log = RequestLog::open(path.clone(), 2048).unwrap();
            for _ in 0..20 {
                log.record(&record(&m, &u, &k), None);
            }
            // Dropping the last handle ends the writer once the buffers are written.
            let shared = log.shared.clone();
            let stats = &shared.stats;
            drop(log);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while stats.written.get() + stats.dropped.get() < 20 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "writer did not finish"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(stats.written.get(), 20);
        }
        let [old, new] = files(&path);
        let lines = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .count()
        };
        assert!(std::fs::metadata(&new).unwrap().len() <= 2048);
        assert!(lines(&old) > 0, "rotated");
        assert!(lines(&old) + lines(&new) <= 20);
        for l in std::fs::read_to_string(&new).unwrap().lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
}
