//! The dashboard end to end: the real daemon serves `/dashboard/`, a Service of the test app
//! takes traffic through the real gateway, and Debian's headless Chromium, driven by
//! playwright-core (`tests/dashboard/check.mjs`), must see the Service's name, URL and
//! readiness, its revision and a request count and rate above zero. The page's screenshots
//! (light and dark) are kept as `target/dashboard-screenshot.png` and `…-dark.png`.
//!
//! Node, npm, Chromium and playwright-core are required, never optional: a missing one fails
//! the test with what to install (`.ci/run` installs them). playwright-core is installed into
//! `tests/dashboard/node_modules` from its lock file when it is not there yet.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// The browser check's own deadline is 90 s; this bounds the whole node process.
const CHECK_LIMIT: Duration = Duration::from_secs(240);

fn dashboard_dir() -> PathBuf {
    workspace_dir().join("tests").join("dashboard")
}

/// The target dir the artifacts go to (`$CARGO_TARGET_DIR` or the workspace's `target`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        Some(p) => workspace_dir().join(p),
        None => workspace_dir().join("target"),
    }
}

/// `program --version` must run: these tests need it.
#[track_caller]
fn require(program: &str, why: &str) {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{program} is not installed: {why}");
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {}: install Debian's chromium package (.ci/run does) or set $CHROMIUM",
        path.display()
    );
    path
}

/// `.dependencies["playwright-core"]` of a package.json, or `.version` of an installed one.
fn json_field(path: &Path, pointer: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer(pointer)?.as_str().map(str::to_string)
}

/// Installs playwright-core from `package-lock.json` unless the pinned version is there.
fn npm_dependencies(dir: &Path) {
    let pinned = json_field(&dir.join("package.json"), "/dependencies/playwright-core");
    let installed = json_field(
        &dir.join("node_modules/playwright-core/package.json"),
        "/version",
    );
    if pinned.is_some() && installed == pinned {
        return;
    }
    require("npm", "apt-get install npm (.ci/run does)");
    let run = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run npm ci");
    assert!(
        run.status.success(),
        "npm ci in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Runs `cmd` to its end or kills it after `limit`; returns (success, stdout + stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the check") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("killed after {limit:?}\n{text}")),
    }
}

/// The page's pure JavaScript (Prometheus parsing, rates, percentiles) under node's runner.
#[test]
fn dashboard_javascript_units() {
    require("node", "apt-get install nodejs (.ci/run does)");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "tests/dashboard/unit.test.mjs"])
        .current_dir(workspace_dir());
    let (ok, out) = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        ok,
        "node --test tests/dashboard/unit.test.mjs failed:\n{out}"
    );
}

/// The daemon serves the page and its assets on the API port, beside the Kubernetes API.
#[test]
fn the_dashboard_is_served_on_the_api_port() {
    let d = Daemon::start();
    let page = d.request("GET", "/dashboard/", None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<title>wisp dashboard</title>"),
        "{}",
        page.body
    );
    for asset in ["app.mjs", "prom.mjs", "charts.mjs", "app.css", "icon.svg"] {
        let r = d.request("GET", &format!("/dashboard/{asset}"), None);
        assert_eq!(r.status, 200, "/dashboard/{asset}");
    }
    // The API is unchanged around it.
    assert_eq!(d.request("GET", "/healthz", None).status, 200);
    assert_eq!(
        d.request("GET", "/api/v1/namespaces/default", None).status,
        200
    );
}

#[test]
fn the_dashboard_shows_a_deployed_service_and_its_traffic_in_chromium() {
    require("node", "apt-get install nodejs (.ci/run does)");
    let browser = chromium();
    let dir = dashboard_dir();
    npm_dependencies(&dir);

    let mark = unique("dashboard");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    let name = "dash-hello";
    d.create_service(&testapp_service(name, &[(MARK, &mark)], &[], json!({})));
    let svc = d.wait_service_ready(name);
    let url = s(&svc, "/status/url").to_string();
    let revision = s(&svc, "/status/latestReadyRevisionName").to_string();
    let host = format!("{name}.default.localhost");

    // Traffic before the page opens (a count to show) and while it is open (a rate to show):
    // mostly fine requests, some slower, a few 500s. Bounded in count and in time.
    for _ in 0..20 {
        assert_eq!(d.gateway_get(&host, "/").status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, port, host) = (stop.clone(), d.gateway_port, host.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < CHECK_LIMIT && sent < 10_000 {
                let path = match sent % 20 {
                    0 => "/?status=500",
                    n if n % 4 == 0 => "/?sleep=20",
                    _ => "/",
                };
                let _ = http_request_to(port, &host, "GET", path, None);
                sent += 1;
                // Pacing, so the page sees a steady rate rather than a burst.
                std::thread::sleep(Duration::from_millis(40));
            }
            sent
        })
    };

    let screenshot = target_dir().join("dashboard-screenshot.png");
    std::fs::create_dir_all(screenshot.parent().expect("a parent")).expect("target dir");
    let _ = std::fs::remove_file(&screenshot);
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("check.mjs"))
        .arg(d.url())
        .arg(&screenshot)
        .args(["--service", name, "--revision", &revision, "--url", &url])
        .env("CHROMIUM", &browser)
        .current_dir(&dir);
    let (ok, out) = run_bounded(cmd, CHECK_LIMIT);
    stop.store(true, Ordering::Relaxed);
    let sent = traffic.join().expect("the traffic thread");
    assert!(
        ok,
        "the dashboard check failed ({sent} requests sent):\n{out}"
    );
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no screenshot at {}", screenshot.display());
    eprintln!("{out}\nscreenshot: {}", screenshot.display());
}
