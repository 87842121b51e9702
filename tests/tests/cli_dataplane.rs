//! The CLI session against a running data plane: `wisp service create` waits for the
//! revision to serve and prints the URL (or the failure reason), `wisp service update` splits
//! traffic, `wisp logs` shows what replicas printed, `wisp service describe` shows replicas.

mod common;

use common::*;

fn testapp() -> String {
    let bin = wisp_bin().with_file_name("wisp-testapp");
    assert!(
        bin.is_file(),
        "{} does not exist: run the README's test command (it builds wisp-testapp)",
        bin.display()
    );
    bin.display().to_string()
}

#[test]
fn create_waits_for_ready_then_serves_logs_and_splits() {
    let d = Daemon::start();
    let app = testapp();
    let out = d
        .wisp(&[
            "service",
            "create",
            "hello",
            "--cmd",
            &app,
            "--env",
            "TARGET=world",
        ])
        .success();
    assert!(
        out.stdout.contains(
            "Service 'hello' created to latest revision 'hello-00001' is available at URL:"
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains("http://hello.default.localhost"),
        "{out}"
    );
    // When create returns, the revision serves: no waiting here.
    let r = d.gateway_get("hello.default.localhost", "/");
    assert_eq!(
        (r.status, r.body.trim()),
        (200, "Hello world!"),
        "{}",
        r.body
    );

    // The request is in the replica's log, prefixed with revision and replica.
    let logs = wait_for("the request in `wisp logs`", || {
        let out = d.wisp(&["logs", "hello"]).success();
        if out
            .stdout
            .lines()
            .any(|l| l.starts_with("[hello-00001/") && l.contains("GET / 200"))
        {
            Ok(out.stdout)
        } else {
            Err(out.stdout)
        }
    });
    assert!(logs.contains("listening"), "{logs}");
    let tail = d.wisp(&["logs", "hello", "--tail", "1"]).success();
    assert_eq!(tail.stdout.lines().count(), 1, "{tail}");
    // One replica's lines: `--replica` with the id its prefix shows.
    let replica = logs
        .lines()
        .find_map(|l| l.strip_prefix("[hello-00001/"))
        .and_then(|rest| rest.split_once(']'))
        .map(|(id, _)| id.to_string())
        .expect("a [revision/replica] prefix");
    let one = d.wisp(&["logs", "hello", "--replica", &replica]).success();
    assert!(
        !one.stdout.is_empty()
            && one
                .stdout
                .lines()
                .all(|l| l.starts_with(&format!("[hello-00001/{replica}] "))),
        "{one}"
    );
    let none = d
        .wisp(&["logs", "hello", "--replica", "no-such-replica"])
        .success();
    assert_eq!(none.stdout, "", "{none}");

    // Update: a second revision, 80/20 with the first; both answer through the gateway.
    let out = d
        .wisp(&[
            "service",
            "update",
            "hello",
            "--env",
            "TARGET=v2",
            "--traffic",
            "hello-00001=80,@latest=20",
        ])
        .success();
    assert!(out.stdout.contains("hello-00002"), "{out}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let r = d.gateway_get("hello.default.localhost", "/");
        assert_eq!(r.status, 200, "{}", r.body);
        seen.insert(r.body.trim().to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["Hello v2!", "Hello world!"]
    );

    let out = d.wisp(&["service", "describe", "hello"]).success();
    assert!(out.stdout.contains("Replicas:"), "{out}");
    assert!(out.stdout.contains("hello-00002"), "{out}");
}

#[test]
fn create_of_a_failing_app_reports_the_reason() {
    let d = Daemon::start();
    let app = testapp();
    let out = d
        .wisp(&[
            "service",
            "create",
            "broken",
            "--cmd",
            &app,
            "--env",
            "FAIL_TO_START=1",
        ])
        .failure();
    assert!(out.stderr.contains("RevisionFailed"), "{out}");
    assert!(out.stderr.contains("exit code 1"), "{out}");
    // The app's own last words are part of the reason.
    assert!(out.stderr.contains("FAIL_TO_START"), "{out}");
    // Requests get a clear 503, not a hang.
    let r = d.gateway_get("broken.default.localhost", "/");
    assert_ne!(r.status, 200, "{}", r.body);
}
