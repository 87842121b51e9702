//! Crash safety and restarts: SIGKILL the daemon in the middle of a burst of writes, restart it
//! on the same data dir, and check that every acknowledged write is there, that the controller
//! converges (each Service gets its Configuration, Route and Revision, once), and that
//! resourceVersions go on increasing. A clean restart keeps everything as it was.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;

/// Services acknowledged by the daemon: name -> (uid, resourceVersion).
type Acked = Arc<Mutex<BTreeMap<String, (String, u64)>>>;

fn items(d: &Daemon, plural: &str) -> Vec<Value> {
    d.get_json(&format!("{SERVING}/{plural}"))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until every Service has its Configuration, Route and `{name}-00001` Revision and says
/// so in its status; then checks there is nothing more (no duplicates, no orphans).
fn assert_converged(d: &Daemon) {
    wait_for("the controller to converge", || {
        let services = items(d, "services");
        let configs: BTreeSet<String> = items(d, "configurations")
            .iter()
            .map(|c| s(c, "/metadata/name").to_string())
            .collect();
        let routes: BTreeSet<String> = items(d, "routes")
            .iter()
            .map(|c| s(c, "/metadata/name").to_string())
            .collect();
        let revisions: BTreeSet<String> = items(d, "revisions")
            .iter()
            .map(|c| s(c, "/metadata/name").to_string())
            .collect();
        for svc in &services {
            let name = s(svc, "/metadata/name");
            let rev = format!("{name}-00001");
            if !configs.contains(name) || !routes.contains(name) || !revisions.contains(&rev) {
                return Err(format!("{name} lacks children"));
            }
            if s(svc, "/status/latestCreatedRevisionName") != rev {
                return Err(format!("{name} status: {}", svc["status"]));
            }
        }
        Ok(())
    });
    let services: BTreeSet<String> = items(d, "services")
        .iter()
        .map(|c| s(c, "/metadata/name").to_string())
        .collect();
    for plural in ["configurations", "routes"] {
        let got: Vec<String> = items(d, plural)
            .iter()
            .map(|c| s(c, "/metadata/name").to_string())
            .collect();
        assert_eq!(
            got,
            services.iter().cloned().collect::<Vec<_>>(),
            "{plural}: one per Service, no orphans"
        );
    }
    let mut per_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rev in items(d, "revisions") {
        per_service
            .entry(s(&rev, "/metadata/labels/serving.knative.dev~1service").to_string())
            .or_default()
            .push(s(&rev, "/metadata/name").to_string());
    }
    for name in &services {
        assert_eq!(
            per_service.remove(name),
            Some(vec![format!("{name}-00001")]),
            "exactly one revision for {name}"
        );
    }
    assert!(per_service.is_empty(), "orphan revisions: {per_service:?}");
}

/// Posts Services `{prefix}-{i}` until the daemon stops answering or `stop` is set.
fn writer(port: u16, prefix: String, acked: Acked, count: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    let path = serving_path("default", "services", None);
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let name = format!("{prefix}-{i:03}");
        let body = service_json(&name, "x").to_string();
        match http_request(port, "POST", &path, Some(("application/json", &body))) {
            Ok(r) if r.status == 201 => {
                let obj = r.json();
                acked
                    .lock()
                    .unwrap()
                    .insert(name, (s(&obj, "/metadata/uid").to_string(), rv(&obj)));
                count.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => panic!("POST {name}: {} {}", r.status, r.body),
            // The daemon is gone: whatever was in flight is not acknowledged.
            Err(_) => return,
        }
    }
}

/// Applies Services `{prefix}-{i}` with the CLI until it fails or `stop` is set.
fn cli_writer(
    d_url: String,
    prefix: String,
    acked: Acked,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let name = format!("{prefix}-{i:03}");
        let out = std::process::Command::new(wisp_bin())
            .args(["apply", "-f", "-"])
            .env("WISP_SERVER", &d_url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(service_yaml(&name, "x").as_bytes())?;
                c.wait_with_output()
            })
            .expect("run wisp apply");
        if !out.status.success() {
            return;
        }
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("service.serving.knative.dev/{name} created")
        );
        acked.lock().unwrap().insert(name, (String::new(), 0));
        count.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn sigkill_during_writes_keeps_every_acknowledged_object() {
    let root = tempfile::Builder::new()
        .prefix("wisp-e2e-crash-")
        .tempdir()
        .unwrap();
    let mut d = Daemon::start_in(root.path());
    let acked: Acked = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..3 {
        let (acked, count, stop) = (acked.clone(), count.clone(), stop.clone());
        let port = d.api_port;
        threads.push(std::thread::spawn(move || {
            writer(port, format!("w{t}"), acked, count, stop)
        }));
    }
    {
        let (acked, count, stop, url) = (acked.clone(), count.clone(), stop.clone(), d.url());
        threads.push(std::thread::spawn(move || {
            cli_writer(url, "cli".into(), acked, count, stop)
        }));
    }
    // Kill while the writers (and the controller behind them) are busy.
    wait_for("150 acknowledged creates", || {
        let n = count.load(Ordering::SeqCst);
        if n >= 150 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    });
    d.kill();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("writer thread");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150);
    let max_acked_rv = acked.values().map(|(_, v)| *v).max().unwrap();

    // Restart on the same state.
    let d = Daemon::start_in(root.path());
    for (name, (uid, _)) in &acked {
        let svc = d
            .get_opt(&serving_path("default", "services", Some(name)))
            .unwrap_or_else(|| panic!("acknowledged Service {name} was lost"));
        if !uid.is_empty() {
            assert_eq!(s(&svc, "/metadata/uid"), uid, "{name} was replaced");
        }
    }
    assert_converged(&d);

    // resourceVersions continue after the crash.
    let list_rv = rv(&d.get_json(&serving_path("default", "services", None)));
    assert!(list_rv >= max_acked_rv, "{list_rv} < {max_acked_rv}");
    let r = d.post_json(
        &serving_path("default", "services", None),
        &service_json("after-crash", "x"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(rv(&r.json()) > list_rv);
    assert_converged(&d);
}

#[test]
fn clean_restart_keeps_state_and_versions_continue() {
    let root = tempfile::Builder::new()
        .prefix("wisp-e2e-restart-")
        .tempdir()
        .unwrap();
    let mut d = Daemon::start_in(root.path());
    for name in ["a", "b", "c"] {
        d.wisp_stdin(&["apply", "-f", "-"], Some(&service_yaml(name, "one")))
            .success();
    }
    d.wisp(&["service", "update", "b", "--env", "TARGET=two"])
        .success();
    wait_for("b-00002", || {
        d.get_opt(&serving_path("default", "revisions", Some("b-00002")))
            .ok_or_else(|| "absent".to_string())
    });
    d.wisp(&["delete", "ksvc", "c"]).success();
    wait_for("c's children to go", || {
        if items(&d, "revisions")
            .iter()
            .any(|r| s(r, "/metadata/name") == "c-00001")
        {
            Err("c-00001 remains".into())
        } else {
            Ok(())
        }
    });
    let before: Vec<(String, String, Value, Value)> =
        ["services", "configurations", "revisions", "routes"]
            .into_iter()
            .flat_map(|p| items(&d, p))
            .map(|o| {
                (
                    s(&o, "/metadata/name").to_string(),
                    s(&o, "/metadata/uid").to_string(),
                    o["metadata"]["generation"].clone(),
                    o["spec"].clone(),
                )
            })
            .collect();
    let rv_before = rv(&d.get_json("/api/v1/namespaces"));
    d.stop();

    // The stopped daemon released the data dir's lock.
    let d = Daemon::start_in(root.path());
    let after: Vec<(String, String, Value, Value)> =
        ["services", "configurations", "revisions", "routes"]
            .into_iter()
            .flat_map(|p| items(&d, p))
            .map(|o| {
                (
                    s(&o, "/metadata/name").to_string(),
                    s(&o, "/metadata/uid").to_string(),
                    o["metadata"]["generation"].clone(),
                    o["spec"].clone(),
                )
            })
            .collect();
    assert_eq!(after, before, "a restart must keep every object as it was");
    assert!(rv(&d.get_json("/api/v1/namespaces")) >= rv_before);
    let out = d.wisp(&["get", "ksvc"]).success();
    let t = Table::parse(&out.stdout);
    assert_eq!(t.firsts(), ["a", "b"], "{out}");
    assert_eq!(t.cell("b", "LATESTCREATED"), "b-00002");

    // New writes get newer versions than anything before the restart.
    let r = d.post_json(
        &serving_path("default", "services", None),
        &service_json("d", "x"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(rv(&r.json()) > rv_before);
    // And a deleted name can be created anew (a new uid, revision numbering from 1).
    let r = d.post_json(
        &serving_path("default", "services", None),
        &service_json("c", "x"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for("c-00001 again", || {
        d.get_opt(&serving_path("default", "revisions", Some("c-00001")))
            .ok_or_else(|| "absent".to_string())
    });
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused() {
    let d = Daemon::start();
    let out = std::process::Command::new(wisp_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&d.data_dir)
        .args(["--api-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run wisp serve");
    assert!(
        !out.status.success(),
        "a second daemon started on the same data dir"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data dir"), "{stderr}");
    // The first one is unharmed.
    assert_eq!(d.request("GET", "/healthz", None).status, 200);
}

#[test]
fn sigkill_during_cascading_deletes_leaves_no_half_deleted_service() {
    let root = tempfile::Builder::new()
        .prefix("wisp-e2e-crash-delete-")
        .tempdir()
        .unwrap();
    let mut d = Daemon::start_in(root.path());
    let path = serving_path("default", "services", None);
    let all: Vec<String> = (0..40).map(|i| format!("del-{i:02}")).collect();
    for name in &all {
        let r = d.post_json(&path, &service_json(name, "x"));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    assert_converged(&d);

    // Delete them all from two threads; kill once some deletes were acknowledged.
    let deleted: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for half in all.chunks(all.len() / 2) {
        let (names, deleted, count, port) =
            (half.to_vec(), deleted.clone(), count.clone(), d.api_port);
        threads.push(std::thread::spawn(move || {
            for name in names {
                let p = serving_path("default", "services", Some(&name));
                match http_request(port, "DELETE", &p, None) {
                    Ok(r) if r.status == 200 => {
                        deleted.lock().unwrap().insert(name);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("DELETE {name}: {} {}", r.status, r.body),
                    Err(_) => return,
                }
            }
        }));
    }
    wait_for("10 acknowledged deletes", || {
        let n = count.load(Ordering::SeqCst);
        if n >= 10 { Ok(()) } else { Err(format!("{n}")) }
    });
    d.kill();
    for t in threads {
        t.join().expect("delete thread");
    }
    let deleted = deleted.lock().unwrap().clone();

    let d = Daemon::start_in(root.path());
    for name in &deleted {
        assert!(
            d.get_opt(&serving_path("default", "services", Some(name)))
                .is_none(),
            "acknowledged delete of {name} was lost"
        );
    }
    // Whatever survived is whole; whatever was deleted left no children behind.
    assert_converged(&d);
    let left = items(&d, "services").len();
    assert!(left <= all.len() - deleted.len(), "{left} services left");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut d = Daemon::start();
    d.wisp_stdin(&["apply", "-f", "-"], Some(&service_yaml("a", "x")))
        .success();
    d.stop();
}

#[test]
fn sigterm_with_an_open_watch_exits() {
    let mut d = Daemon::start();
    // As `kubectl get ksvc -w` would hold it open.
    let mut w = d.stream(&format!(
        "{}?watch=true",
        serving_path("default", "services", None)
    ));
    assert_eq!(w.status, 200);
    d.post_json(
        &serving_path("default", "services", None),
        &service_json("a", "x"),
    );
    assert_eq!(s(&w.next_json().expect("an event"), "/type"), "ADDED");
    let stopped = d.stop_within(std::time::Duration::from_secs(10));
    assert_eq!(stopped, Ok(()), "with a watch open");
    drop(w);
}
