//! The process backend with real processes that need no test app: `sh` and `sleep`.
//! (Tests that serve HTTP use the `wisp-testapp` binary and live in `crates/testapp/tests`,
//! where Cargo builds the binary first and names it in `CARGO_BIN_EXE_wisp-testapp`.)
//!
//! No test asserts on wall-clock durations: deadlines only bound the waits.

mod support;
use support::{DEADLINE, wait_status};

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use tokio::time::timeout;
use wisp_api::core::{Container, EnvVar, ExecAction, Probe};
use wisp_runtime::orphans::{group_members, proc_stat};
use wisp_runtime::{Backend, Phase, ProcessBackend, ReplicaHandle, ReplicaSpec};

fn sh(script: &str) -> Container {
    Container {
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Container::default()
    }
}

fn exec_probe(cmd: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: cmd.iter().map(|s| s.to_string()).collect(),
        }),
        ..Probe::default()
    }
}

fn spec(id: &str, container: Container) -> ReplicaSpec {
    support::spec(id, "app", container, Duration::from_secs(5))
}

async fn wait_gone(pids: &[u32]) {
    let all_gone = async {
        while pids.iter().any(|p| proc_stat(*p).is_some()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if timeout(DEADLINE, all_gone).await.is_err() {
        panic!("processes {pids:?} still alive");
    }
}

#[tokio::test]
async fn sigkill_after_grace_for_a_process_ignoring_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let mut c = sh(r#"trap "" TERM; echo started; sleep 100 & wait; sleep 100"#);
    c.readiness_probe = Some(exec_probe(&["true"]));
    let handle = backend.start(spec("stubborn", c)).await.expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    let pid = ready.pid.expect("a pid");
    let members = wait_members(pid, 2).await;
    let end = timeout(DEADLINE, handle.stop(Duration::from_millis(300)))
        .await
        .expect("stop within the deadline");
    assert_eq!(end.phase, Phase::Stopped);
    let exit = end.final_exit.expect("final exit");
    assert_eq!(exit.signal, Some(9), "{exit}");
    assert_eq!(end.restarts, 0);
    assert!(end.last_exit.is_none(), "a requested stop is not a crash");
    // The whole group is gone, the child `sleep` too.
    wait_gone(&members).await;
    assert!(group_members(pid).is_empty());
    // Its record is removed.
    assert!(
        !dir.path()
            .join("run/default/app-00001/stubborn.pid")
            .exists()
    );
}

/// Waits until process group `pgid` has at least `n` live members; returns them.
async fn wait_members(pgid: u32, n: usize) -> Vec<u32> {
    let found = async {
        loop {
            let m = group_members(pgid);
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(DEADLINE, found)
        .await
        .unwrap_or_else(|_| panic!("group {pgid} never had {n} members"))
}

#[tokio::test]
async fn exec_readiness_probe_and_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("workdir");
    let flag = work.path().join("ready");
    let backend = ProcessBackend::new(dir.path());
    let mut c = sh(r#"echo "pwd=$(pwd)"; echo "args=$0 $1"; env | sort; echo END; exec sleep 100"#);
    c.args = vec!["$(K_REVISION)".into(), "$$(PORT)".into()];
    c.working_dir = work.path().display().to_string();
    c.env = vec![
        EnvVar {
            name: "FLAG".into(),
            value: flag.display().to_string(),
            value_from: None,
        },
        EnvVar {
            name: "GREETING".into(),
            value: "hi from $(K_SERVICE) and $(FLAG)".into(),
            value_from: None,
        },
    ];
    // Relative to the working directory: the probe runs where the replica runs.
    c.readiness_probe = Some(exec_probe(&["test", "-f", "ready"]));
    let handle = backend.start(spec("env", c)).await.expect("start");
    // Not ready while the file is missing.
    let started = wait_status(&handle, "the first log line", |s| s.pid.is_some()).await;
    assert!(!started.ready);
    std::fs::write(&flag, "").expect("write flag");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    assert_eq!(ready.phase, Phase::Ready);

    // The environment, from the replica's own log.
    let lines = wait_log(&handle, "END").await;
    let env: HashMap<&str, &str> = lines.iter().filter_map(|l| l.split_once('=')).collect();
    let port = ready.addr.port().to_string();
    assert_eq!(env.get("PORT"), Some(&port.as_str()));
    assert_eq!(env.get("K_SERVICE"), Some(&"app"));
    assert_eq!(env.get("K_CONFIGURATION"), Some(&"app"));
    assert_eq!(env.get("K_REVISION"), Some(&"app-00001"));
    // K_SERVICE is appended after the container's env, so it stays unexpanded there.
    let greeting = format!("hi from $(K_SERVICE) and {}", flag.display());
    assert_eq!(env.get("GREETING"), Some(&greeting.as_str()));
    assert_eq!(
        env.get("PATH").copied(),
        std::env::var("PATH").ok().as_deref()
    );
    // The daemon's other variables do not leak.
    assert_eq!(env.get("CARGO_MANIFEST_DIR"), None);
    let pwd = format!("{}", work.path().display());
    assert_eq!(env.get("pwd"), Some(&pwd.as_str()));
    // `sh -c SCRIPT $0 $1`: the args, expanded.
    assert_eq!(env.get("args"), Some(&"app-00001 $(PORT)"));
    handle.stop(Duration::from_secs(5)).await;
}

/// Waits for a log line containing `needle`; returns the recent lines.
async fn wait_log(handle: &ReplicaHandle, needle: &str) -> Vec<String> {
    let found = async {
        loop {
            let lines = handle.logs().recent();
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(DEADLINE, found)
        .await
        .unwrap_or_else(|_| panic!("no log line with {needle:?}: {:?}", handle.logs().recent()))
}

#[tokio::test]
async fn missing_program_is_a_start_error_with_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let c = Container {
        command: vec!["/nonexistent/wisp-no-such-program".into()],
        ..Container::default()
    };
    let handle = backend.start(spec("missing", c)).await.expect("start");
    let s = wait_status(&handle, "two restarts", |s| {
        s.restarts >= 2 && s.phase == Phase::BackingOff
    })
    .await;
    let exit = s.last_exit.expect("exit");
    assert_eq!(exit.reason, "StartError");
    assert!(exit.message.contains("No such file"), "{}", exit.message);
    assert!(s.backoff >= Some(Duration::from_millis(200)));
    let end = handle.stop(Duration::from_secs(1)).await;
    assert_eq!(end.phase, Phase::Stopped);
}

#[tokio::test]
async fn refuses_what_it_cannot_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let image = Container {
        image: "ghcr.io/x/y".into(),
        ..Container::default()
    };
    assert!(backend.start(spec("img", image)).await.is_err());
    assert!(
        backend
            .start(spec("nocmd", Container::default()))
            .await
            .is_err()
    );
    assert!(backend.start(spec("../x", sh("true"))).await.is_err());
}

#[tokio::test]
async fn shutdown_stops_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = ProcessBackend::new(dir.path());
    let mut handles = Vec::new();
    for i in 0..3 {
        let mut c = sh("exec sleep 100");
        c.readiness_probe = Some(exec_probe(&["true"]));
        handles.push(
            backend
                .start(spec(&format!("r{i}"), c))
                .await
                .expect("start"),
        );
    }
    let mut pids = Vec::new();
    for h in &handles {
        pids.push(wait_status(h, "ready", |s| s.ready).await.pid.unwrap_or(0));
    }
    timeout(DEADLINE, backend.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown within the deadline");
    for h in &handles {
        assert_eq!(h.status().phase, Phase::Stopped);
    }
    wait_gone(&pids).await;
}

#[test]
fn reap_orphans_kills_groups_left_by_a_crashed_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "Daemon" 1: its own runtime, torn down without stopping its replica, as a crash would.
    // The spawner thread survives (it belongs to this test process), so the death signal does
    // not fire: the sweep alone must clean up.
    let daemon1 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (pid, handle) = daemon1.block_on(async {
        let backend = ProcessBackend::new(dir.path());
        let mut c = sh("sleep 300 & sleep 300");
        c.readiness_probe = Some(exec_probe(&["true"]));
        let handle = backend.start(spec("orphan", c)).await.expect("start");
        let s = wait_status(&handle, "ready", |s| s.ready).await;
        (s.pid.expect("pid"), handle)
    });
    std::mem::forget(handle);
    daemon1.shutdown_background();
    let record = dir.path().join("run/default/app-00001/orphan.pid");
    assert!(record.exists(), "the pid record is written");

    let daemon2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    daemon2.block_on(async {
        let members = wait_members(pid, 2).await;
        let backend = ProcessBackend::new(dir.path());
        let report = backend.reap_orphans().await;
        assert_eq!(report.killed, vec!["default/app-00001/orphan".to_string()]);
        wait_gone(&members).await;
        assert!(!record.exists());
        // A second sweep finds nothing.
        assert_eq!(backend.reap_orphans().await, Default::default());
    });
}

/// Run by `replicas_die_with_the_daemon` in a child process: starts a replica, prints its pid,
/// then waits to be killed.
#[test]
#[ignore = "helper process of replicas_die_with_the_daemon"]
fn pdeathsig_helper() {
    let Ok(data_dir) = std::env::var("WISP_PDEATHSIG_HELPER_DIR") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let backend = ProcessBackend::new(&data_dir);
        let mut c = sh("exec sleep 300");
        c.readiness_probe = Some(exec_probe(&["true"]));
        let handle = backend.start(spec("child", c)).await.expect("start");
        let s = wait_status(&handle, "ready", |s| s.ready).await;
        println!("REPLICA_PID={}", s.pid.unwrap_or(0));
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn replicas_die_with_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "pdeathsig_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WISP_PDEATHSIG_HELPER_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("helper");
    let stdout = helper.stdout.take().expect("stdout");
    let mut pid = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        // libtest prints "test pdeathsig_helper ... " on the same line.
        if let Some((_, p)) = line.split_once("REPLICA_PID=") {
            pid = p.trim().parse::<u32>().ok();
            break;
        }
    }
    let alive_before = pid.is_some_and(|p| proc_stat(p).is_some());
    // SIGKILL: the daemon gets no chance to clean up.
    let _ = helper.kill();
    let _ = helper.wait();
    let pid = pid.expect("the helper reports its replica's pid");
    assert!(alive_before, "the replica ran while its daemon lived");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(wait_gone(&[pid]));
}
