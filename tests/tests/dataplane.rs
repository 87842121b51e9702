//! The data plane end to end: Services running the real test app (`wisp-testapp`) as host
//! processes behind the real gateway. Routing by host, traffic split, per-replica concurrency,
//! timeouts, scale to zero and back, crashes and how they are reported, probes, drains, and
//! what happens to replicas when the daemon dies or stops.
//!
//! Every test has its own daemon and marks its replicas with a unique `WISP_E2E_MARK` value, so
//! it counts its own processes only (tests run in parallel) and a [`Sweep`] kills whatever
//! is left when it ends. Nothing here asserts that something is fast: waits poll up to a
//! generous deadline, and the only time bound is a lower one (requests serialised by
//! `containerConcurrency: 1` cannot all end before N × their sleep).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The daemon flags of the tests that watch a revision go idle: Knative's smallest stable
/// window and a short grace period.
const FAST_AUTOSCALER: &[&str] = &[
    "--autoscaler",
    "stable-window=6s",
    "--autoscaler",
    "scale-to-zero-grace-period=1s",
];

/// A client read timeout for requests that must be answered, not held forever.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

fn host(svc: &str) -> String {
    format!("{svc}.default.localhost")
}

/// `?echo=1` through the gateway: the replica's view of the request and its environment.
#[track_caller]
fn echo(d: &Daemon, host: &str, query: &str) -> Value {
    let r = d.gateway_get(host, &format!("/?echo=1{query}"));
    assert_eq!(r.status, 200, "echo via {host}: {}", r.body);
    r.json()
}

/// A header the app received (names are lowercased by the app).
fn received<'a>(echo: &'a Value, name: &str) -> &'a str {
    echo["headers"][name].as_str().unwrap_or("")
}

/// Lines of every log file of revision `rev` that contain `needle`.
fn count_log_lines(data_dir: &Path, rev: &str, needle: &str) -> usize {
    let dir = data_dir.join("logs").join("default").join(rev);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

/// Waits until revision `name` satisfies `f`, and returns it.
#[track_caller]
fn wait_revision(d: &Daemon, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("revision {name}: {what}"), || {
        let rev = d.revision(name).ok_or("absent")?;
        if f(&rev) {
            Ok(rev)
        } else {
            Err(rev["status"].to_string())
        }
    })
}

/// Fields 5 and 6 of `/proc/PID/stat`: process group and session.
fn pgid_and_sid(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(2);
    Some((rest.next()?.parse().ok()?, rest.next()?.parse().ok()?))
}

/// `(revisionName, percent, tag)` of a Route's status.
fn route_traffic(route: &Value) -> Vec<(String, i64, String)> {
    route["status"]["traffic"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        s(t, "/revisionName").to_string(),
                        t["percent"].as_i64().unwrap_or(0),
                        s(t, "/tag").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn routes_by_host_with_the_runtime_contract() {
    let mark = unique("routing");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let mut svc = testapp_service("hello", &[("TARGET", &mark), (MARK, &mark)], &[], json!({}));
    // `$(VAR)` expands in args (`$$` escapes it), and workingDir is honoured.
    merge(
        container_mut(&mut svc),
        json!({
            "args": ["port=$(PORT)", "target=$(TARGET)", "literal=$$(TARGET)"],
            "workingDir": d.scratch.to_str().expect("UTF-8 path"),
        }),
    );
    d.create_service(&svc);
    let svc = d.wait_service_ready("hello");
    assert_eq!(s(&svc, "/status/url"), "http://hello.default.localhost");

    let r = d.gateway_get("hello.default.localhost", "/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );
    // What a browser or curl sends: the Host with the gateway's port.
    let with_port = format!("hello.default.localhost:{}", d.gateway_port);
    let r = d.gateway_get(&with_port, "/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );

    // Knative's runtime contract: the K_* variables and PORT; the forwarding headers.
    let e = echo(&d, "hello.default.localhost", "");
    assert_eq!(e["env"]["K_SERVICE"], "hello", "{e}");
    assert_eq!(e["env"]["K_CONFIGURATION"], "hello", "{e}");
    assert_eq!(e["env"]["K_REVISION"], "hello-00001", "{e}");
    assert_eq!(e["env"]["TARGET"], mark.as_str(), "{e}");
    let port: u16 = s(&e, "/env/PORT")
        .parse()
        .unwrap_or_else(|_| panic!("PORT is not a port: {e}"));
    assert!(
        port != 0 && port != d.gateway_port && port != d.api_port,
        "{e}"
    );
    assert!(
        received(&e, "x-forwarded-for").contains("127.0.0.1"),
        "X-Forwarded-For: {e}"
    );
    assert_eq!(received(&e, "x-forwarded-proto"), "http", "{e}");
    assert_eq!(
        received(&e, "x-forwarded-host"),
        "hello.default.localhost",
        "{e}"
    );
    let fwd = received(&e, "forwarded");
    assert!(
        fwd.contains("for=127.0.0.1") || fwd.contains("for=\"127.0.0.1"),
        "Forwarded: {e}"
    );
    assert!(fwd.contains("proto=http"), "Forwarded: {e}");
    assert!(
        received(&e, "host").starts_with("hello.default.localhost"),
        "the app sees the Host the client sent: {e}"
    );
    assert_eq!(
        e["args"].as_array().map(|a| a[1..].to_vec()),
        Some(vec![
            json!(format!("port={port}")),
            json!(format!("target={mark}")),
            json!("literal=$(TARGET)"),
        ]),
        "{e}"
    );
    let cwd = std::fs::canonicalize(&d.scratch).expect("scratch");
    assert_eq!(Path::new(s(&e, "/cwd")), cwd, "{e}");
    // A proxy in front: X-Forwarded-For is appended to, X-Forwarded-Proto/-Host are kept.
    let r = http_request_full(
        d.gateway_port,
        "hello.default.localhost",
        "GET",
        "/?echo=1",
        &[
            ("X-Forwarded-For", "192.0.2.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "hello.example.com"),
        ],
        None,
        DEADLINE,
    )
    .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let e2 = r.json();
    let xff = received(&e2, "x-forwarded-for");
    assert!(
        xff.starts_with("192.0.2.7") && xff.contains("127.0.0.1"),
        "X-Forwarded-For: {e2}"
    );
    assert_eq!(received(&e2, "x-forwarded-proto"), "https", "{e2}");
    assert_eq!(
        received(&e2, "x-forwarded-host"),
        "hello.example.com",
        "{e2}"
    );
    // Bodies pass both ways whole.
    let payload = "x".repeat(100_000);
    let r = http_request_to(
        d.gateway_port,
        "hello.default.localhost",
        "POST",
        "/?echo=1",
        Some(("text/plain", &payload)),
    )
    .expect("POST");
    assert_eq!(r.status, 200, "{}", r.body);
    let e3 = r.json();
    assert_eq!(
        (e3["method"].as_str(), e3["body_bytes"].as_u64()),
        (Some("POST"), Some(100_000)),
        "{e3}"
    );
    let r = d.gateway_get("hello.default.localhost", "/?body=1000000");
    assert_eq!((r.status, r.body.len()), (200, 1_000_000));
    let r = d.gateway_get("hello.default.localhost", "/?status=418");
    assert_eq!(r.status, 418, "the app's status passes through");
    // Host names are case-insensitive.
    let r = d.gateway_get("Hello.Default.LOCALHOST", "/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );
    // The replica is the process that answered, and the only one; it leads its own session
    // and process group.
    let pid = e["pid"].as_u64().expect("pid") as u32;
    assert_eq!(marked_pids(&mark), vec![pid]);
    assert_eq!(pgid_and_sid(pid), Some((pid, pid)), "replica {pid}");

    // Cluster-local names answer too.
    for h in [
        "hello.default.svc.cluster.local",
        "hello.default.svc",
        "hello.default",
    ] {
        let r = d.gateway_get(h, "/");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, &*format!("Hello {mark}!\n")),
            "via {h}"
        );
    }

    // An unknown host: 404 naming it.
    let r = d.gateway_get("nope.default.localhost", "/");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("nope.default.localhost"), "{}", r.body);

    // Deleting the Service takes its hosts and its replica away.
    let r = d.request(
        "DELETE",
        &serving_path("default", "services", Some("hello")),
        None,
    );
    assert_eq!(r.status, 200, "delete hello: {}", r.body);
    wait_for("hello's host gone", || {
        let r = d.gateway_get("hello.default.localhost", "/");
        (r.status == 404)
            .then_some(())
            .ok_or(format!("{} {}", r.status, r.body))
    });
    wait_for("hello's replica gone", || {
        let pids = marked_pids(&mark);
        pids.is_empty().then_some(()).ok_or(format!("{pids:?}"))
    });
}

#[test]
fn autoscaler_scales_up_within_bounds() {
    let mark = unique("scaleup");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let wide = format!("{mark}-wide");
    let _sweep_wide = Sweep(wide.clone());
    // initial-scale 2: two replicas before the revision is Ready.
    d.create_service(&testapp_service(
        "wide",
        &[("TARGET", "wide"), (MARK, &wide)],
        &[("autoscaling.knative.dev/initial-scale", "2")],
        json!({}),
    ));
    // A target of 1 request in flight per replica, at most 3 replicas.
    d.create_service(&testapp_service(
        "busy",
        &[("TARGET", "busy"), (MARK, &mark)],
        &[
            ("autoscaling.knative.dev/target", "1"),
            ("autoscaling.knative.dev/max-scale", "3"),
        ],
        json!({}),
    ));
    d.wait_service_ready("wide");
    assert_eq!(marked_pids(&wide).len(), 2, "initial-scale 2");
    let rev = d.revision("wide-00001").expect("wide-00001");
    assert_eq!(rev["status"]["actualReplicas"], 2, "{}", rev["status"]);
    d.wait_service_ready("busy");
    assert_eq!(marked_pids(&mark).len(), 1);

    // Six requests in flight for 10 s: the autoscaler wants six, max-scale allows three.
    let port = d.gateway_port;
    let load: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                http_request_to(port, "busy.default.localhost", "GET", "/?sleep=10000", None)
            })
        })
        .collect();
    wait_for("three replicas of busy", || {
        let pids = marked_pids(&mark);
        (pids.len() >= 3).then_some(()).ok_or(format!("{pids:?}"))
    });
    wait_revision(&d, "busy-00001", "3 desired", |r| {
        r["status"]["desiredReplicas"] == 3
    });
    for t in load {
        let r = t.join().expect("load thread").expect("request");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let pids = marked_pids(&mark);
    assert_eq!(pids.len(), 3, "max-scale 3: {pids:?}");
}

#[test]
fn traffic_split_follows_percentages_and_tags() {
    let mark = unique("split");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let (v1, v2) = (format!("{mark}-v1"), format!("{mark}-v2"));
    d.create_service(&testapp_service(
        "split",
        &[("TARGET", &v1), (MARK, &mark)],
        &[],
        json!({}),
    ));
    d.wait_service_ready("split");
    let mut svc2 = testapp_service("split", &[("TARGET", &v2), (MARK, &mark)], &[], json!({}));
    d.patch_service("split", &json!({"spec": svc2["spec"].take()}));
    let svc = d.wait_service_ready("split");
    assert_eq!(s(&svc, "/status/latestReadyRevisionName"), "split-00002");

    d.patch_service(
        "split",
        &json!({"spec": {"traffic": [
            {"revisionName": "split-00001", "percent": 80, "tag": "stable"},
            {"revisionName": "split-00002", "percent": 20, "tag": "canary"},
        ]}}),
    );
    wait_for("the route at 80/20 with tags", || {
        let route = d.route("split").ok_or("absent")?;
        let t = route_traffic(&route);
        let want = vec![
            ("split-00001".to_string(), 80, "stable".to_string()),
            ("split-00002".to_string(), 20, "canary".to_string()),
        ];
        if t == want && condition(&route, "Ready") == "True" {
            Ok(())
        } else {
            Err(route["status"].to_string())
        }
    });
    // The gateway serves the tag hosts once it has the new table (the split with it).
    wait_for("the canary tag host", || {
        let r = d.gateway_get("canary-split.default.localhost", "/");
        (r.status == 200).then_some(()).ok_or(r.body)
    });

    const N: usize = 10_000;
    let mut client = d.client(&host("split"));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..N {
        let r = client
            .get("/")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        *counts.entry(r.body).or_default() += 1;
    }
    let (n1, n2) = (
        counts.remove(&format!("Hello {v1}!\n")).unwrap_or(0),
        counts.remove(&format!("Hello {v2}!\n")).unwrap_or(0),
    );
    assert!(
        counts.is_empty(),
        "answers from neither revision: {counts:?}"
    );
    let share = |n: usize| n as f64 * 100.0 / N as f64;
    assert!(
        (share(n1) - 80.0).abs() <= 2.0 && (share(n2) - 20.0).abs() <= 2.0,
        "split-00001 got {n1}, split-00002 got {n2} of {N}: not 80/20 within 2 points"
    );

    // A tag host reaches its revision alone.
    let only = |tag_host: &str, want: &str| {
        let mut c = d.client(tag_host);
        for _ in 0..100 {
            let r = c.get("/").expect("request");
            assert_eq!(
                (r.status, r.body.as_str()),
                (200, &*format!("Hello {want}!\n")),
                "via {tag_host}"
            );
        }
    };
    only("canary-split.default.localhost", &v2);
    only("stable-split.default.localhost", &v1);

    // Blue/green: all traffic on the latest revision, the old one reachable by its tag only.
    d.patch_service(
        "split",
        &json!({"spec": {"traffic": [
            {"latestRevision": true, "percent": 100},
            {"revisionName": "split-00001", "percent": 0, "tag": "old"},
        ]}}),
    );
    wait_for("the old tag host", || {
        let r = d.gateway_get("old-split.default.localhost", "/");
        (r.status == 200).then_some(()).ok_or(r.body)
    });
    only("split.default.localhost", &v2);
    only("old-split.default.localhost", &v1);
    let r = d.gateway_get("canary-split.default.localhost", "/");
    assert_eq!(r.status, 404, "a removed tag's host: {}", r.body);
}

/// Rolling out new revisions under steady traffic loses no request, and the old revisions,
/// no longer routed, go idle and stop while it goes on.
#[test]
fn rollout_under_load_loses_no_request() {
    let mark = unique("rollout");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start_with(FAST_AUTOSCALER);
    let target = |n: u32| format!("{mark}-v{n}");
    let deploy = |n: u32| {
        testapp_service(
            "roll",
            &[("TARGET", &target(n)), (MARK, &mark)],
            &[],
            json!({}),
        )
    };
    d.create_service(&deploy(1));
    d.wait_service_ready("roll");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        let port = d.gateway_port;
        std::thread::spawn(move || {
            let mut c = Client::new(port, "roll.default.localhost");
            let mut seen: Vec<(u16, String)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match c.get("/") {
                    Ok(r) => seen.push((r.status, r.body)),
                    Err(e) => seen.push((0, e.to_string())),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        })
    };
    for n in 2..=3 {
        let mut svc = deploy(n);
        d.patch_service("roll", &json!({"spec": svc["spec"].take()}));
        let rev = format!("roll-{n:05}");
        wait_for(&format!("the route on {rev}"), || {
            let route = d.route("roll").ok_or("absent")?;
            (route_traffic(&route) == vec![(rev.clone(), 100, String::new())])
                .then_some(())
                .ok_or(route["status"].to_string())
        });
    }
    // The old revisions go to zero while the traffic goes on.
    for old in ["roll-00001", "roll-00002"] {
        wait_revision(&d, old, "at zero", |r| r["status"]["actualReplicas"] == 0);
    }
    wait_for("only roll-00003's replica left", || {
        let pids = marked_pids(&mark);
        (pids.len() == 1).then_some(()).ok_or(format!("{pids:?}"))
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = loader.join().expect("loader");
    let bad: Vec<&(u16, String)> = seen.iter().filter(|(st, _)| *st != 200).collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests failed during the rollout, first: {:?}",
        bad.len(),
        seen.len(),
        bad.first()
    );
    let last = seen.last().map(|(_, b)| b.clone()).unwrap_or_default();
    assert_eq!(last, format!("Hello {}!\n", target(3)));
    for (_, body) in &seen {
        assert!(
            (1..=3).any(|n| *body == format!("Hello {}!\n", target(n))),
            "unexpected answer {body:?}"
        );
    }
}

#[test]
fn container_concurrency_one_serialises_requests() {
    let mark = unique("cc");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service(
        "cc",
        &[("TARGET", &mark), (MARK, &mark)],
        &[
            ("autoscaling.knative.dev/min-scale", "1"),
            ("autoscaling.knative.dev/max-scale", "1"),
        ],
        json!({"containerConcurrency": 1}),
    ));
    d.wait_service_ready("cc");
    assert_eq!(marked_pids(&mark).len(), 1, "one replica");

    // N requests of SLEEP ms at once. With at most one in flight on the one replica they run
    // one after the other: the k-th to finish cannot finish before k × SLEEP after the first
    // was sent, however fast or slow the machine is. Without the limit they all finish after
    // about one SLEEP.
    const N: usize = 5;
    const SLEEP: Duration = Duration::from_millis(300);
    let port = d.gateway_port;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(N + 1));
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let path = format!("/?echo=1&sleep={}", SLEEP.as_millis());
                let r = http_request_to(port, "cc.default.localhost", "GET", &path, None)
                    .expect("request");
                (Instant::now(), r)
            })
        })
        .collect();
    // Taken before the threads are let go: no request was sent before it.
    let sent = Instant::now();
    barrier.wait();
    let mut done: Vec<(Instant, Response)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    done.sort_by_key(|(at, _)| *at);
    let pids: Vec<u64> = done
        .iter()
        .map(|(_, r)| {
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["pid"].as_u64().expect("pid")
        })
        .collect();
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one replica: {pids:?}"
    );
    for (k, (at, _)) in done.iter().enumerate() {
        let took = at.duration_since(sent);
        assert!(
            took >= SLEEP * (k as u32 + 1),
            "response {} of {N} came {took:?} after sending: requests overlapped on the replica \
             despite containerConcurrency 1",
            k + 1
        );
    }
}

#[test]
fn timeouts_answer_504_naming_the_setting() {
    let mark = unique("timeout");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let settings = [
        ("total", "timeoutSeconds"),
        ("first-byte", "responseStartTimeoutSeconds"),
        ("idle", "idleTimeoutSeconds"),
    ];
    for (name, key) in settings {
        d.create_service(&testapp_service(
            name,
            &[("TARGET", name), (MARK, &mark)],
            &[],
            json!({ key: 1 }),
        ));
    }
    for (name, key) in settings {
        d.wait_service_ready(name);
        // Nothing comes back for 3 s: each of the three fires after 1 s.
        let r = d.gateway_get(&host(name), "/?sleep=3000");
        assert_eq!(r.status, 504, "{key}: {}", r.body);
        assert!(r.body.contains(key), "{key}: {}", r.body);
        // Fast requests are not affected.
        let r = d.gateway_get(&host(name), "/");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, &*format!("Hello {name}!\n")),
            "{key}"
        );
    }
    // A response that starts at once and goes on sending (3 s, a line every 10 ms) beats the
    // first-byte and idle timeouts.
    for name in ["first-byte", "idle"] {
        let r = d.gateway_get(&host(name), "/?stream=300");
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.body.lines().count(), 300, "{name}: the stream was cut");
    }
}

#[test]
fn idle_revision_scales_to_zero_and_back() {
    let mark = unique("zero");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start_with(FAST_AUTOSCALER);
    // A slow start (3 s before it listens) leaves time to see the revision activating.
    d.create_service(&testapp_service(
        "sleepy",
        &[("TARGET", &mark), (MARK, &mark), ("START_DELAY_MS", "3000")],
        &[],
        json!({}),
    ));
    // Beside it, one that min-scale keeps up.
    let awake = format!("{mark}-awake");
    let _sweep_awake = Sweep(awake.clone());
    d.create_service(&testapp_service(
        "awake",
        &[("TARGET", &awake), (MARK, &awake)],
        &[("autoscaling.knative.dev/min-scale", "1")],
        json!({}),
    ));
    d.wait_service_ready("sleepy");
    d.wait_service_ready("awake");
    let r = d.gateway_get("sleepy.default.localhost", "/");
    assert_eq!(r.status, 200, "{}", r.body);
    let first = marked_pids(&mark);
    assert_eq!(first.len(), 1, "one replica: {first:?}");
    let awake_pids = marked_pids(&awake);
    assert_eq!(awake_pids.len(), 1, "{awake_pids:?}");

    // Idle: after the stable window and the grace period, no replica and Active=False.
    let rev = wait_revision(&d, "sleepy-00001", "at zero, NoTraffic", |r| {
        r["status"]["actualReplicas"] == 0 && cond_parts(r, "Active").0 == "False"
    });
    assert_eq!(
        cond_parts(&rev, "Active").1,
        "NoTraffic",
        "{}",
        rev["status"]
    );
    // At zero a revision stays Ready.
    assert_eq!(condition(&rev, "Ready"), "True", "{}", rev["status"]);
    wait_for("no replica process left", || {
        let pids = marked_pids(&mark);
        pids.is_empty().then_some(()).ok_or(format!("{pids:?}"))
    });
    let svc = d.service("sleepy").expect("service");
    assert_eq!(condition(&svc, "Ready"), "True", "{}", svc["status"]);
    // Just as idle, but min-scale 1: still up, the same process.
    assert_eq!(
        marked_pids(&awake),
        awake_pids,
        "min-scale 1 keeps its replica"
    );
    let rev = d.revision("awake-00001").expect("awake-00001");
    assert_eq!(rev["status"]["actualReplicas"], 1, "{}", rev["status"]);

    // The next request is held while a replica starts (the revision says Active=Unknown,
    // Queued), then answered.
    let port = d.gateway_port;
    let waker = std::thread::spawn(move || {
        http_request_to(port, "sleepy.default.localhost", "GET", "/", None)
    });
    let rev = wait_revision(&d, "sleepy-00001", "activating", |r| {
        cond_parts(r, "Active").0 == "Unknown"
    });
    assert_eq!(cond_parts(&rev, "Active").1, "Queued", "{}", rev["status"]);
    let r = waker
        .join()
        .expect("requesting thread")
        .expect("request at zero");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );
    let pids = marked_pids(&mark);
    assert_eq!(pids.len(), 1, "one replica again: {pids:?}");
    assert_ne!(pids, first, "a new process");
    wait_revision(&d, "sleepy-00001", "active again", |r| {
        r["status"]["actualReplicas"] == 1 && condition(r, "Active") == "True"
    });
}

#[test]
fn crashing_replica_is_restarted() {
    let mark = unique("crash");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service(
        "crashy",
        &[("TARGET", &mark), (MARK, &mark), ("CRASH_AFTER", "1")],
        &[],
        json!({}),
    ));
    d.wait_service_ready("crashy");
    let first = echo(&d, "crashy.default.localhost", "");
    let pid1 = first["pid"].as_u64().expect("pid") as u32;
    // It exits after that answer; a new run of the replica answers the next request.
    let second = wait_for("an answer from a restarted replica", || {
        let r = d
            .gateway_get_within("crashy.default.localhost", "/?echo=1", ANSWER_WITHIN)
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("{} {}", r.status, r.body));
        }
        let e = r.json();
        if e["pid"].as_u64() == Some(u64::from(pid1)) {
            return Err(format!("still pid {pid1}"));
        }
        Ok(e)
    });
    assert_eq!(second["env"]["K_REVISION"], "crashy-00001", "{second}");
    assert!(!pid_alive(pid1), "the crashed run {pid1} is gone");
    assert!(
        count_log_lines(&d.data_dir, "crashy-00001", "CRASH_AFTER=1 reached") >= 1,
        "the crash is in the replica's log"
    );
}

#[test]
fn failing_to_start_is_reported_without_a_restart_storm() {
    let mark = unique("fail");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service(
        "broken",
        &[("TARGET", &mark), (MARK, &mark), ("FAIL_TO_START", "1")],
        &[],
        json!({}),
    ));
    let created = Instant::now();
    let rev = wait_revision(&d, "broken-00001", "ContainerHealthy=False", |r| {
        cond_parts(r, "ContainerHealthy").0 == "False" && condition(r, "Ready") == "False"
    });
    let (_, reason, message) = cond_parts(&rev, "ContainerHealthy");
    assert_eq!(reason, "ExitCode1", "{}", rev["status"]);
    assert!(
        message.starts_with("Container failed with:"),
        "{}",
        rev["status"]
    );
    assert!(
        message.contains("FAIL_TO_START is set"),
        "the message quotes the app's last words: {}",
        rev["status"]
    );
    wait_for("service broken Ready=False", || {
        let svc = d.service("broken").ok_or("absent")?;
        (condition(&svc, "Ready") == "False")
            .then_some(())
            .ok_or(svc["status"].to_string())
    });

    // A request is refused with a reason, not held until it times out. The route never had a
    // ready revision, so (as in Knative, whose ingress is not programmed then) the host may be
    // unknown (404); a 503 naming the failing revision is fine too.
    let r = d
        .gateway_get_within("broken.default.localhost", "/", ANSWER_WITHIN)
        .expect("an answer, not a hang");
    assert!(matches!(r.status, 404 | 503), "{} {}", r.status, r.body);
    assert!(r.body.contains("broken"), "{}", r.body);

    // Restarts back off: over the first 5 s or more, a handful of starts, not a storm.
    let window = Duration::from_secs(5);
    if let Some(left) = window.checked_sub(created.elapsed()) {
        std::thread::sleep(left);
    }
    let starts = count_log_lines(&d.data_dir, "broken-00001", "FAIL_TO_START is set");
    assert!(
        (1..10).contains(&starts),
        "{starts} starts within {:?}",
        created.elapsed()
    );
}

#[test]
fn missing_command_is_reported_without_a_restart_storm() {
    let mark = unique("missing");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let mut svc = testapp_service("ghost", &[(MARK, &mark)], &[], json!({}));
    merge(
        container_mut(&mut svc),
        json!({"command": ["/nonexistent/app"]}),
    );
    d.create_service(&svc);
    let created = Instant::now();
    let rev = wait_revision(&d, "ghost-00001", "Ready=False", |r| {
        condition(r, "Ready") == "False"
    });
    let (status, reason, message) = cond_parts(&rev, "ContainerHealthy");
    assert_eq!(status, "False", "{}", rev["status"]);
    assert!(
        reason == "StartError" || reason.starts_with("ExitCode"),
        "{}",
        rev["status"]
    );
    assert!(
        message.contains("/nonexistent/app"),
        "the message names the command: {}",
        rev["status"]
    );

    let r = d
        .gateway_get_within("ghost.default.localhost", "/", ANSWER_WITHIN)
        .expect("an answer, not a hang");
    assert!(matches!(r.status, 404 | 503), "{} {}", r.status, r.body);
    assert!(r.body.contains("ghost"), "{}", r.body);

    let window = Duration::from_secs(5);
    if let Some(left) = window.checked_sub(created.elapsed()) {
        std::thread::sleep(left);
    }
    // Every failed start is one "replica ended" warning in the daemon's log.
    let log = d.log_text();
    let starts = log
        .lines()
        .filter(|l| l.contains("replica ended") && l.contains("ghost-00001"))
        .count();
    assert!(
        (1..10).contains(&starts),
        "{starts} failed starts within {:?}",
        created.elapsed()
    );
}

/// A revision that served, went to zero, and whose replicas now fail to start: the request
/// that woke it is answered 503 with the reason instead of being held, the revision reports
/// the exit, and it recovers once the cause is gone.
#[test]
fn revision_failing_on_cold_start_answers_503() {
    let mark = unique("coldfail");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start_with(FAST_AUTOSCALER);
    let flag = d.scratch.join("fail-now");
    let script = format!(
        "if [ -e '{}' ]; then echo 'cold start failure: dependency down' >&2; exit 1; fi; exec '{}'",
        flag.display(),
        testapp_bin().display()
    );
    let mut svc = testapp_service(
        "fragile",
        &[("TARGET", &mark), (MARK, &mark)],
        &[],
        json!({}),
    );
    merge(
        container_mut(&mut svc),
        json!({"command": ["/bin/sh", "-c", script]}),
    );
    d.create_service(&svc);
    d.wait_service_ready("fragile");
    wait_revision(&d, "fragile-00001", "at zero", |r| {
        r["status"]["actualReplicas"] == 0 && cond_parts(r, "Active").0 == "False"
    });

    std::fs::write(&flag, "").expect("flag file");
    let r = d
        .gateway_get_within("fragile.default.localhost", "/", ANSWER_WITHIN)
        .expect("an answer, not a hang");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("fragile-00001"), "{}", r.body);
    let rev = wait_revision(&d, "fragile-00001", "ContainerHealthy=False", |r| {
        cond_parts(r, "ContainerHealthy").0 == "False"
    });
    let (_, reason, message) = cond_parts(&rev, "ContainerHealthy");
    assert_eq!(reason, "ExitCode1", "{}", rev["status"]);
    assert!(
        message.contains("cold start failure: dependency down"),
        "{}",
        rev["status"]
    );

    std::fs::remove_file(&flag).expect("remove the flag");
    wait_for("fragile to answer again", || {
        let r = d
            .gateway_get_within("fragile.default.localhost", "/", ANSWER_WITHIN)
            .map_err(|e| e.to_string())?;
        (r.status == 200 && r.body == format!("Hello {mark}!\n"))
            .then_some(())
            .ok_or(format!("{} {}", r.status, r.body))
    });
}

#[test]
fn never_ready_revision_fails_its_progress_deadline_and_keeps_traffic() {
    let mark = unique("deadline");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let v1 = format!("{mark}-v1");
    d.create_service(&testapp_service(
        "pd",
        &[("TARGET", &v1), (MARK, &mark)],
        &[],
        json!({}),
    ));
    d.wait_service_ready("pd");

    let mut svc2 = testapp_service(
        "pd",
        &[("TARGET", "v2"), (MARK, &mark), ("HEALTHZ_FAIL", "1")],
        &[("serving.knative.dev/progress-deadline", "5s")],
        json!({}),
    );
    merge(
        container_mut(&mut svc2),
        json!({"readinessProbe": {"httpGet": {"path": "/healthz"}}}),
    );
    d.patch_service("pd", &json!({"spec": svc2["spec"].take()}));
    let rev = wait_revision(&d, "pd-00002", "ProgressDeadlineExceeded", |r| {
        cond_parts(r, "ResourcesAvailable").1 == "ProgressDeadlineExceeded"
    });
    assert_eq!(
        cond_parts(&rev, "ResourcesAvailable").0,
        "False",
        "{}",
        rev["status"]
    );
    assert_eq!(condition(&rev, "Ready"), "False", "{}", rev["status"]);

    let svc = wait_for("service pd Ready=False", || {
        let svc = d.service("pd").ok_or("absent")?;
        (condition(&svc, "Ready") == "False")
            .then_some(svc.clone())
            .ok_or(svc["status"].to_string())
    });
    assert_eq!(s(&svc, "/status/latestCreatedRevisionName"), "pd-00002");
    assert_eq!(s(&svc, "/status/latestReadyRevisionName"), "pd-00001");
    let route = d.route("pd").expect("route");
    assert_eq!(
        route_traffic(&route),
        vec![("pd-00001".to_string(), 100, String::new())],
        "{}",
        route["status"]
    );
    let mut c = d.client(&host("pd"));
    for _ in 0..20 {
        let r = c.get("/").expect("request");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, &*format!("Hello {v1}!\n"))
        );
    }
}

#[test]
fn readiness_probes_gate_readiness() {
    let mark = unique("probes");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let probed = |name: &str, probe: Value, annotations: &[(&str, &str)]| {
        let mut svc = testapp_service(
            name,
            &[("TARGET", name), (MARK, &mark)],
            annotations,
            json!({}),
        );
        merge(container_mut(&mut svc), json!({"readinessProbe": probe}));
        d.create_service(&svc);
    };
    probed(
        "exec-ok",
        json!({"exec": {"command": ["/bin/sh", "-c", "exit 0"]}}),
        &[],
    );
    probed("http-ok", json!({"httpGet": {"path": "/healthz"}}), &[]);
    probed(
        "exec-fail",
        json!({"exec": {"command": ["/bin/sh", "-c", "exit 1"]}}),
        &[("serving.knative.dev/progress-deadline", "5s")],
    );
    for name in ["exec-ok", "http-ok"] {
        d.wait_service_ready(name);
        let r = d.gateway_get(&host(name), "/");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, &*format!("Hello {name}!\n"))
        );
    }
    // The failing exec probe keeps its (running) replica out of service.
    let rev = wait_revision(&d, "exec-fail-00001", "Ready=False", |r| {
        condition(r, "Ready") == "False"
    });
    assert_eq!(
        cond_parts(&rev, "ResourcesAvailable").1,
        "ProgressDeadlineExceeded",
        "{}",
        rev["status"]
    );
    assert_eq!(rev["status"]["actualReplicas"], 0, "{}", rev["status"]);
}

#[test]
fn failing_liveness_probe_restarts_the_replica() {
    let mark = unique("liveness");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let mut svc = testapp_service(
        "sick",
        &[("TARGET", &mark), (MARK, &mark), ("HEALTHZ_FAIL", "1")],
        &[],
        json!({}),
    );
    merge(
        container_mut(&mut svc),
        json!({
            "readinessProbe": {"tcpSocket": {}},
            // The delay lets readiness pass first, so the replica serves before it is killed.
            "livenessProbe": {
                "httpGet": {"path": "/healthz"},
                "initialDelaySeconds": 2,
                "periodSeconds": 1,
                "failureThreshold": 1,
            },
        }),
    );
    d.create_service(&svc);
    d.wait_service_ready("sick");
    let first = wait_for("a replica process", || {
        let pids = marked_pids(&mark);
        pids.first().copied().ok_or("none".to_string())
    });
    wait_for("the replica restarted (another pid)", || {
        let pids = marked_pids(&mark);
        if pids.iter().any(|p| *p != first) && !pid_alive(first) {
            Ok(())
        } else {
            Err(format!("{pids:?}"))
        }
    });
    assert!(
        count_log_lines(&d.data_dir, "sick-00001", "wisp-testapp listening on") >= 2,
        "two runs in the replica's log"
    );
}

#[test]
fn in_flight_request_survives_rollout_and_revision_removal() {
    let mark = unique("drain");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let (v1, v2) = (format!("{mark}-v1"), format!("{mark}-v2"));
    d.create_service(&testapp_service(
        "drain",
        &[("TARGET", &v1), ("ROLE", "v1"), (MARK, &mark)],
        &[],
        json!({}),
    ));
    d.wait_service_ready("drain");
    let old = pids_with_env("TARGET", &v1);
    assert_eq!(old.len(), 1, "{old:?}");

    // A response that streams for about 6 s (600 lines 10 ms apart): once its first line is
    // here, the request is in flight on drain-00001.
    const LINES: usize = 600;
    let mut stream = open_stream(
        d.gateway_port,
        "drain.default.localhost",
        &format!("/?stream={LINES}"),
    )
    .expect("open the stream");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_line().as_deref(), Some("chunk 0"));
    let reader = std::thread::spawn(move || {
        let mut lines = vec!["chunk 0".to_string()];
        while let Some(l) = stream.next_line() {
            lines.push(l);
        }
        lines
    });

    // Roll out drain-00002 and take drain-00001 away while the response is under way.
    let mut svc2 = testapp_service(
        "drain",
        &[("TARGET", &v2), ("ROLE", "v2"), (MARK, &mark)],
        &[],
        json!({}),
    );
    d.patch_service("drain", &json!({"spec": svc2["spec"].take()}));
    d.wait_service_ready("drain");
    wait_for("the route on drain-00002", || {
        let route = d.route("drain").ok_or("absent")?;
        let t = route_traffic(&route);
        (t == vec![("drain-00002".to_string(), 100, String::new())])
            .then_some(())
            .ok_or(route["status"].to_string())
    });
    let r = d.request(
        "DELETE",
        &serving_path("default", "revisions", Some("drain-00001")),
        None,
    );
    assert_eq!(r.status, 200, "delete drain-00001: {}", r.body);

    let lines = reader.join().expect("reader");
    let want: Vec<String> = (0..LINES).map(|i| format!("chunk {i}")).collect();
    assert_eq!(
        lines.len(),
        want.len(),
        "the in-flight response was cut: last line {:?}",
        lines.last()
    );
    assert_eq!(lines, want);

    // The replica was told to stop while the response was under way, and drained it.
    assert_eq!(
        count_log_lines(
            &d.data_dir,
            "drain-00001",
            "draining 1 request(s) in flight"
        ),
        1,
        "drain-00001's replica got SIGTERM with the request in flight"
    );
    // New requests go to drain-00002; drain-00001's process is gone.
    let r = d.gateway_get("drain.default.localhost", "/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {v2}!\n"))
    );
    wait_for("drain-00001's replica gone", || {
        let pids: Vec<u32> = old.iter().copied().filter(|p| pid_alive(*p)).collect();
        pids.is_empty().then_some(()).ok_or(format!("{pids:?}"))
    });
}

#[test]
fn killed_daemon_leaves_no_orphans() {
    let mark = unique("orphans");
    let _sweep = Sweep(mark.clone());
    let root = tempfile::Builder::new()
        .prefix("wisp-e2e-")
        .tempdir()
        .expect("tempdir");
    let mut d = Daemon::start_in(root.path());
    // The replica (leader of its process group) starts a helper of its own in the background:
    // the death signal reaches the leader only, the helper is the sweep's job.
    let app = testapp_bin();
    let script = format!(
        "ROLE=helper PORT=0 HOST=127.0.0.1 '{0}' & exec '{0}'",
        app.display()
    );
    let mut svc = testapp_service(
        "survivor",
        &[("TARGET", &mark), ("ROLE", "main"), (MARK, &mark)],
        &[],
        json!({}),
    );
    merge(
        container_mut(&mut svc),
        json!({"command": ["/bin/sh", "-c", script]}),
    );
    d.create_service(&svc);
    // And a service that min-scale keeps up, across restarts too.
    let steady = format!("{mark}-steady");
    let _sweep_steady = Sweep(steady.clone());
    d.create_service(&testapp_service(
        "steady",
        &[("TARGET", "steady"), (MARK, &steady)],
        &[("autoscaling.knative.dev/min-scale", "1")],
        json!({}),
    ));
    d.wait_service_ready("survivor");
    d.wait_service_ready("steady");
    let steady_before = marked_pids(&steady);
    assert_eq!(steady_before.len(), 1, "{steady_before:?}");
    let r = d.gateway_get("survivor.default.localhost", "/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );
    let procs = |role: &str| -> Vec<u32> {
        let ours = marked_pids(&mark);
        pids_with_env("ROLE", role)
            .into_iter()
            .filter(|p| ours.contains(p))
            .collect()
    };
    let main = procs("main");
    let helper = wait_for("the helper process", || {
        let h = procs("helper");
        (h.len() == 1).then_some(h).ok_or("none".to_string())
    });
    assert_eq!(main.len(), 1, "{main:?}");

    // SIGKILL: no clean-up. The replicas die with the daemon (their death signal).
    d.kill();
    wait_for("the replicas to die with the daemon", || {
        let alive: Vec<u32> = main
            .iter()
            .chain(&steady_before)
            .copied()
            .filter(|p| pid_alive(*p))
            .collect();
        alive.is_empty().then_some(()).ok_or(format!("{alive:?}"))
    });

    // The next daemon on the same data dir reaps what is left before it serves.
    let mut d = Daemon::start_in(root.path());
    let alive: Vec<u32> = helper.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "the orphaned helper {alive:?} outlived the restart"
    );
    // min-scale brings steady back up by itself, with one replica.
    wait_for("steady's replica back without a request", || {
        let pids = marked_pids(&steady);
        (pids.len() == 1 && pids != steady_before)
            .then_some(())
            .ok_or(format!("{pids:?}"))
    });
    // The service answers again, from one new replica (and its helper).
    d.wait_service_ready("survivor");
    let r = d
        .gateway_get_within("survivor.default.localhost", "/", DEADLINE)
        .expect("request after restart");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, &*format!("Hello {mark}!\n"))
    );
    let now_main = procs("main");
    assert_eq!(now_main.len(), 1, "exactly one replica: {now_main:?}");
    assert!(!main.contains(&now_main[0]), "a new replica");
    wait_for("exactly one helper", || {
        let h = procs("helper");
        (h.len() == 1 && !helper.contains(&h[0]))
            .then_some(())
            .ok_or(format!("{h:?}"))
    });
    let steady_pids = marked_pids(&steady);
    assert_eq!(steady_pids.len(), 1, "steady: {steady_pids:?}");
    // A clean stop takes the replica's whole group.
    d.stop();
    let left: Vec<u32> = marked_pids(&mark)
        .into_iter()
        .chain(marked_pids(&steady))
        .collect();
    assert!(left.is_empty(), "left after SIGTERM: {left:?}");
}

#[test]
fn stopped_daemon_drains_and_stops_replicas() {
    let mark = unique("sigterm");
    let _sweep = Sweep(mark.clone());
    let mut d = Daemon::start();
    for name in ["one", "two"] {
        d.create_service(&testapp_service(
            name,
            &[("TARGET", name), (MARK, &mark)],
            &[("autoscaling.knative.dev/min-scale", "2")],
            json!({}),
        ));
    }
    d.wait_service_ready("one");
    d.wait_service_ready("two");
    wait_for("four replicas", || {
        let pids = marked_pids(&mark);
        (pids.len() == 4).then_some(()).ok_or(format!("{pids:?}"))
    });

    // A response under way when SIGTERM arrives is finished, as a replica's drain finishes it.
    const LINES: usize = 200;
    let mut stream = open_stream(
        d.gateway_port,
        "one.default.localhost",
        &format!("/?stream={LINES}"),
    )
    .expect("open the stream");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_line().as_deref(), Some("chunk 0"));
    let reader = std::thread::spawn(move || {
        let mut n = 1;
        while stream.next_line().is_some() {
            n += 1;
        }
        n
    });
    if let Err(e) = d.stop_within(DEADLINE) {
        panic!("{e}\n{}", d.log_text());
    }
    let left = marked_pids(&mark);
    assert!(left.is_empty(), "replicas left after SIGTERM: {left:?}");
    assert_eq!(
        reader.join().expect("reader"),
        LINES,
        "the in-flight response was cut"
    );
}
