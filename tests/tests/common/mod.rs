//! The end-to-end harness: the real `wisp` binary as a child process on its own data dir and
//! ports, its CLI, real `kubectl`, and a tiny HTTP/1.1 client over `std::net`.
//!
//! Every test file includes this module (`mod common;`); not every file uses every helper.
//!
//! The binaries are the workspace's `target/debug/wisp` and `target/debug/wisp-testapp` (the
//! app the data-plane tests deploy), or the same under `$CARGO_TARGET_DIR`, or `$WISP_BIN` and
//! `$WISP_TESTAPP_BIN`: build them first with `cargo build -p wisp -p wisp-testapp`; a missing
//! or stale one fails the test saying so. Nothing here sleeps as an assertion: waiting is
//! polling with a deadline ([`wait_for`]), and timings are never checked.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long anything may take to converge before a test gives up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The `wisp` binary under test.
pub fn wisp_bin() -> PathBuf {
    built_bin("wisp", "WISP_BIN")
}

/// The test app the data-plane tests deploy (`crates/testapp`, binary `wisp-testapp`), as an
/// absolute path (a Service's `command`), or `$WISP_TESTAPP_BIN`.
pub fn testapp_bin() -> PathBuf {
    built_bin("wisp-testapp", "WISP_TESTAPP_BIN")
}

/// The command that builds what these tests run (the README's).
const BUILD: &str = "cargo build -p wisp -p wisp-testapp";

/// `target/debug/{name}` (or under `$CARGO_TARGET_DIR`, or `$env_var`): it must exist and be
/// newer than its sources.
fn built_bin(name: &str, env_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_dir().join(p)
            }
        })
        .unwrap_or_else(|| workspace_dir().join("target"));
    let bin = target.join("debug").join(name);
    assert!(
        bin.is_file(),
        "the {name} binary {} does not exist: run `{BUILD}` first (or set {env_var})",
        bin.display()
    );
    type Checked = std::sync::Mutex<std::collections::BTreeMap<PathBuf, Result<(), String>>>;
    static FRESH: std::sync::OnceLock<Checked> = std::sync::OnceLock::new();
    let verdict = FRESH
        .get_or_init(Checked::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(bin.clone())
        .or_insert_with(|| check_fresh(&bin))
        .clone();
    if let Err(e) = verdict {
        panic!("{e}");
    }
    bin
}

/// Refuses to test a stale binary: every source file its dep-info (`NAME.d`) lists must be
/// older than the binary.
fn check_fresh(bin: &Path) -> Result<(), String> {
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|e| format!("cannot stat {}: {e}", bin.display()))?;
    let Ok(depinfo) = std::fs::read_to_string(bin.with_extension("d")) else {
        return Ok(());
    };
    let deps = depinfo.split_once(": ").map(|(_, deps)| deps).unwrap_or("");
    // Paths are space-separated, with spaces inside a path escaped as `\ `.
    let escaped = deps.replace("\\ ", "\u{0}");
    for dep in escaped.split_whitespace() {
        let dep = dep.replace('\u{0}', " ");
        let newer = std::fs::metadata(&dep)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built);
        if newer {
            return Err(format!(
                "{} is older than {dep}: run `{BUILD}` before these tests",
                bin.display()
            ));
        }
    }
    Ok(())
}

/// The repository root (the workspace holding this `tests` package).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `examples/`.
pub fn example(name: &str) -> PathBuf {
    workspace_dir().join("examples").join(name)
}

/// Real kubectl; a missing kubectl fails the test (it is part of what wisp promises).
pub fn kubectl_bin() -> PathBuf {
    for p in ["/usr/bin/kubectl", "/usr/local/bin/kubectl"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("kubectl is not installed (looked in /usr/bin and /usr/local/bin): these tests need it");
}

/// Polls `f` until it returns `Ok`, or panics after [`DEADLINE`] saying what was awaited and
/// the last `Err` seen.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > DEADLINE => {
                panic!("timed out after {DEADLINE:?} waiting for {what}; last: {last}")
            }
            Err(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port")
}

/// What a command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics (with both streams) unless the command exited 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert!(self.ok, "command failed ({:?}):\n{self}", self.code);
        self
    }

    /// Panics (with both streams) unless the command exited non-zero.
    #[track_caller]
    pub fn failure(self) -> Run {
        assert!(
            !self.ok,
            "command succeeded but should have failed:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    Run::from(child.wait_with_output().expect("wait for command"))
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The body as JSON (panics with the body if it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response {} is not JSON ({e}): {}", self.status, self.body))
    }
}

/// A running `wisp serve`: killed (SIGKILL) when dropped. Its stderr goes to a log file that is
/// printed when a test panics while the daemon is alive.
pub struct Daemon {
    child: Option<Child>,
    pub api_port: u16,
    pub gateway_port: u16,
    /// The event plane's ingress (brokers, channels).
    pub events_port: u16,
    pub data_dir: PathBuf,
    /// A private directory for logs, kubectl's HOME and scratch files.
    pub scratch: PathBuf,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// A daemon on a fresh data dir.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// A daemon on a fresh data dir, with more flags for `wisp serve`
    /// (`&["--autoscaler", "stable-window=6s"]`).
    pub fn start_with(flags: &[&str]) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("wisp-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut d = Daemon::start_in_with(tmp.path(), flags);
        d._tmp = Some(tmp);
        d
    }

    /// A daemon whose state lives in `root/data` (so a test can restart on the same state).
    pub fn start_in(root: &Path) -> Daemon {
        Daemon::start_in_with(root, &[])
    }

    /// [`Daemon::start_in`] with more flags for `wisp serve`.
    pub fn start_in_with(root: &Path, flags: &[&str]) -> Daemon {
        Daemon::start_in_with_env(root, flags, &[])
    }

    /// [`Daemon::start_in_with`] with more variables in the daemon's environment
    /// (`&[("DOCKER_CONFIG", "/path")]`).
    pub fn start_in_with_env(root: &Path, flags: &[&str], env: &[(&str, &str)]) -> Daemon {
        let data_dir = root.join("data");
        let scratch = root.join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (api_port, gateway_port, events_port) = (free_port(), free_port(), free_port());
            let log = scratch.join(format!("wisp-{api_port}.log"));
            let logfile = std::fs::File::create(&log).expect("log file");
            let child = Command::new(wisp_bin())
                .arg("serve")
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--api-addr")
                .arg(format!("127.0.0.1:{api_port}"))
                .arg("--gateway-addr")
                .arg(format!("127.0.0.1:{gateway_port}"))
                .arg("--events-addr")
                .arg(format!("127.0.0.1:{events_port}"))
                .args(flags)
                .env("NO_COLOR", "1")
                .env_remove("WISP_SERVER")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(logfile.try_clone().expect("log file"))
                .stderr(logfile)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", wisp_bin().display()));
            let mut d = Daemon {
                child: Some(child),
                api_port,
                gateway_port,
                events_port,
                data_dir: data_dir.clone(),
                scratch: scratch.clone(),
                log,
                _tmp: None,
            };
            match d.wait_healthy() {
                Ok(()) => return d,
                Err(e) => {
                    let log = d.log_text();
                    d.kill();
                    // Another process took one of the ports between our probe and the bind.
                    if log.contains("cannot listen") && attempt < 5 {
                        continue;
                    }
                    panic!("wisp serve did not become healthy: {e}\n--- daemon log ---\n{log}");
                }
            }
        }
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("the daemon exited with {status}"));
            }
            if let Ok(r) = self.try_request("GET", "/healthz", None)
                && r.status == 200
            {
                return Ok(());
            }
            if start.elapsed() > DEADLINE {
                return Err("no answer on /healthz".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    #[track_caller]
    pub fn stop(&mut self) {
        if let Err(e) = self.stop_within(DEADLINE) {
            panic!("{e}\n{}", self.log_text());
        }
    }

    /// SIGTERM, and a clean exit within `limit`; on timeout the daemon is SIGKILLed and this
    /// says so.
    pub fn stop_within(&mut self, limit: Duration) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            let _ = child.kill();
            return Err(format!("cannot send SIGTERM to {pid}"));
        }
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("the daemon exited with {status} on SIGTERM"));
                }
                Ok(None) if start.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the daemon did not exit within {limit:?} of SIGTERM"
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot wait for the daemon: {e}")),
            }
        }
    }

    // ---- clients ------------------------------------------------------------------------

    /// Runs `wisp ARGS` against this daemon (through `WISP_SERVER`).
    pub fn wisp(&self, args: &[&str]) -> Run {
        self.wisp_stdin(args, None)
    }

    pub fn wisp_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(wisp_bin());
        cmd.args(args)
            .env("WISP_SERVER", self.url())
            .env("NO_COLOR", "1")
            .current_dir(workspace_dir());
        run(cmd, stdin)
    }

    /// The command `kubectl --server URL` with a private HOME (discovery cache) and no
    /// kubeconfig; add arguments and env, then [`Daemon::run`] it.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let home = self.scratch.join("home");
        std::fs::create_dir_all(&home).expect("kubectl home");
        let kubeconfig = self.scratch.join("kubeconfig");
        if !kubeconfig.exists() {
            std::fs::write(&kubeconfig, "").expect("empty kubeconfig");
        }
        let mut cmd = Command::new(kubectl_bin());
        cmd.arg("--server")
            .arg(self.url())
            .args(args)
            .env("HOME", &home)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBE_EDITOR")
            .current_dir(workspace_dir());
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        run(self.kubectl_cmd(args), None)
    }

    pub fn run(&self, cmd: Command) -> Run {
        run(cmd, None)
    }

    /// One HTTP/1.1 request to the API; connection errors are `Err`.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> std::io::Result<Response> {
        http_request(self.api_port, method, path, body)
    }

    /// A GET through the gateway with `Host: host`; it must get an answer.
    #[track_caller]
    pub fn gateway_get(&self, host: &str, path: &str) -> Response {
        http_request_to(self.gateway_port, host, "GET", path, None)
            .unwrap_or_else(|e| panic!("GET http://{host}{path} via the gateway: {e}"))
    }

    /// One HTTP request that must reach the server.
    #[track_caller]
    pub fn request(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Response {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET that must answer 200 with JSON.
    #[track_caller]
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.request("GET", path, None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    /// GET that answers the object, or `None` on 404.
    #[track_caller]
    pub fn get_opt(&self, path: &str) -> Option<Value> {
        let r = self.request("GET", path, None);
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("GET {path}: unexpected {s}: {}", r.body),
        }
    }

    #[track_caller]
    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, Some(("application/json", &body.to_string())))
    }

    #[track_caller]
    pub fn put_json(&self, path: &str, body: &Value) -> Response {
        self.request("PUT", path, Some(("application/json", &body.to_string())))
    }

    /// Opens `GET path` as a stream (a watch); read it with [`Stream::next_line`].
    pub fn stream(&self, path: &str) -> Stream {
        let host = format!("127.0.0.1:{}", self.api_port);
        open_stream(self.api_port, &host, path)
            .unwrap_or_else(|e| panic!("GET {path} as a stream: {e}"))
    }
}

/// Opens `GET path` with `Host: host` on `127.0.0.1:port` as a stream, once its head arrived;
/// read the body with [`Stream::next_line`].
pub fn open_stream(port: u16, host: &str, path: &str) -> std::io::Result<Stream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(DEADLINE))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut reader = BufReader::new(s);
    let (status, headers) = read_head(&mut reader)?;
    let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    Ok(Stream {
        status,
        reader,
        chunked,
        pending: Vec::new(),
        ended: false,
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!(
                "--- wisp daemon log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        self.kill();
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port`; connection errors are `Err`. Usable from threads
/// that do not own the [`Daemon`].
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> std::io::Result<Response> {
    http_request_to(port, &format!("127.0.0.1:{port}"), method, path, body)
}

/// [`http_request`] with a chosen `Host` header (for the gateway).
pub fn http_request_to(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> std::io::Result<Response> {
    http_request_within(port, host, method, path, body, DEADLINE)
}

/// [`http_request_to`] whose reads give up after `read_timeout` (an error, not a hang).
pub fn http_request_within(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
    read_timeout: Duration,
) -> std::io::Result<Response> {
    http_request_full(port, host, method, path, &[], body, read_timeout)
}

/// [`http_request_within`] with more request headers.
pub fn http_request_full(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
    read_timeout: Duration,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(read_timeout))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((ctype, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some((_, b)) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut reader = BufReader::new(s);
    let (status, headers) = read_head(&mut reader)?;
    let body = if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        while let Some(chunk) = read_chunk(&mut reader)? {
            body.extend(chunk);
        }
        body
    } else if let Some(n) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One chunk of a chunked body; `None` at the end.
fn read_chunk(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
    if size == 0 {
        return Ok(None);
    }
    let mut chunk = vec![0; size + 2];
    r.read_exact(&mut chunk)?;
    chunk.truncate(size);
    Ok(Some(chunk))
}

/// A streaming response read line by line (newline-delimited JSON of a watch).
pub struct Stream {
    pub status: u16,
    reader: BufReader<TcpStream>,
    chunked: bool,
    pending: Vec<u8>,
    ended: bool,
}

impl Stream {
    /// The next line, or `None` when the stream ended.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if self.ended {
                return None;
            }
            let more = if self.chunked {
                read_chunk(&mut self.reader).expect("read a watch chunk")
            } else {
                let mut buf = vec![0; 8192];
                let n = self.reader.read(&mut buf).expect("read a watch");
                buf.truncate(n);
                (n > 0).then_some(buf)
            };
            match more {
                Some(bytes) => self.pending.extend(bytes),
                None => self.ended = true,
            }
        }
    }

    /// The next line as JSON.
    pub fn next_json(&mut self) -> Option<Value> {
        self.next_line().map(|l| {
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {l}"))
        })
    }
}

// ---- object helpers -----------------------------------------------------------------------

pub const SERVING: &str = "/apis/serving.knative.dev/v1";

/// `/apis/serving.knative.dev/v1/namespaces/{ns}/{plural}[/{name}]`.
pub fn serving_path(ns: &str, plural: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{SERVING}/namespaces/{ns}/{plural}/{n}"),
        None => format!("{SERVING}/namespaces/{ns}/{plural}"),
    }
}

/// A string at a JSON pointer, or "".
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.resourceVersion` as a number.
#[track_caller]
pub fn rv(v: &Value) -> u64 {
    s(v, "/metadata/resourceVersion")
        .parse()
        .unwrap_or_else(|_| panic!("no resourceVersion in {v}"))
}

/// The names of a list's items.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| s(i, "/metadata/name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The status of condition `type` (`True`/`False`/`Unknown`), or "" when absent.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> &'a str {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

/// A minimal Knative Service running a command (wisp's extension), as JSON.
pub fn service_json(name: &str, target: &str) -> Value {
    serde_json::json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{
            "command": ["python3", "-m", "http.server", "--bind", "127.0.0.1", "$(PORT)"],
            "env": [{"name": "TARGET", "value": target}],
        }]}}},
    })
}

/// The same Service as YAML.
pub fn service_yaml(name: &str, target: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
        - command: [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"$(PORT)\"]
          env:
            - name: TARGET
              value: {target}
"
    )
}

/// A table printed by the CLI or kubectl: aligned columns under a header line. Cells are cut
/// at the header's column starts, so empty cells stay empty.
#[derive(Debug)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    #[track_caller]
    pub fn parse(text: &str) -> Table {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let head = lines
            .next()
            .unwrap_or_else(|| panic!("no table header in {text:?}"));
        let mut starts = Vec::new();
        let mut header = Vec::new();
        // A column starts after two or more spaces (headers such as "CONFIG NAME" hold one).
        let mut spaces = 2;
        for (i, c) in head.char_indices() {
            if c != ' ' && spaces >= 2 {
                starts.push(i);
            }
            spaces = if c == ' ' { spaces + 1 } else { 0 };
        }
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(head.len());
            header.push(head[start..end].trim().to_string());
        }
        let rows = lines
            .map(|l| {
                (0..starts.len())
                    .map(|n| {
                        let start = starts[n].min(l.len());
                        let end = starts.get(n + 1).copied().unwrap_or(l.len()).min(l.len());
                        l.get(start..end).unwrap_or("").trim().to_string()
                    })
                    .collect()
            })
            .collect();
        Table { header, rows }
    }

    /// The cell of column `col` in the row whose first cell is `first`.
    #[track_caller]
    pub fn cell(&self, first: &str, col: &str) -> &str {
        let c = self
            .header
            .iter()
            .position(|h| h == col)
            .unwrap_or_else(|| panic!("no column {col} in {:?}", self.header));
        let row = self
            .rows
            .iter()
            .find(|r| r.first().is_some_and(|f| f == first))
            .unwrap_or_else(|| panic!("no row {first} in {:?}", self.rows));
        &row[c]
    }

    /// The first cells of every row.
    pub fn firsts(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter_map(|r| r.first().map(String::as_str))
            .collect()
    }
}

// ---- the data plane: the test app, its processes, a keep-alive client ---------------------

/// The variable every test-app replica of the data-plane tests carries, with a value unique to
/// its test ([`unique`]): how a test finds its own processes among those of the tests running
/// beside it, and how [`Sweep`] kills them whatever happened.
pub const MARK: &str = "WISP_E2E_MARK";

/// A value no other test of any run on this machine uses.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// RFC 7386 merge of `patch` into `target` (`null` removes a key).
pub fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            let obj = target.as_object_mut().expect("an object");
            for (k, v) in fields {
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    merge(obj.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

/// A Knative Service whose one container runs the test app as a host process
/// (`command: [/abs/path/wisp-testapp]`, no image), with `env` in its environment,
/// `annotations` on its template and `spec_extras` merged into the template's `spec`
/// (`containerConcurrency`, `timeoutSeconds`, ...). Container fields (probes, another command)
/// go in with [`merge`] on [`container_mut`].
pub fn testapp_service(
    name: &str,
    env: &[(&str, &str)],
    annotations: &[(&str, &str)],
    spec_extras: Value,
) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
        .collect();
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let mut spec = serde_json::json!({"containers": [{
        "command": [testapp_bin().to_str().expect("a UTF-8 path")],
        "env": env,
    }]});
    merge(&mut spec, spec_extras);
    serde_json::json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": spec,
        }},
    })
}

/// The first container of a Service's template.
pub fn container_mut(svc: &mut Value) -> &mut Value {
    &mut svc["spec"]["template"]["spec"]["containers"][0]
}

/// Condition `type` of an object, whole.
pub fn cond<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
}

/// `(status, reason, message)` of condition `type`, empty strings when absent.
pub fn cond_parts<'a>(obj: &'a Value, type_: &str) -> (&'a str, &'a str, &'a str) {
    match cond(obj, type_) {
        Some(c) => (s(c, "/status"), s(c, "/reason"), s(c, "/message")),
        None => ("", "", ""),
    }
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` is a live process (zombies are dead: they only wait to be reaped).
pub fn pid_alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|st| st != 'Z' && st != 'X')
}

/// Live processes of this user whose environment holds `key=value`, by pid.
pub fn pids_with_env(key: &str, value: &str) -> Vec<u32> {
    let want = format!("{key}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
        })
        .filter(|pid| pid_alive(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Live processes carrying [`MARK`]`=mark`.
pub fn marked_pids(mark: &str) -> Vec<u32> {
    pids_with_env(MARK, mark)
}

/// SIGKILLs every process carrying [`MARK`]`=mark` when dropped, so that no replica outlives
/// its test, even one that failed half-way. Declare it before the [`Daemon`]: it then drops
/// after it.
pub struct Sweep(pub String);

impl Drop for Sweep {
    fn drop(&mut self) {
        for pid in marked_pids(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Daemon {
    fn obj(&self, plural: &str, name: &str) -> Option<Value> {
        self.get_opt(&serving_path("default", plural, Some(name)))
    }

    /// Service `name` of namespace `default`, if it exists.
    pub fn service(&self, name: &str) -> Option<Value> {
        self.obj("services", name)
    }

    pub fn revision(&self, name: &str) -> Option<Value> {
        self.obj("revisions", name)
    }

    pub fn route(&self, name: &str) -> Option<Value> {
        self.obj("routes", name)
    }

    /// POSTs a Service into `default`; it must be created.
    #[track_caller]
    pub fn create_service(&self, svc: &Value) {
        let r = self.post_json(&serving_path("default", "services", None), svc);
        assert_eq!(
            r.status, 201,
            "create {}: {}",
            svc["metadata"]["name"], r.body
        );
    }

    /// Merge-patches Service `name`; it must succeed.
    #[track_caller]
    pub fn patch_service(&self, name: &str, patch: &Value) -> Value {
        let path = serving_path("default", "services", Some(name));
        let r = self.request(
            "PATCH",
            &path,
            Some(("application/merge-patch+json", &patch.to_string())),
        );
        assert_eq!(r.status, 200, "patch {name}: {}", r.body);
        r.json()
    }

    /// Waits until Service `name` is Ready with its latest created revision ready, and returns
    /// it.
    #[track_caller]
    pub fn wait_service_ready(&self, name: &str) -> Value {
        wait_for(&format!("service {name} Ready"), || {
            let svc = self.service(name).ok_or("absent")?;
            let latest = s(&svc, "/status/latestCreatedRevisionName");
            if condition(&svc, "Ready") == "True"
                && !latest.is_empty()
                && s(&svc, "/status/latestReadyRevisionName") == latest
                && svc["status"]["observedGeneration"] == svc["metadata"]["generation"]
            {
                Ok(svc)
            } else {
                Err(svc["status"].to_string())
            }
        })
    }

    /// A GET through the gateway whose reads give up after `read_timeout`.
    pub fn gateway_get_within(
        &self,
        host: &str,
        path: &str,
        read_timeout: Duration,
    ) -> std::io::Result<Response> {
        http_request_within(self.gateway_port, host, "GET", path, None, read_timeout)
    }

    /// A keep-alive client of the gateway for `host`.
    pub fn client(&self, host: &str) -> Client {
        Client::new(self.gateway_port, host)
    }
}

/// HTTP/1.1 GETs over one kept-alive connection (reconnecting when the server closes it): for
/// thousands of requests without thousands of sockets in TIME_WAIT.
pub struct Client {
    port: u16,
    host: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(port: u16, host: &str) -> Client {
        Client {
            port,
            host: host.to_string(),
            conn: None,
        }
    }

    /// `GET path`; a connection the server had closed is retried once on a new one.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with `headers` and `body` (a `Content-Length` is added); retried once on a
    /// new connection like [`Client::get`], so it may arrive twice.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        self.request("POST", path, headers, body)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        loop {
            let fresh = self.conn.is_none();
            if fresh {
                let s = TcpStream::connect(("127.0.0.1", self.port))?;
                s.set_read_timeout(Some(DEADLINE))?;
                s.set_nodelay(true)?;
                self.conn = Some(BufReader::new(s));
            }
            match self.exchange(method, path, headers, body) {
                Ok((resp, keep)) => {
                    if !keep {
                        self.conn = None;
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    self.conn = None;
                    if fresh {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(Response, bool)> {
        let conn = self.conn.as_mut().expect("connected");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        conn.get_mut().write_all(&bytes)?;
        let (status, headers) = read_head(conn)?;
        let mut keep = !header(&headers, "connection").is_some_and(|v| v.contains("close"));
        let body = if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            while let Some(chunk) = read_chunk(conn)? {
                body.extend(chunk);
            }
            // The empty line after the last chunk (no trailers expected).
            let mut end = String::new();
            conn.read_line(&mut end)?;
            body
        } else if let Some(n) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
            let mut body = vec![0; n];
            conn.read_exact(&mut body)?;
            body
        } else {
            keep = false;
            let mut body = Vec::new();
            conn.read_to_end(&mut body)?;
            body
        };
        Ok((
            Response {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            keep,
        ))
    }
}
