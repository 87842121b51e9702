//! The testapp binary on its own, over plain sockets: keep-alive, framing, parameters, start-up
//! failures and the SIGTERM drain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TESTAPP: &str = env!("CARGO_BIN_EXE_wisp-testapp");
const DEADLINE: Duration = Duration::from_secs(30);

struct App {
    child: Child,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> App {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(TESTAPP)
        .env_clear()
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn testapp");
    // It says when it listens.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    assert!(line.contains("listening on"), "{line:?}");
    // Keep draining stdout so the app never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    App { child, port }
}

fn connect(app: &App) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    let _ = s.set_read_timeout(Some(DEADLINE));
    s
}

/// Reads one response with a Content-Length body: (status, headers lower-cased, body).
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    (code, headers, body)
}

#[test]
fn keep_alive_and_parameters() {
    let app = start(&[("TARGET", "Tests")]);
    let s = connect(&app);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    for (target, want_code, want_body) in [
        ("/", 200, b"Hello Tests!\n".to_vec()),
        ("/?status=503", 503, b"Hello Tests!\n".to_vec()),
        ("/?body=30", 200, b"abcdefghijklmnopqrstuvwxyzabcd".to_vec()),
        ("/?sleep=20&status=201", 201, b"Hello Tests!\n".to_vec()),
        ("/healthz", 200, b"ok\n".to_vec()),
    ] {
        write!(w, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let (code, headers, body) = read_response(&mut r);
        assert_eq!(code, want_code, "{target}");
        assert_eq!(body, want_body, "{target}");
        assert!(!headers.iter().any(|(n, _)| n == "connection"), "{target}");
    }
    // A POST with a body on the same connection, echoed.
    write!(
        w,
        "POST /e?echo=1 HTTP/1.1\r\nHost: x\r\nX-Test: a\r\nX-Test: b\r\nContent-Length: 4\r\n\r\nabcd"
    )
    .expect("send");
    let (code, _, body) = read_response(&mut r);
    assert_eq!(code, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(r#""method":"POST""#), "{body}");
    assert!(body.contains(r#""x-test":"a, b""#), "{body}");
    assert!(body.contains(r#""body_bytes":4"#), "{body}");
    assert!(body.contains(r#""TARGET":"Tests""#), "{body}");
}

#[test]
fn http10_and_connection_close() {
    let app = start(&[]);
    let mut s = connect(&app);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read to close");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.contains("Connection: close"), "{raw}");
    assert!(raw.ends_with("Hello World!\n"), "{raw}");

    let mut s = connect(&app);
    s.write_all(b"BROKEN\r\n\r\n").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read to close");
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
}

#[test]
fn streams_chunks() {
    let app = start(&[]);
    let mut s = connect(&app);
    s.write_all(b"GET /?stream=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.contains("Transfer-Encoding: chunked"), "{raw}");
    let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    assert_eq!(
        body,
        "8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n8\r\nchunk 2\n\r\n8\r\nchunk 3\n\r\n8\r\nchunk 4\n\r\n0\r\n\r\n"
    );
}

#[test]
fn healthz_can_fail() {
    let app = start(&[("HEALTHZ_FAIL", "1")]);
    let mut s = connect(&app);
    s.write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 500 "), "{raw}");
}

#[test]
fn fail_to_start_exits_1_with_a_message() {
    let out = Command::new(TESTAPP)
        .env_clear()
        .env("FAIL_TO_START", "1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL_TO_START"));
}

#[test]
fn crash_after_n_requests_exits_3() {
    let mut app = start(&[("CRASH_AFTER", "2")]);
    for _ in 0..2 {
        let mut s = connect(&app);
        let _ = s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    }
    let status = wait_exit(&mut app.child);
    assert_eq!(status.code(), Some(3));
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        assert!(Instant::now() < until, "the app did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let mut app = start(&[]);
    let mut s = connect(&app);
    s.write_all(b"GET /?stream=20 HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut r = BufReader::new(s);
    // Wait for the first chunk: the request is in flight.
    let mut seen = String::new();
    while !seen.contains("chunk 0") {
        let mut l = String::new();
        assert!(r.read_line(&mut l).expect("read") > 0, "closed early");
        seen.push_str(&l);
    }
    let killed = Command::new("kill")
        .args(["-TERM", &app.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("the rest");
    assert!(rest.contains("chunk 19\n"), "{rest}");
    assert!(rest.ends_with("0\r\n\r\n"), "{rest}");
    assert_eq!(wait_exit(&mut app.child).code(), Some(0));
    assert!(TcpStream::connect(("127.0.0.1", app.port)).is_err());
}
