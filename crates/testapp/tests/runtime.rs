//! The runtime's process backend driving the real `wisp-testapp` binary: readiness on `PORT`,
//! the runtime contract's environment, crashes and back-off, graceful drain, logs, HTTP probes.
//!
//! These tests live here rather than in `crates/runtime/tests` because only this package's
//! tests get `CARGO_BIN_EXE_wisp-testapp`, with Cargo building the binary first; the runtime's
//! own tests would have to find and build it themselves (running cargo from inside a test
//! contends for cargo's build lock). No test asserts on wall-clock durations.

#[path = "../../runtime/tests/support/mod.rs"]
mod support;
use support::{DEADLINE, wait_status};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wisp_api::core::{
    Container, ContainerPort, EnvVar, HttpGetAction, IntOrString, Probe, TcpSocketAction,
};
use wisp_runtime::{
    Backend, Phase, ProcessBackend, ProcessOptions, ReplicaHandle, ReplicaSpec, RevisionRef,
    read_tail,
};

const TESTAPP: &str = env!("CARGO_BIN_EXE_wisp-testapp");

fn testapp(env: &[(&str, &str)]) -> Container {
    Container {
        command: vec![TESTAPP.into()],
        env: env
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.to_string(),
                value: v.to_string(),
                value_from: None,
            })
            .collect(),
        ..Container::default()
    }
}

fn spec(id: &str, container: Container) -> ReplicaSpec {
    support::spec(id, "hello", container, Duration::from_secs(10))
}

/// A GET over a fresh connection; returns (status, body).
async fn get(handle: &ReplicaHandle, target: &str) -> (u16, String) {
    let fut = async {
        let mut s = TcpStream::connect(handle.addr()).await.ok()?;
        let req = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    };
    timeout(DEADLINE, fut)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("GET {target} failed"))
}

/// A flat JSON object of strings (the `env` of `?echo=1`), parsed by hand: values the testapp
/// writes contain no escapes here.
fn json_object(doc: &str, key: &str) -> HashMap<String, String> {
    let start = doc
        .find(&format!("\"{key}\":{{"))
        .map(|i| i + key.len() + 4)
        .unwrap_or(0);
    let end = doc[start..].find('}').map(|i| start + i).unwrap_or(start);
    doc[start..end]
        .split("\",\"")
        .filter_map(|kv| {
            let kv = kv.trim_matches('"');
            let (k, v) = kv.split_once("\":\"")?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn starts_ready_on_port_with_the_runtime_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("workdir");
    let backend = ProcessBackend::new(dir.path());
    let mut c = testapp(&[("FOO", "bar"), ("TARGET", "$(FOO)-$(K_SERVICE)")]);
    c.args = vec![
        "--flag=$(FOO)".into(),
        "$$(FOO)".into(),
        "$(K_REVISION)".into(),
        "$(PORT)".into(),
    ];
    c.working_dir = work.path().display().to_string();
    // A probe naming the declared containerPort is pointed at the port wisp assigned.
    c.ports = vec![ContainerPort {
        name: "http1".into(),
        container_port: 8080,
        ..ContainerPort::default()
    }];
    c.readiness_probe = Some(Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::Int(8080),
            host: String::new(),
        }),
        ..Probe::default()
    });
    let asked = Instant::now();
    let handle = backend.start(spec("contract", c)).await.expect("start");
    let addr = timeout(DEADLINE, handle.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    // Informational only (the bench measures cold starts properly).
    eprintln!("start -> ready: {:?}", asked.elapsed());
    assert_eq!(addr, handle.addr());
    assert_eq!(handle.status().phase, Phase::Ready);

    let (code, body) = get(&handle, "/?echo=1&env=FOO,HOME,CARGO_MANIFEST_DIR").await;
    assert_eq!(code, 200, "{body}");
    let env = json_object(&body, "env");
    assert_eq!(env.get("PORT"), Some(&addr.port().to_string()));
    assert_eq!(env.get("K_SERVICE").map(String::as_str), Some("hello"));
    assert_eq!(
        env.get("K_CONFIGURATION").map(String::as_str),
        Some("hello")
    );
    assert_eq!(
        env.get("K_REVISION").map(String::as_str),
        Some("hello-00001")
    );
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    // As in Kubernetes: FOO is defined before TARGET, K_SERVICE only after the user's env.
    assert_eq!(
        env.get("TARGET").map(String::as_str),
        Some("bar-$(K_SERVICE)")
    );
    assert_eq!(env.get("HOME"), std::env::var("HOME").ok().as_ref());
    assert_eq!(env.get("CARGO_MANIFEST_DIR"), None, "daemon env leaks");
    let port = addr.port().to_string();
    let want_args = format!("[\"{TESTAPP}\",\"--flag=bar\",\"$(FOO)\",\"hello-00001\",\"{port}\"]");
    assert!(body.contains(&want_args), "args in {body}");
    assert!(
        body.contains(&format!("\"cwd\":\"{}\"", work.path().display())),
        "cwd in {body}"
    );
    let (code, body) = get(&handle, "/").await;
    assert_eq!((code, body.as_str()), (200, "Hello bar-$(K_SERVICE)!\n"));

    let end = handle.stop(Duration::from_secs(10)).await;
    assert_eq!(end.phase, Phase::Stopped);
    assert_eq!(end.final_exit.and_then(|e| e.code), Some(0));
}

#[tokio::test]
async fn crash_is_reported_and_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let handle = backend
        .start(spec("crashy", testapp(&[("CRASH_AFTER", "1")])))
        .await
        .expect("start");
    let first = wait_status(&handle, "ready", |s| s.ready).await;
    let (code, _) = get(&handle, "/").await;
    assert_eq!(code, 200);
    let crashed = wait_status(&handle, "the crash", |s| s.restarts >= 1).await;
    let exit = crashed.last_exit.clone().expect("exit");
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.reason, "Error");
    assert_eq!(exit.knative_reason(), "ExitCode3");
    assert!(
        crashed
            .last_log_lines
            .iter()
            .any(|l| l.contains("CRASH_AFTER=1 reached")),
        "{:?}",
        crashed.last_log_lines
    );
    assert!(
        crashed
            .last_log_lines
            .iter()
            .any(|l| l.starts_with("GET / 200")),
        "{:?}",
        crashed.last_log_lines
    );
    // Restarted: ready again, same address, new process.
    let again = wait_status(&handle, "ready after the restart", |s| {
        s.ready && s.restarts >= 1
    })
    .await;
    assert_eq!(again.addr, first.addr);
    assert_ne!(again.pid, first.pid);
    let (code, _) = get(&handle, "/").await;
    assert_eq!(code, 200);
    handle.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn failing_to_start_backs_off_instead_of_storming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let handle = backend
        .start(spec("nostart", testapp(&[("FAIL_TO_START", "1")])))
        .await
        .expect("start");
    let mut rx = handle.subscribe();
    let mut backoffs: Vec<Duration> = Vec::new();
    let mut last = None;
    while backoffs.len() < 4 {
        let s = timeout(
            DEADLINE,
            rx.wait_for(|s| s.phase == Phase::BackingOff && s.restarts as usize > backoffs.len()),
        )
        .await
        .expect("a back-off in time")
        .map(|s| s.clone())
        .expect("status");
        backoffs.push(s.backoff.expect("a back-off delay"));
        last = Some(s);
    }
    assert!(
        backoffs.windows(2).all(|w| w[1] > w[0]),
        "back-off grows: {backoffs:?}"
    );
    let s = last.expect("status");
    let exit = s.last_exit.expect("exit");
    assert_eq!(exit.code, Some(1));
    assert!(
        s.last_log_lines
            .iter()
            .any(|l| l.contains("FAIL_TO_START is set")),
        "{:?}",
        s.last_log_lines
    );
    assert!(!s.ready);
    let end = handle.stop(Duration::from_secs(5)).await;
    assert_eq!(end.phase, Phase::Stopped);
}

#[tokio::test]
async fn graceful_stop_drains_an_in_flight_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let handle = backend
        .start(spec("drain", testapp(&[])))
        .await
        .expect("start");
    timeout(DEADLINE, handle.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    let mut conn = TcpStream::connect(handle.addr()).await.expect("connect");
    conn.write_all(b"GET /?stream=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("send");
    // Read until the first chunk: the request is in flight.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains("chunk 0\n") {
        let n = timeout(DEADLINE, conn.read(&mut buf))
            .await
            .expect("first chunk in time")
            .expect("read");
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    let stopping = tokio::spawn(async move {
        let end = handle.stop(Duration::from_secs(20)).await;
        (end, handle)
    });
    // The rest of the response arrives, up to the last chunk.
    while !String::from_utf8_lossy(&raw).ends_with("0\r\n\r\n") {
        let n = timeout(DEADLINE, conn.read(&mut buf))
            .await
            .expect("the rest in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed mid-response: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    for i in 0..30 {
        assert!(text.contains(&format!("chunk {i}\n")), "chunk {i} missing");
    }
    let (end, handle) = timeout(DEADLINE, stopping)
        .await
        .expect("stopped in time")
        .expect("stop task");
    assert_eq!(end.phase, Phase::Stopped);
    // It exited by itself after draining: exit 0, no SIGKILL.
    let exit = end.final_exit.expect("final exit");
    assert_eq!((exit.code, exit.signal), (Some(0), None), "{exit}");
    let log = handle.logs().recent();
    assert!(
        log.iter().any(|l| l.contains("draining 1 request")),
        "{log:?}"
    );
    // New connections are refused once it is gone.
    assert!(TcpStream::connect(handle.addr()).await.is_err());
}

#[tokio::test]
async fn logs_are_captured_capped_and_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::with_options(
        dir.path(),
        ProcessOptions {
            log_cap: 1000,
            ..ProcessOptions::default()
        },
    );
    let handle = backend
        .start(spec("chatty", testapp(&[])))
        .await
        .expect("start");
    timeout(DEADLINE, handle.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    let mut follow = handle.logs().subscribe();
    for i in 0..60 {
        let (code, _) = get(&handle, &format!("/request-{i:03}")).await;
        assert_eq!(code, 200);
    }
    // Followers see lines as they come.
    let first = timeout(DEADLINE, follow.recv())
        .await
        .expect("a followed line")
        .expect("line");
    assert!(first.starts_with("GET /request-000 200"), "{first}");
    // The log is stopped being written once the replica is gone.
    handle.stop(Duration::from_secs(5)).await;
    let path = backend.log_path(&RevisionRef::new("default", "hello-00001"), "chatty");
    assert_eq!(handle.logs().path(), path.as_path());
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut rotated = path.clone().into_os_string();
    rotated.push(".1");
    assert!(size(&path) <= 1000, "{}", size(&path));
    assert!(size(rotated.as_ref()) > 0, "rotated once");
    assert!(size(rotated.as_ref()) <= 1000);
    let tail = read_tail(&path, 5).expect("tail");
    assert_eq!(tail.len(), 5);
    assert!(
        tail.iter().any(|l| l.starts_with("GET /request-059 200")),
        "{tail:?}"
    );
    let recent = handle.logs().recent();
    assert_eq!(recent.len(), wisp_runtime::logs::RECENT_LINES);
}

#[tokio::test]
async fn http_readiness_waits_for_a_slow_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let mut c = testapp(&[("START_DELAY_MS", "300")]);
    c.readiness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: "/healthz".into(),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    });
    let handle = backend.start(spec("slow", c)).await.expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    assert_eq!(ready.restarts, 0);
    // Ready means it answers.
    let (code, body) = get(&handle, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    handle.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn http_readiness_failing_keeps_it_unready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let mut c = testapp(&[("HEALTHZ_FAIL", "1")]);
    c.readiness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: "/healthz".into(),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    });
    let handle = backend.start(spec("sick", c)).await.expect("start");
    // It serves (so the probe gets its 500s) but never becomes ready.
    let mut served = false;
    for _ in 0..100 {
        if let Ok(Ok(mut s)) =
            timeout(Duration::from_secs(1), TcpStream::connect(handle.addr())).await
        {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
                .await;
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw).await;
            if String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 500") {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the app answers 500 on /healthz");
    // Its log shows the probes were answered 500 several times.
    let lines = wait_log_count(&handle, "GET /healthz 500", 5).await;
    assert!(lines >= 5);
    let s = handle.status();
    assert!(!s.ready);
    assert_eq!(s.phase, Phase::Starting);
    assert_eq!(s.restarts, 0, "readiness failures do not restart");
    handle.stop(Duration::from_secs(5)).await;
}

async fn wait_log_count(handle: &ReplicaHandle, needle: &str, n: usize) -> usize {
    let found = async {
        loop {
            let count = handle
                .logs()
                .recent()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if count >= n {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(DEADLINE, found)
        .await
        .unwrap_or_else(|_| panic!("fewer than {n} log lines with {needle:?}"))
}

#[tokio::test]
async fn liveness_failure_restarts_the_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let mut c = testapp(&[("HEALTHZ_FAIL", "1")]);
    c.liveness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: "/healthz".into(),
            ..HttpGetAction::default()
        }),
        // Probing before the app listens would fail with "connection refused" instead of
        // the 500 this test is about.
        initial_delay_seconds: 1,
        period_seconds: 1,
        failure_threshold: 1,
        ..Probe::default()
    });
    let handle = backend.start(spec("zombie", c)).await.expect("start");
    // The default TCP readiness passes: the app listens.
    let first = wait_status(&handle, "ready", |s| s.ready).await;
    let s = wait_status(&handle, "the liveness restart", |s| s.restarts >= 1).await;
    let exit = s.last_exit.expect("exit");
    assert_eq!(exit.reason, "LivenessProbeFailed");
    assert!(exit.message.contains("statuscode: 500"), "{}", exit.message);
    // Stopped with SIGTERM, it drained and exited 0.
    assert_eq!(exit.code, Some(0), "{exit}");
    let again = wait_status(&handle, "ready again", |s| s.ready && s.restarts >= 1).await;
    assert_ne!(again.pid, first.pid);
    handle.stop(Duration::from_secs(5)).await;
}
