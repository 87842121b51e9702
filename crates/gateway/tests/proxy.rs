//! Proxying over real HTTP on loopback: headers, streaming both ways, upgrades, timeouts,
//! h2c, retries, connection reuse, graceful drain.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use wisp_gateway::RevisionConfig;

fn header_lines(body: &str) -> Vec<(&str, &str)> {
    body.lines().filter_map(|l| l.split_once(": ")).collect()
}

fn header<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    header_lines(body)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_added_and_hop_by_hop_headers_stripped() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("h-00001", RevisionConfig::default(), &[&app]);
    h.route("h.default.localhost", &[(&rev, 100)]);

    let (status, headers, body) = h
        .send(
            h.request("h.default.localhost:8080", "/headers?x=1")
                .header("connection", "x-private")
                .header("x-private", "secret")
                .header("proxy-connection", "keep-alive")
                .header("proxy-authorization", "Basic Zm9vOmJhcg==")
                .header("te", "trailers")
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .header("x-forwarded-for", "203.0.113.9")
                .body(full(""))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // What the replica saw.
    assert_eq!(header(&body, "host"), Some("h.default.localhost:8080"));
    assert_eq!(header(&body, "uri"), Some("/headers?x=1"));
    assert_eq!(
        header(&body, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&body, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&body, "x-forwarded-host"),
        Some("h.default.localhost:8080")
    );
    assert_eq!(
        header(&body, "forwarded"),
        Some("for=127.0.0.1;host=\"h.default.localhost:8080\";proto=http")
    );
    // The same trace, with the gateway's hop as the parent.
    let tp = header(&body, "traceparent").expect("a traceparent");
    assert!(
        tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && tp.ends_with("-01"),
        "{tp}"
    );
    assert_ne!(
        tp,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(header(&body, "te"), Some("trailers"));
    for gone in ["x-private", "proxy-connection", "proxy-authorization"] {
        assert_eq!(header(&body, gone), None, "{gone} reached the replica");
    }
    // What the client saw of the replica's response.
    assert_eq!(headers["x-app"], "app");
    for gone in ["keep-alive", "x-hop"] {
        assert!(!headers.contains_key(gone), "{gone} reached the client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_streams_to_the_replica_before_it_ends() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("up-00001", RevisionConfig::default(), &[&app]);
    h.route("up.default.localhost", &[(&rev, 100)]);

    let (tx, body) = channel_body();
    let request = h
        .request("up.default.localhost", "/upload")
        .method("POST")
        .body(body)
        .unwrap();
    let client = h.client.clone();
    let response = tokio::spawn(async move { client.request(request).await });
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    tx.send(chunk.clone()).await.unwrap();
    // The replica has bytes while the client still holds most of the upload back.
    within(
        "first bytes at the replica",
        app.state.upload_started.notified(),
    )
    .await;
    for _ in 1..256 {
        tx.send(chunk.clone()).await.unwrap();
    }
    drop(tx);
    let response = within("upload response", response).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (256 * 64 * 1024).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_chunks_reach_the_client_before_the_response_ends() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("st-00001", RevisionConfig::default(), &[&app]);
    h.route("st.default.localhost", &[(&rev, 100)]);

    let response = within(
        "response head",
        h.client.request(
            h.request("st.default.localhost", "/stream")
                .body(full(""))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    let mut body = response.into_body();
    let first = within("first chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    // Only now does the replica send the rest.
    app.state.stream_go.notify_one();
    let rest = within("rest", body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "second\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_pass_through_and_carry_bytes_both_ways() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("ws-00001", RevisionConfig::default(), &[&app]);
    h.route("ws.default.localhost", &[(&rev, 100)]);

    let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    write_all(
        &mut stream,
        b"GET /ws HTTP/1.1\r\nHost: ws.default.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: echo"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    for message in [&b"hello"[..], b", world", &[0u8, 255, 1, 254]] {
        write_all(&mut stream, message).await;
        let mut echoed = vec![0u8; message.len()];
        within("echo", stream.read_exact(&mut echoed))
            .await
            .unwrap();
        assert_eq!(echoed, message);
    }
    // The tunnel counts as in flight until it closes.
    assert_eq!(h.gateway.stats(&rev).unwrap().in_flight, 1);
    drop(stream);
    eventually("tunnel closed", || {
        h.gateway.stats(&rev).unwrap().in_flight == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504_naming_the_timeout() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let short = Duration::from_millis(200);
    let cases = [
        (
            "t",
            RevisionConfig {
                timeout: short,
                ..RevisionConfig::default()
            },
            "timeoutSeconds (0.2s)",
        ),
        (
            "rs",
            RevisionConfig {
                response_start_timeout: Some(short),
                ..RevisionConfig::default()
            },
            "responseStartTimeoutSeconds (0.2s)",
        ),
        (
            "idle",
            RevisionConfig {
                idle_timeout: Some(short),
                ..RevisionConfig::default()
            },
            "idleTimeoutSeconds (0.2s)",
        ),
    ];
    for (name, config, reason) in cases {
        let rev = h.revision(&format!("{name}-00001"), config, &[&app]);
        let host = format!("{name}.default.localhost");
        h.route(&host, &[(&rev, 100)]);
        let (status, body) = h.get(&host, "/sleep/5000").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{name}: {body}");
        assert!(body.contains(reason), "{name}: {body}");
        assert!(body.contains(&format!("default/{name}-00001")), "{body}");
        // A fast response is unaffected.
        assert_eq!(h.get(&host, "/").await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_response_is_cut_after_idle_timeout() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision(
        "stall-00001",
        RevisionConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            ..RevisionConfig::default()
        },
        &[&app],
    );
    h.route("stall.default.localhost", &[(&rev, 100)]);
    let response = within(
        "head",
        h.client.request(
            h.request("stall.default.localhost", "/stall")
                .body(full(""))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = within("first", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    // The replica goes quiet: the response is aborted, not left hanging.
    let rest = within("abort", body.collect()).await;
    assert!(
        rest.is_err(),
        "the truncated response is reported as an error"
    );
    eventually("slot released", || {
        h.gateway.stats(&rev).unwrap().in_flight == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_and_h2c_replicas() {
    let h = Harness::start().await;
    let h1_app = Upstream::start("h1-app").await;
    let h2_app = Upstream::start_h2c("h2-app").await;
    let r1 = h.revision("one-00001", RevisionConfig::default(), &[&h1_app]);
    let r2 = h.revision(
        "two-00001",
        RevisionConfig {
            h2c: true,
            ..RevisionConfig::default()
        },
        &[&h2_app],
    );
    h.route("one.default.localhost", &[(&r1, 100)]);
    h.route("two.default.localhost", &[(&r2, 100)]);

    // An HTTP/2 (prior knowledge) client of the gateway; several streams on one connection.
    let stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut streams = tokio::task::JoinSet::new();
    for (host, want_body, want_version) in [
        ("one.default.localhost", "h1-app", "HTTP/1.1"),
        ("two.default.localhost", "h2-app", "HTTP/2.0"),
    ] {
        for _ in 0..5 {
            let mut sender = sender.clone();
            streams.spawn(async move {
                let request = Request::builder()
                    .uri(format!("http://{host}/"))
                    .body(full(""))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                assert_eq!(response.headers()["x-app-version"], want_version);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, want_body);
            });
        }
    }
    while let Some(done) = within("h2 streams", streams.join_next()).await {
        done.unwrap();
    }
    // An HTTP/1.1 client of an h2c replica, and its headers arrive.
    let (status, body) = h.get("two.default.localhost", "/headers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("version: HTTP/2.0"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    assert_eq!(
        h2_app.state.connections.load(Ordering::SeqCst),
        1,
        "one shared h2c connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_on_another_replica() {
    let h = Harness::start().await;
    let live = Upstream::start("live").await;
    // A port nothing listens on (bound, then released): a replica that just went away.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let rev = wisp_gateway::RevisionKey::new("default", "r-00001");
    h.gateway
        .set_revision(rev.clone(), RevisionConfig::default());
    h.gateway.set_endpoints(&rev, vec![dead, live.addr]);
    h.route("r.default.localhost", &[(&rev, 100)]);
    for i in 0..40 {
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        let (status, _, body) = h
            .send(
                h.request("r.default.localhost", "/upload")
                    .method(method)
                    .body(full("payload"))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{method}: {body}");
        assert_eq!(body, "7");
    }
    // With no other replica to try, the failure is a 502 naming the replica.
    h.gateway.set_endpoints(&rev, vec![dead]);
    let (status, body) = h.get("r.default.localhost", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains(&dead.to_string()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("ka-00001", RevisionConfig::default(), &[&app]);
    h.route("ka.default.localhost", &[(&rev, 100)]);
    for _ in 0..50 {
        assert_eq!(h.get("ka.default.localhost", "/").await.0, StatusCode::OK);
    }
    let connections = app.state.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 2,
        "{connections} connections for 50 sequential requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    let mut h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("d-00001", RevisionConfig::default(), &[&app]);
    h.route("d.default.localhost", &[(&rev, 100)]);
    let client = h.client.clone();
    let request = h
        .request("d.default.localhost", "/block")
        .body(full(""))
        .unwrap();
    let pending = tokio::spawn(async move { client.request(request).await });
    eventually("request at the replica", || {
        app.state.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let serve = h.serve.take().unwrap();
    h.take_shutdown().unwrap().send(()).unwrap();
    // Not done while the request is open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!serve.is_finished());
    app.state.gate.add_permits(1);
    let response = within("drained response", pending).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    within("serve returns", serve).await.unwrap();
    // New connections are refused once serve has returned.
    assert!(tokio::net::TcpStream::connect(h.addr).await.is_err());
}
