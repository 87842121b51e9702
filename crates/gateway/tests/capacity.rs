//! Holding at zero, activation, containerConcurrency and its queue, load measurement: over
//! real HTTP on loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use wisp_gateway::{GatewayEvent, GatewayOptions, RevisionConfig, RevisionKey};

fn cc(n: u32) -> RevisionConfig {
    RevisionConfig {
        container_concurrency: n,
        ..RevisionConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_concurrency_one_never_puts_two_requests_on_a_replica() {
    let h = Arc::new(Harness::start().await);
    let app = Upstream::start("app").await;
    let rev = h.revision("cc-00001", cc(1), &[&app]);
    h.route("cc.default.localhost", &[(&rev, 100)]);

    // One request in flight, blocked in the app.
    let mut requests = tokio::task::JoinSet::new();
    let spawn = |requests: &mut tokio::task::JoinSet<_>| {
        let h = h.clone();
        requests.spawn(async move { h.get("cc.default.localhost", "/block").await });
    };
    spawn(&mut requests);
    eventually("first request at the replica", || {
        app.state.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    // Ten more wait in the gateway: the queue is 10 x containerConcurrency.
    for _ in 0..10 {
        spawn(&mut requests);
    }
    eventually("ten queued", || h.gateway.stats(&rev).unwrap().held == 10).await;
    assert_eq!(app.state.in_flight.load(Ordering::SeqCst), 1);
    // The next one is refused at once.
    let (status, body) = h.get("cc.default.localhost", "/block").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("pending request queue full"), "{body}");

    // Release them one by one: each queued request goes in as the previous one leaves.
    app.state.gate.add_permits(11);
    while let Some(done) = within("queued requests", requests.join_next()).await {
        assert_eq!(done.unwrap(), (StatusCode::OK, "app".into()));
    }
    assert_eq!(app.state.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(app.state.requests.load(Ordering::SeqCst), 11);
    let stats = h.gateway.stats(&rev).unwrap();
    assert_eq!((stats.in_flight, stats.held), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_never_exceeds_container_concurrency_on_any_replica() {
    let h = Arc::new(Harness::start().await);
    let apps = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    for (limit, name) in [(2u32, "two"), (5, "five")] {
        let rev = h.revision(
            &format!("{name}-00001"),
            cc(limit),
            &[&apps[0], &apps[1], &apps[2]],
        );
        let host = format!("{name}.default.localhost");
        h.route(&host, &[(&rev, 100)]);
        for app in &apps {
            app.state.max_in_flight.store(0, Ordering::SeqCst);
        }
        // As many requests as slots plus the whole queue: all are served, none rejected.
        let burst = (limit as usize) * 3 * 11;
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..burst {
            let (h, host) = (h.clone(), host.clone());
            requests.spawn(async move { h.get(&host, "/sleep/5").await.0 });
        }
        while let Some(status) = within("burst", requests.join_next()).await {
            assert_eq!(status.unwrap(), StatusCode::OK);
        }
        for app in &apps {
            let max = app.state.max_in_flight.load(Ordering::SeqCst);
            assert!(
                max <= limit as usize,
                "{} saw {max} in flight (limit {limit})",
                app.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_zero_are_held_activate_once_and_go_as_soon_as_a_replica_is_ready() {
    let mut h = Harness::start().await;
    let rev = RevisionKey::new("default", "cold-00001");
    h.gateway
        .set_revision(rev.clone(), RevisionConfig::default());
    h.route("cold.default.localhost", &[(&rev, 100)]);
    let h = Arc::new({
        // Keep the event receiver out of the shared harness.
        let events = std::mem::replace(&mut h.events, tokio::sync::mpsc::unbounded_channel().1);
        (h, tokio::sync::Mutex::new(events))
    });

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let h = h.clone();
        requests.spawn(async move { h.0.get("cold.default.localhost", "/").await });
    }
    // The first held request asks for a replica at once.
    let event = within("activate", async { h.1.lock().await.recv().await }).await;
    assert_eq!(event, Some(GatewayEvent::Activate(rev.clone())));
    eventually("three held", || h.0.gateway.stats(&rev).unwrap().held == 3).await;
    assert!(
        h.1.lock().await.try_recv().is_err(),
        "one Activate per activation, not per request"
    );
    assert_eq!(h.0.gateway.stats(&rev).unwrap().in_flight, 3);

    // The replica becomes ready: every held request is answered.
    let app = Upstream::start("warm").await;
    h.0.gateway.set_endpoints(&rev, vec![app.addr]);
    while let Some(done) = within("held requests", requests.join_next()).await {
        assert_eq!(done.unwrap(), (StatusCode::OK, "warm".into()));
    }
    assert_eq!(h.0.gateway.stats(&rev).unwrap().held, 0);

    // Scaled to zero again: the next request pokes again.
    h.0.gateway.set_endpoints(&rev, vec![]);
    let h2 = h.clone();
    let again = tokio::spawn(async move { h2.0.get("cold.default.localhost", "/").await });
    let event = within("activate again", async { h.1.lock().await.recv().await }).await;
    assert_eq!(event, Some(GatewayEvent::Activate(rev.clone())));
    h.0.gateway.set_endpoints(&rev, vec![app.addr]);
    assert_eq!(within("answer", again).await.unwrap().0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_time_out_with_503_and_a_reason() {
    let mut h = Harness::with_options(GatewayOptions {
        hold_timeout: Duration::from_millis(300),
        ..GatewayOptions::default()
    })
    .await;
    let rev = RevisionKey::new("default", "never-00001");
    h.gateway
        .set_revision(rev.clone(), RevisionConfig::default());
    h.route("never.default.localhost", &[(&rev, 100)]);
    let (status, body) = h.get("never.default.localhost", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("default/never-00001 has no ready replica after waiting"),
        "{body}"
    );
    assert_eq!(
        h.events.recv().await,
        Some(GatewayEvent::Activate(rev.clone()))
    );
    // Everyone gave up: the next request asks again.
    let (status, _) = h.get("never.default.localhost", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h.events.recv().await,
        Some(GatewayEvent::Activate(rev.clone()))
    );
    let stats = h.gateway.stats(&rev).unwrap();
    assert_eq!(
        (stats.in_flight, stats.held, stats.requests_total),
        (0, 0, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_queue_is_bounded() {
    let h = Arc::new(
        Harness::with_options(GatewayOptions {
            hold_capacity: 2,
            ..GatewayOptions::default()
        })
        .await,
    );
    let rev = RevisionKey::new("default", "full-00001");
    h.gateway
        .set_revision(rev.clone(), RevisionConfig::default());
    h.route("full.default.localhost", &[(&rev, 100)]);
    let mut held = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let h = h.clone();
        held.spawn(async move { h.get("full.default.localhost", "/").await });
    }
    eventually("two held", || h.gateway.stats(&rev).unwrap().held == 2).await;
    let (status, body) = h.get("full.default.localhost", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("2 requests are already held"), "{body}");
    // Removing the revision fails the held requests rather than leaving them hanging.
    h.gateway.remove_revision(&rev);
    while let Some(done) = within("held requests", held.join_next()).await {
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("removed"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_measured_for_the_autoscaler() {
    let h = Harness::start().await;
    let app = Upstream::start("app").await;
    let rev = h.revision("load-00001", RevisionConfig::default(), &[&app]);
    h.route("load.default.localhost", &[(&rev, 100)]);
    let before = h.gateway.take_load(&rev).unwrap();
    assert_eq!(before.requests, 0);
    for _ in 0..4 {
        assert_eq!(
            h.get("load.default.localhost", "/sleep/50").await.0,
            StatusCode::OK
        );
    }
    let load = h.gateway.take_load(&rev).unwrap();
    assert_eq!(load.requests, 4);
    assert_eq!(load.in_flight, 0);
    // Four requests of at least 50 ms each, one at a time.
    assert!(load.concurrency_seconds >= 0.2, "{load:?}");
    assert!(
        load.concurrency_seconds <= load.interval.as_secs_f64() + 1e-3,
        "{load:?}"
    );
    // Nothing since: nothing reported.
    let idle = h.gateway.take_load(&rev).unwrap();
    assert_eq!((idle.requests, idle.concurrency_seconds), (0, 0.0));
    let all = h.gateway.take_loads();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, rev);
}
