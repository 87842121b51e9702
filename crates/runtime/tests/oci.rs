//! The OCI backend with the real runc: a busybox-static image built with `wisp_oci::build` into
//! a temporary store (pinned by its digest, so no registry is needed), run as replicas.
//!
//! Needs root, `runc` and `busybox-static` (see crates/oci/CI.md); the tests fail, saying what
//! to install, when they are missing. No test asserts on wall-clock durations: deadlines only
//! bound the waits.

mod support;
use support::{DEADLINE, wait_status};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::timeout;
use wisp_api::core::{Container, EnvVar, ExecAction, Probe, Quantity, VolumeMount};
use wisp_oci::auth::Keychain;
use wisp_oci::build::{BuildSpec, Copy, build};
use wisp_oci::registry::{Client, ClientConfig, RetryPolicy};
use wisp_oci::store::Store;
use wisp_oci::{Digest, Images};
use wisp_runtime::oci::container_id;
use wisp_runtime::orphans::proc_stat;
use wisp_runtime::{
    Backend, Backends, OciBackend, OciOptions, OciUnavailable, Phase, ProcessBackend,
    ReplicaHandle, ReplicaSpec, RevisionRef, RuntimeError,
};

const BUSYBOX: &str = "/bin/busybox";
/// The cgroup parent of these tests' containers (not the daemon's `wisp`).
const CGROUP_PARENT: &str = "wisp-runtime-test";
const INDEX: &str = "hello from wisp\n";

/// Fails (does not skip) without what the tests need.
fn require_tools() {
    let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .any(|p| Path::new(p).exists());
    assert!(
        runc,
        "runc is missing: install it with `apt-get install -y runc` (see crates/oci/CI.md)"
    );
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install it with `apt-get install -y busybox-static` (see crates/oci/CI.md)"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "running containers with runc needs root"
    );
}

/// A data directory with a busybox image in its store and an OCI backend on it.
struct Fixture {
    dir: tempfile::TempDir,
    images: Images,
    digest: Digest,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::in_dir(tempfile::tempdir().expect("tempdir"))
    }

    fn in_dir(dir: tempfile::TempDir) -> Fixture {
        require_tools();
        let store = Store::open(dir.path()).expect("store");
        let src = tempfile::tempdir().expect("src");
        std::fs::write(src.path().join("index.html"), INDEX).expect("index");
        let built = build(
            &store,
            &BuildSpec {
                copies: vec![
                    Copy::parse(&format!("{BUSYBOX}:/bin/busybox")).expect("copy"),
                    Copy {
                        src: src.path().join("index.html"),
                        dest: "/www/index.html".into(),
                    },
                ],
                entrypoint: Some(vec!["/bin/busybox".into()]),
                cmd: Some(vec![
                    "httpd".into(),
                    "-f".into(),
                    "-h".into(),
                    "/www".into(),
                ]),
                env: vec![
                    ("FROM_IMAGE".into(), "image".into()),
                    ("SHARED".into(), "image".into()),
                ],
                ..Default::default()
            },
        )
        .expect("build the busybox image");
        let client = Client::new(ClientConfig {
            retry: RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        });
        Fixture {
            images: Images::new(Arc::new(client), store),
            digest: built.digest,
            dir,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The image, pinned by digest (the registry is never asked: the store has it).
    fn image(&self) -> String {
        format!("localhost/wisp-test/busybox@{}", self.digest)
    }

    fn backend(&self) -> OciBackend {
        OciBackend::new(self.path(), self.images.clone(), options()).expect("the OCI backend")
    }
}

impl Drop for Fixture {
    /// Whatever a failed test left: containers, rootfs mounts, cgroups (a passing test leaves
    /// nothing: it checks so).
    fn drop(&mut self) {
        let root = self.path().join("runc");
        for e in entries(&root) {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force"])
                .arg(e.file_name().unwrap_or_default())
                .output();
        }
        let name = |p: &Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        for ns in entries(&self.path().join("replicas")) {
            for rev in entries(&ns) {
                for replica in entries(&rev) {
                    let _ = wisp_oci::Rootfs::of_replica_dir(&replica.join("run")).release();
                    let cid =
                        container_id(&RevisionRef::new(name(&ns), name(&rev)), &name(&replica));
                    for mount in entries(Path::new("/sys/fs/cgroup")) {
                        let pod = mount.join(CGROUP_PARENT).join(&cid);
                        let _ = std::fs::remove_dir(pod.join("ctr"));
                        let _ = std::fs::remove_dir(pod);
                    }
                }
            }
        }
    }
}

fn options() -> OciOptions {
    OciOptions {
        keychain: Keychain::new(),
        cgroup_parent: CGROUP_PARENT.to_string(),
        ..OciOptions::default()
    }
}

fn spec(service: &str, id: &str, container: Container) -> ReplicaSpec {
    support::spec(id, service, container, Duration::from_secs(5))
}

fn sh(image: &str, script: &str) -> Container {
    Container {
        image: image.to_string(),
        command: vec!["/bin/busybox".into(), "sh".into(), "-c".into()],
        args: vec![script.into()],
        ..Container::default()
    }
}

/// `GET path` on 127.0.0.1:port: (status code, body), or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Waits until the replica's log has a line starting with `prefix`; returns it.
async fn wait_log(handle: &ReplicaHandle, prefix: &str) -> String {
    let find = async {
        loop {
            let path = handle.logs().path().to_path_buf();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
                return l.to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match timeout(DEADLINE, find).await {
        Ok(l) => l,
        Err(_) => panic!(
            "no log line {prefix:?}; log: {:?}",
            std::fs::read_to_string(handle.logs().path())
        ),
    }
}

/// Mount points under `dir` (there must be none once replicas are gone).
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// Entries of a directory (none when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Asserts that nothing of replica `id` of `revision` is left but its log.
fn assert_nothing_left(backend: &OciBackend, revision: &RevisionRef, id: &str) {
    assert_eq!(
        mounts_under(backend.data_dir()),
        Vec::<String>::new(),
        "mounts left"
    );
    assert_eq!(
        entries(backend.runc_root()),
        Vec::<PathBuf>::new(),
        "runc state left"
    );
    let dir = backend.replica_dir(revision, id);
    assert!(!dir.exists(), "{} left: {:?}", dir.display(), entries(&dir));
    for cg in backend.cgroup_dirs(revision, id) {
        assert!(!cg.exists(), "cgroup {} left", cg.display());
    }
    assert!(backend.log_path(revision, id).exists(), "the log is kept");
}

async fn wait_gone(pid: u32) {
    let gone = async {
        while proc_stat(pid).is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if timeout(DEADLINE, gone).await.is_err() {
        panic!("process {pid} still alive");
    }
}

#[tokio::test]
async fn serves_http_with_its_environment_logs_and_own_pid_namespace() {
    let fx = Fixture::new();
    let backends = Backends::new(ProcessBackend::new(fx.path()), Ok(fx.backend()));
    let script = r#"echo "env=$FROM_IMAGE,$SHARED,$EXPANDED,$K_SERVICE,$K_REVISION,$PORT"
echo "host=$(busybox hostname)"
echo "pids=$(busybox ls /proc | busybox grep -E '^[0-9]+$' | busybox tr '\n' ' ')"
echo "ps=$(busybox ps -o pid,comm | busybox tail -n +2 | busybox wc -l)"
echo "self=$$$$"
echo "cache=$(busybox stat -c %a /cache)"
exec busybox httpd -f -v -p $(PORT) -h /www"#;
    let mut c = sh(&fx.image(), script);
    c.env = vec![
        EnvVar {
            name: "SHARED".into(),
            value: "container".into(),
            value_from: None,
        },
        EnvVar {
            name: "EXPANDED".into(),
            value: "$(SHARED)-expanded".into(),
            value_from: None,
        },
    ];
    c.volume_mounts = vec![VolumeMount {
        name: "cache".into(),
        mount_path: "/cache".into(),
        ..Default::default()
    }];
    let revision = RevisionRef::new("default", "web-00001");
    let asked = Instant::now();
    let handle = backends.start(spec("web", "r1", c)).await.expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    let port = ready.addr.port();
    let (code, body) = http_get(port, "/").expect("an answer");
    eprintln!("start() to ready and a first 200: {:?}", asked.elapsed());
    assert_eq!((code, body.as_str()), (200, INDEX));

    // Environment: image ENV, then the container's (expanded), then K_*, then PORT.
    let env = wait_log(&handle, "env=").await;
    assert_eq!(
        env,
        format!("env=image,container,container-expanded,web,web-00001,{port}")
    );
    assert_eq!(wait_log(&handle, "host=").await, "host=web-00001-r1");
    // Its own pid namespace: a handful of processes, the shell as pid 1.
    let pids = wait_log(&handle, "pids=").await;
    let pids: Vec<u32> = pids["pids=".len()..]
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.len() < 10 && pids.iter().all(|p| *p < 100), "{pids:?}");
    let ps: usize = wait_log(&handle, "ps=").await["ps=".len()..]
        .trim()
        .parse()
        .expect("a count");
    assert!(ps < 10, "ps sees {ps} processes");
    // `$$$$` is the shell's `$$` (Kubernetes expands `$$` to `$`): the shell is pid 1.
    assert_eq!(wait_log(&handle, "self=").await, "self=1");
    // The emptyDir volume, as the kubelet makes it.
    assert_eq!(wait_log(&handle, "cache=").await, "cache=777");
    // httpd's own log lines (-v) reach the log too.
    let (code, _) = http_get(port, "/missing").expect("an answer");
    assert_eq!(code, 404);

    let end = timeout(DEADLINE, handle.stop(Duration::from_secs(1)))
        .await
        .expect("stop within the deadline");
    assert_eq!(end.phase, Phase::Stopped);
    handle.join().await;
    let oci = backends.oci().expect("the OCI backend");
    assert_nothing_left(oci, &revision, "r1");
    let logs = backends.revision_logs(&revision);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].0, "r1");
}

#[tokio::test]
async fn httpd_as_pid_1_is_killed_after_the_grace_period_leaving_nothing() {
    let fx = Fixture::new();
    let backend = fx.backend();
    // busybox httpd as the container's init ignores SIGTERM.
    let c = Container {
        image: fx.image(),
        args: vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "$(PORT)".into(),
            "-h".into(),
            "/www".into(),
        ],
        ..Container::default()
    };
    let revision = RevisionRef::new("default", "stubborn-00001");
    let asked = Instant::now();
    let handle = backend
        .start(spec("stubborn", "r1", c))
        .await
        .expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    assert_eq!(http_get(ready.addr.port(), "/").map(|r| r.0), Some(200));
    eprintln!(
        "httpd: start() to ready and a first 200: {:?}",
        asked.elapsed()
    );
    let runc_pid = ready.pid.expect("runc's pid");
    // runc writes its pid file as the container starts; on a loaded machine the probe may
    // see the port open a moment before the file is renamed into place.
    let pid_file = backend.replica_dir(&revision, "r1").join("run/init.pid");
    let mut init_pid = None;
    for _ in 0..100 {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            init_pid = Some(pid);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let init = init_pid.expect("runc's pid file");
    assert!(proc_stat(init).is_some());
    let cgroups: Vec<PathBuf> = backend
        .cgroup_dirs(&revision, "r1")
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(!cgroups.is_empty(), "the container has cgroups");

    let end = timeout(DEADLINE, handle.stop(Duration::from_millis(300)))
        .await
        .expect("stop within the deadline");
    assert_eq!(end.phase, Phase::Stopped);
    let exit = end.final_exit.expect("final exit");
    assert_eq!(exit.signal, Some(9), "{exit}");
    assert_eq!(exit.reason, "Error", "{exit}");
    assert!(end.last_exit.is_none(), "a requested stop is not a crash");
    handle.join().await;
    wait_gone(init).await;
    wait_gone(runc_pid).await;
    assert!(http_get(ready.addr.port(), "/").is_none());
    assert_nothing_left(&backend, &revision, "r1");
}

#[tokio::test]
async fn exceeding_the_memory_limit_is_reported_as_oom_killed() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let mut c = sh(
        &fx.image(),
        r#"echo growing; x=0123456789abcdef0123456789abcdef; while true; do x="$x$x"; done"#,
    );
    c.resources
        .limits
        .insert("memory".into(), Quantity("16Mi".into()));
    let handle = backend.start(spec("hungry", "r1", c)).await.expect("start");
    let crashed = wait_status(&handle, "the OOM kill", |s| s.last_exit.is_some()).await;
    let exit = crashed.last_exit.expect("an exit");
    assert_eq!(exit.reason, "OOMKilled", "{exit}");
    assert_eq!(exit.exit_code(), Some(137), "{exit}");
    assert!(exit.message.contains("16Mi"), "{exit}");
    assert_eq!(crashed.restarts, 1);
    assert!(
        crashed.last_log_lines.iter().any(|l| l == "growing"),
        "{:?}",
        crashed.last_log_lines
    );
    handle.stop(Duration::from_secs(1)).await;
    handle.join().await;
    assert_nothing_left(&backend, &RevisionRef::new("default", "hungry-00001"), "r1");
}

#[tokio::test]
async fn exec_probes_run_inside_the_container() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let marker = "/wisp-ready-marker";
    assert!(!Path::new(marker).exists());
    let mut c = sh(
        &fx.image(),
        &format!(
            // The marker appears after httpd listens, so ready means serving.
            "(busybox sleep 0.3; busybox touch {marker}) & exec busybox httpd -f -p $(PORT) -h /www"
        ),
    );
    c.readiness_probe = Some(Probe {
        exec: Some(ExecAction {
            command: vec![
                "/bin/busybox".into(),
                "test".into(),
                "-e".into(),
                marker.into(),
            ],
        }),
        ..Probe::default()
    });
    let handle = backend.start(spec("probed", "r1", c)).await.expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    assert_eq!(http_get(ready.addr.port(), "/").map(|r| r.0), Some(200));
    assert!(!Path::new(marker).exists(), "the probe ran on the host");
    handle.stop(Duration::from_millis(100)).await;
    handle.join().await;
}

#[tokio::test]
async fn a_command_runc_cannot_start_is_a_start_error() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let c = Container {
        image: fx.image(),
        command: vec!["/no/such/program".into()],
        ..Container::default()
    };
    let handle = backend.start(spec("broken", "r1", c)).await.expect("start");
    let s = wait_status(&handle, "a start error", |s| s.last_exit.is_some()).await;
    let exit = s.last_exit.expect("an exit");
    assert_eq!(exit.reason, "StartError", "{exit}");
    assert!(exit.message.contains("/no/such/program"), "{exit}");
    handle.stop(Duration::from_secs(1)).await;
    handle.join().await;
    assert_nothing_left(&backend, &RevisionRef::new("default", "broken-00001"), "r1");
}

#[tokio::test]
async fn unpinned_images_are_refused() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let c = Container {
        image: "localhost/wisp-test/busybox:latest".into(),
        ..Container::default()
    };
    match backend.start(spec("tagged", "r1", c)).await {
        Err(RuntimeError::InvalidSpec(m)) => {
            assert!(m.contains("is not pinned to a digest"), "{m}")
        }
        other => panic!("expected InvalidSpec, got {:?}", other.map(|h| h.status())),
    }
}

/// A registry that knows no image: every request gets a 404 in the distribution API's terms.
async fn empty_registry() -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body =
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_failing_pull_is_a_start_error_and_prepares_nothing() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let port = empty_registry().await;
    let missing = format!("sha256:{}", "0".repeat(64));
    let c = Container {
        image: format!("127.0.0.1:{port}/nothing/here@{missing}"),
        ..Container::default()
    };
    let revision = RevisionRef::new("default", "missing-00001");
    let handle = backend
        .start(spec("missing", "r1", c))
        .await
        .expect("start");
    let s = wait_status(&handle, "a pull error", |s| s.last_exit.is_some()).await;
    let exit = s.last_exit.expect("an exit");
    assert_eq!(exit.reason, "StartError", "{exit}");
    assert!(exit.message.starts_with("pulling image "), "{exit}");
    assert!(exit.message.contains("not found"), "{exit}");
    assert!(
        !backend.replica_dir(&revision, "r1").join("run").exists(),
        "no bundle for a failed pull"
    );
    handle.stop(Duration::from_secs(1)).await;
    handle.join().await;
    assert_nothing_left(&backend, &revision, "r1");
}

#[tokio::test]
async fn image_containers_without_the_oci_backend_are_unsupported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unavailable = OciUnavailable {
        reason: "runc was not found (looked for \"runc\" on PATH); install it".into(),
    };
    let backends = Backends::new(ProcessBackend::new(dir.path()), Err(unavailable));
    let c = Container {
        image: format!("busybox@sha256:{}", "a".repeat(64)),
        ..Container::default()
    };
    match backends.start(spec("img", "r1", c)).await {
        Err(e @ RuntimeError::Unsupported { .. }) => {
            assert!(e.to_string().contains("runc was not found"), "{e}")
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|h| h.status())),
    }
    // Processes still run.
    let c = Container {
        command: vec!["sleep".into(), "100".into()],
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: vec!["true".into()],
            }),
            ..Probe::default()
        }),
        ..Container::default()
    };
    let handle = backends.start(spec("proc", "r1", c)).await.expect("start");
    wait_status(&handle, "ready", |s| s.ready).await;
    backends.shutdown(Duration::from_secs(1)).await;
    assert_eq!(handle.status().phase, Phase::Stopped);
}

/// Set for the child process of `a_killed_daemon_leaves_nothing_after_the_sweep`: the data
/// directory to start a replica in.
const CHILD_ENV: &str = "WISP_OCI_TEST_CHILD_DIR";

/// The "daemon" of `a_killed_daemon_leaves_nothing_after_the_sweep`, run in a child process
/// (does nothing in a normal test run): starts a replica, says where it serves, then waits to
/// be killed.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let fx = Fixture {
        images: Images::new(
            Arc::new(Client::new(ClientConfig::default())),
            Store::open(&dir).expect("store"),
        ),
        digest: std::fs::read_to_string(dir.join("digest"))
            .expect("digest")
            .trim()
            .parse()
            .expect("a digest"),
        dir: tempfile::tempdir().expect("unused"),
    };
    let backend = OciBackend::new(&dir, fx.images.clone(), options()).expect("backend");
    let c = Container {
        image: fx.image(),
        args: vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "$(PORT)".into(),
            "-h".into(),
            "/www".into(),
        ],
        ..Container::default()
    };
    let handle = backend.start(spec("crash", "r1", c)).await.expect("start");
    let ready = wait_status(&handle, "ready", |s| s.ready).await;
    let port = dir.join("port");
    std::fs::write(port.with_extension("tmp"), ready.addr.port().to_string()).expect("port");
    std::fs::rename(port.with_extension("tmp"), port).expect("port");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_killed_daemon_leaves_nothing_after_the_sweep() {
    let fx = Fixture::new();
    std::fs::write(fx.path().join("digest"), fx.digest.to_string()).expect("digest");
    /// Kills the child daemon when the test fails before it does.
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Daemon(
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_child", "--test-threads=1"])
            .env(CHILD_ENV, fx.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the child daemon"),
    );
    // It writes the replica's port once the replica is ready.
    let port_file = fx.path().join("port");
    let port = async {
        loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
            {
                return p;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("the child daemon ended ({status}) before its replica was ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let Ok(port) = timeout(DEADLINE, port).await else {
        panic!("the child daemon never had a ready replica");
    };
    assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));

    // The daemon dies without any clean-up.
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reap the child");
    let revision = RevisionRef::new("default", "crash-00001");
    let backend = fx.backend();
    // runc died with it; the container did not (it is no child of runc's death signal).
    assert_eq!(
        http_get(port, "/").map(|r| r.0),
        Some(200),
        "the orphan serves"
    );
    assert_eq!(
        entries(backend.runc_root()),
        vec![backend.runc_root().join(container_id(&revision, "r1"))]
    );

    let backends = Backends::new(ProcessBackend::new(fx.path()), Ok(backend));
    let report = backends.reap_orphans().await;
    assert_eq!(report.killed, vec!["default/crash-00001/r1".to_string()]);
    assert!(http_get(port, "/").is_none(), "the orphan is gone");
    let backend = backends.oci().expect("the OCI backend");
    assert_nothing_left(backend, &revision, "r1");
    // A second sweep finds nothing.
    let again = backends.reap_orphans().await;
    assert!(again.killed.is_empty() && again.stale == 0, "{again:?}");
}
