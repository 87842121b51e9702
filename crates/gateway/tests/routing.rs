//! Routing over real HTTP on loopback: hosts, tags, splits, atomic route swaps, probes.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use hyper::StatusCode;
use wisp_gateway::RevisionConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_answers_404_naming_an_unknown_host() {
    let h = Harness::start().await;
    let (a, b) = (
        Upstream::start("app-a").await,
        Upstream::start("app-b").await,
    );
    let ra = h.revision("a-00001", RevisionConfig::default(), &[&a]);
    let rb = h.revision("b-00001", RevisionConfig::default(), &[&b]);
    h.route("a.default.localhost", &[(&ra, 100)]);
    h.route("b.default.localhost", &[(&rb, 100)]);

    assert_eq!(
        h.get("a.default.localhost", "/").await,
        (StatusCode::OK, "app-a".into())
    );
    // Case and port do not matter.
    assert_eq!(
        h.get("B.Default.Localhost:8080", "/").await,
        (StatusCode::OK, "app-b".into())
    );
    let (status, body) = h.get("nope.default.localhost:8080", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"nope.default.localhost\""), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_hosts_reach_their_own_target() {
    let h = Harness::start().await;
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let r1 = h.revision("hello-00001", RevisionConfig::default(), &[&v1]);
    let r2 = h.revision("hello-00002", RevisionConfig::default(), &[&v2]);
    // The Route sends everything to v1; the tag `candidate` names v2 at 0 percent.
    h.route("hello.default.localhost", &[(&r1, 100), (&r2, 0)]);
    h.route("candidate-hello.default.localhost", &[(&r2, 100)]);
    for _ in 0..20 {
        assert_eq!(
            h.get("hello.default.localhost", "/").await.1,
            "v1",
            "0 percent gets nothing"
        );
        assert_eq!(
            h.get("candidate-hello.default.localhost", "/").await.1,
            "v2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_split_holds_each_share_within_two_points_at_10000_requests() {
    let h = Arc::new(Harness::start().await);
    let (a, b, c) = (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    );
    let ra = h.revision("s-00001", RevisionConfig::default(), &[&a]);
    let rb = h.revision("s-00002", RevisionConfig::default(), &[&b]);
    let rc = h.revision("s-00003", RevisionConfig::default(), &[&c]);
    h.route(
        "split.default.localhost",
        &[(&ra, 60), (&rb, 30), (&rc, 10)],
    );

    const TOTAL: usize = 10_000;
    const WORKERS: usize = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let h = h.clone();
        tasks.spawn(async move {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..TOTAL / WORKERS {
                let (status, body) = h.get("split.default.localhost", "/").await;
                assert_eq!(status, StatusCode::OK);
                *counts.entry(body).or_default() += 1;
            }
            counts
        });
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Some(part) = tasks.join_next().await {
        for (k, v) in part.unwrap() {
            *counts.entry(k).or_default() += v;
        }
    }
    for (name, percent) in [("a", 60.0), ("b", 30.0), ("c", 10.0)] {
        let share = 100.0 * counts[name] as f64 / TOTAL as f64;
        assert!(
            (share - percent).abs() <= 2.0,
            "{name}: {share}% for {percent}% ({counts:?})"
        );
    }
    let stats = h.gateway.stats(&ra).unwrap();
    assert_eq!(stats.requests_total as usize, counts["a"]);
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_routes_under_load_never_loses_a_host() {
    let h = Arc::new(Harness::start().await);
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let ra = h.revision("swap-00001", RevisionConfig::default(), &[&a]);
    let rb = h.revision("swap-00002", RevisionConfig::default(), &[&b]);
    h.route("swap.default.localhost", &[(&ra, 100)]);

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut traffic = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (h, stop, served) = (h.clone(), stop.clone(), served.clone());
        traffic.spawn(async move {
            let mut seen = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                served.fetch_add(1, Ordering::Relaxed);
                let (status, body) = h.get("swap.default.localhost", "/").await;
                assert_eq!(status, StatusCode::OK, "{body}");
                if body == "a" {
                    seen.0 += 1;
                } else {
                    seen.1 += 1;
                }
            }
            seen
        });
    }
    eventually("traffic flowing", || served.load(Ordering::Relaxed) >= 50).await;
    for i in 0..1000 {
        // Other hosts come and go too; the one under traffic is in every table.
        let extra = format!("extra-{i}.default.localhost");
        let targets: &[(&wisp_gateway::RevisionKey, u32)] = match i % 3 {
            0 => &[(&ra, 100)],
            1 => &[(&rb, 100)],
            _ => &[(&ra, 50), (&rb, 50)],
        };
        h.route("swap.default.localhost", targets);
        h.route(&extra, &[(&rb, 100)]);
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = (0, 0);
    while let Some(seen) = traffic.join_next().await {
        let seen = seen.unwrap();
        total = (total.0 + seen.0, total.1 + seen.1);
    }
    // Requests ran while the route changed: both revisions answered.
    assert!(
        total.0 > 0 && total.1 > 0,
        "traffic during the updates: {total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_to_a_revision_the_gateway_does_not_know_is_503() {
    let h = Harness::start().await;
    let ghost = wisp_gateway::RevisionKey::new("default", "ghost-00001");
    h.route("ghost.default.localhost", &[(&ghost, 100)]);
    let (status, body) = h.get("ghost.default.localhost", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("default/ghost-00001"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_probes_are_answered_by_the_gateway() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("p-00001", RevisionConfig::default(), &[&app]);
    h.route("p.default.localhost", &[(&rev, 100)]);
    let (status, headers, body) = h
        .send(
            h.request("p.default.localhost", "/")
                .header("k-network-probe", "queue")
                .header("k-network-hash", "abc")
                .body(full(""))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "queue");
    assert_eq!(headers["k-network-hash"], "abc");
    assert_eq!(
        app.state.requests.load(Ordering::SeqCst),
        0,
        "not forwarded"
    );
    // Probing a host with no route says so.
    let (status, _, _) = h
        .send(
            h.request("none.default.localhost", "/")
                .header("k-network-probe", "queue")
                .body(full(""))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
