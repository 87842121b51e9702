//! OCI images end to end: images made by `wisp build` from busybox and a page, pushed to a real
//! `docker-registry` on loopback, run by the daemon with runc and served through the gateway.
//! Tags pinned to digests, isolation of a replica, memory limits, registry authentication
//! from a docker `config.json`, corrupt blobs, missing images, and containers left behind by a
//! daemon killed with SIGKILL or left by a daemon beside it.
//!
//! Every test has its own registry (own port, own storage), its own daemon on its own data dir,
//! and its own `WISP_E2E_MARK` value in the containers' environment: the host sees a container's
//! processes with their environment, so a test finds its own among those of the tests running
//! beside it. A [`Rig`] removes whatever a failed test left (processes, runc containers, rootfs
//! mounts, cgroups); a test that passes stops its daemon with SIGTERM and checks that the
//! daemon itself left nothing.
//!
//! Needs root, `runc`, `docker-registry`, `htpasswd` (apache2-utils) and a static
//! `/bin/busybox` (busybox-static): a missing one fails the test with the `apt-get` line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The one binary of every image: a static busybox, `/bin/busybox` in the image too.
const BUSYBOX: &str = "/bin/busybox";
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const APT: &str = "apt-get install -y runc docker-registry apache2-utils busybox-static";
const USER: &str = "wisp";
const PASSWORD: &str = "e2e-s3cret";

// ---- what the tests need from the host ------------------------------------------------------

/// Fails (does not skip) when something these tests need is missing.
fn require_host() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "these tests run containers with runc and need root (effective uid {euid:?})"
    );
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| panic!("{BUSYBOX}: {e}: {APT}"));
    // A dynamic busybox names its loader (PT_INTERP) near the start of the file; the image
    // holds nothing else to load it with.
    let head = &busybox[..busybox.len().min(4096)];
    assert!(
        !head.windows(3).any(|w| w == b"ld-"),
        "{BUSYBOX} is linked dynamically and cannot be an image's only file: {APT}"
    );
    assert!(
        Path::new(REGISTRY_BIN).is_file(),
        "{REGISTRY_BIN} is missing: {APT}"
    );
    runc_bin();
}

/// The runc the daemon finds: on `PATH` or in the system directories.
fn runc_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("runc is not installed: {APT}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port")
}

/// Standard base64 (a docker config's `auth` is base64 of `user:password`).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- a real registry ------------------------------------------------------------------------

/// Debian's `docker-registry` on `127.0.0.1:<free port>`, with a config and a storage directory
/// of its own (the packaged config listens on every interface and is never used). Killed when
/// dropped.
struct Registry {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(false)
    }

    /// With HTTP Basic auth (a bcrypt htpasswd file) for [`USER`]/[`PASSWORD`].
    fn start_with_htpasswd() -> Registry {
        Registry::start_with(true)
    }

    fn start_with(htpasswd: bool) -> Registry {
        require_host();
        let dir = tempfile::Builder::new()
            .prefix("wisp-e2e-registry-")
            .tempdir()
            .expect("tempdir");
        let mut auth = String::new();
        if htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .unwrap_or_else(|e| panic!("cannot run htpasswd ({e}): {APT}"));
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: wisp-e2e\n    path: {}\n",
                path.display()
            );
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: wisp-e2e-secret\n{auth}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write the registry config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("registry log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN} ({e}): {APT}"));
            let start = Instant::now();
            let exited = loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry { port, dir, child };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break status;
                }
                if start.elapsed() > DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("docker-registry did not listen on 127.0.0.1:{port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // Another process took the port between the probe and the bind.
            if log.contains("address already in use") && attempt < 5 {
                continue;
            }
            panic!("docker-registry exited with {exited}: {log}");
        }
    }

    /// `127.0.0.1:PORT`, as image references spell it.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps the bytes of blob `digest` (`sha256:…`).
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The layer digests of the manifest `digest`, read from the registry's storage.
    fn layers(&self, digest: &str) -> Vec<String> {
        let bytes = std::fs::read(self.blob_file(digest)).expect("the manifest is in the registry");
        let manifest: Value = serde_json::from_slice(&bytes).expect("a JSON manifest");
        manifest["layers"]
            .as_array()
            .expect("a manifest with layers")
            .iter()
            .map(|l| s(l, "/digest").to_string())
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a test's own corner: a root directory, a mark, the images it builds ------------------

/// An image as `wisp build` reported it.
#[derive(Debug)]
struct Built {
    /// `registry/repo@sha256:…`, as the build printed it.
    pinned: String,
    /// `sha256:…`.
    digest: String,
}

/// A test's directory (the daemon's data in `data/`, build inputs, docker configs) and the
/// mark its containers carry. When dropped (after the daemon, which is declared after it) it
/// removes whatever is left: marked processes, runc containers, rootfs mounts under the
/// directory, the replicas' cgroups. A passing test leaves nothing to remove: see
/// [`Rig::stop_clean`].
struct Rig {
    mark: String,
    root: tempfile::TempDir,
    /// A docker config directory with no credentials (the daemon never sees the host's).
    no_auth: PathBuf,
    builds: std::cell::Cell<usize>,
}

impl Rig {
    fn new(prefix: &str) -> Rig {
        require_host();
        let root = tempfile::Builder::new()
            .prefix("wisp-e2e-img-")
            .tempdir()
            .expect("tempdir");
        let no_auth = root.path().join("docker-none");
        std::fs::create_dir_all(&no_auth).expect("docker config dir");
        Rig {
            mark: unique(prefix),
            root,
            no_auth,
            builds: std::cell::Cell::new(0),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// A data directory used only by `wisp build`, so that the daemon has to pull.
    fn builder_dir(&self) -> PathBuf {
        self.path().join("builder")
    }

    /// A docker config directory whose `config.json` holds `user:password` for `registry`.
    fn docker_config(&self, registry: &Registry, user: &str, password: &str) -> PathBuf {
        let dir = self.path().join(format!("docker-{user}-{password}"));
        std::fs::create_dir_all(&dir).expect("docker config dir");
        let auth = base64(format!("{user}:{password}").as_bytes());
        let config = serde_json::json!({"auths": {registry.host(): {"auth": auth}}});
        std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
        dir
    }

    /// A daemon on this rig's data directory, reading its registry credentials from
    /// `docker_config` (`DOCKER_CONFIG`).
    fn daemon(&self, docker_config: &Path) -> Daemon {
        let dc = docker_config.to_str().expect("a UTF-8 path");
        Daemon::start_in_with_env(self.path(), &[], &[("DOCKER_CONFIG", dc)])
    }

    /// Runs `wisp build` for an image of busybox and `files` in `/www`, whose entrypoint is
    /// `busybox sh -c script`, into the image store of `data_dir`.
    fn try_build(
        &self,
        image: &str,
        files: &[(&str, &str)],
        script: &str,
        push: bool,
        data_dir: &Path,
        docker_config: &Path,
    ) -> Output {
        let n = self.builds.get();
        self.builds.set(n + 1);
        let site = self.path().join(format!("site-{n}"));
        std::fs::create_dir_all(&site).expect("site dir");
        for (name, content) in files {
            std::fs::write(site.join(name), content).expect("site file");
        }
        let entrypoint =
            serde_json::to_string(&[BUSYBOX, "sh", "-c", script]).expect("JSON entrypoint");
        let mut cmd = Command::new(wisp_bin());
        cmd.arg("build")
            .arg("--copy")
            .arg(format!("{BUSYBOX}:{BUSYBOX}"))
            .arg("--copy")
            .arg(format!("{}:/www", site.display()))
            .arg("--entrypoint")
            .arg(&entrypoint)
            .arg("--image")
            .arg(image)
            .arg("--data-dir")
            .arg(data_dir)
            .env("DOCKER_CONFIG", docker_config)
            .env("NO_COLOR", "1")
            .env_remove("WISP_DATA_DIR")
            .stdin(Stdio::null());
        if push {
            cmd.arg("--push");
        }
        let out = cmd.output().expect("run wisp build");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// [`Rig::try_build`] that must succeed; checks what it printed.
    #[track_caller]
    fn build(
        &self,
        image: &str,
        files: &[(&str, &str)],
        script: &str,
        push: bool,
        data_dir: &Path,
        docker_config: &Path,
    ) -> Built {
        let out = self.try_build(image, files, script, push, data_dir, docker_config);
        assert!(out.ok, "wisp build {image} failed:\n{out}");
        let pinned = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("Image {image} built: ")))
            .unwrap_or_else(|| panic!("no `Image {image} built: ` line:\n{out}"))
            .trim()
            .to_string();
        let (repo, digest) = pinned
            .split_once('@')
            .unwrap_or_else(|| panic!("{pinned:?} is not pinned"));
        assert_eq!(
            Some(repo),
            image.rsplit_once(':').map(|(r, _)| r),
            "the pinned reference names the image's repository"
        );
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "bad digest in {pinned:?}"
        );
        if push {
            let pushed = format!("Pushed {image} ({digest})");
            assert!(
                out.stdout.lines().any(|l| l.trim() == pushed),
                "no {pushed:?} line:\n{out}"
            );
        }
        Built {
            digest: digest.to_string(),
            pinned,
        }
    }

    /// `wisp service create NAME --image IMAGE -e MARK=…` with more flags.
    fn create(&self, d: &Daemon, name: &str, image: &str, more: &[&str]) -> Run {
        let mark = format!("{MARK}={}", self.mark);
        let mut args = vec!["service", "create", name, "--image", image, "-e", &mark];
        args.extend_from_slice(more);
        d.wisp(&args)
    }

    /// SIGTERM, a clean exit, and nothing left behind: no runc container in the daemon's runc
    /// root, no mount under the data directory, no process of this test's containers.
    #[track_caller]
    fn stop_clean(&self, d: &mut Daemon) {
        d.stop();
        let left = runc_containers(&self.data_dir());
        assert!(
            left.is_empty(),
            "runc containers left after a stop: {left:?}"
        );
        let mounts = mounts_under(&self.data_dir());
        assert!(mounts.is_empty(), "mounts left after a stop: {mounts:?}");
        wait_for("no container process left after a stop", || {
            let pids = marked_pids(&self.mark);
            if pids.is_empty() {
                Ok(())
            } else {
                Err(format!("{pids:?}"))
            }
        });
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Processes first (a killed daemon leaves its containers running), then runc's state,
        // the rootfs mounts, the pod cgroups.
        drop(Sweep(self.mark.clone()));
        let data = self.data_dir();
        let runc_root = data.join("runc");
        let mut cids: Vec<String> = std::fs::read_dir(&runc_root)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for cid in &cids {
            let _ = Command::new(runc_bin())
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "--force", cid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Replica directories are {data}/replicas/{ns}/{rev}/{id}: container {ns}+{rev}+{id}.
        let replicas = data.join("replicas");
        for ns in subdirs(&replicas) {
            for rev in subdirs(&replicas.join(&ns)) {
                for id in subdirs(&replicas.join(&ns).join(&rev)) {
                    cids.push(format!("{ns}+{rev}+{id}"));
                }
            }
        }
        let mut mounts = mounts_under(self.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount")
                .args(["-l", &m])
                .stderr(Stdio::null())
                .status();
        }
        let mut parents = vec![PathBuf::from("/sys/fs/cgroup")];
        parents.extend(
            subdirs(Path::new("/sys/fs/cgroup")).map(|c| Path::new("/sys/fs/cgroup").join(c)),
        );
        for parent in parents {
            for cid in &cids {
                let pod = parent.join("wisp").join(cid);
                let _ = std::fs::remove_dir(pod.join("ctr"));
                let _ = std::fs::remove_dir(&pod);
            }
        }
    }
}

/// The names of the subdirectories of `dir`.
fn subdirs(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
}

/// What `wisp build` printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

// ---- observing containers from the host -----------------------------------------------------

/// A container in the daemon's runc root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    id: String,
    pid: u32,
    status: String,
}

/// `runc --root {data}/runc list`.
fn runc_containers(data_dir: &Path) -> Vec<Container> {
    let out = Command::new(runc_bin())
        .arg("--root")
        .arg(data_dir.join("runc"))
        .args(["list", "--format", "json"])
        .output()
        .expect("run runc list");
    assert!(
        out.status.success(),
        "runc list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| Container {
                    id: s(c, "/id").to_string(),
                    pid: c["pid"]
                        .as_u64()
                        .and_then(|p| u32::try_from(p).ok())
                        .unwrap_or(0),
                    status: s(c, "/status").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir
        .to_str()
        .expect("a UTF-8 path")
        .trim_end_matches('/')
        .to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

// ---- services ------------------------------------------------------------------------------

fn host(svc: &str) -> String {
    format!("{svc}.default.localhost")
}

/// A script that serves `/www` with busybox httpd on `$PORT` after `before`. The shell stays
/// the container's init and exits on SIGTERM (an init without a handler ignores it, and the
/// daemon would wait out the grace period at every stop).
fn serve_www(before: &str) -> String {
    format!("{before}trap 'exit 0' TERM; {BUSYBOX} httpd -f -vv -p $PORT -h /www & wait")
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

/// The first container's `status.containerStatuses[0].imageDigest`.
fn image_digest(rev: &Value) -> &str {
    s(rev, "/status/containerStatuses/0/imageDigest")
}

/// GET through the gateway that must answer 200; returns the body.
#[track_caller]
fn page(d: &Daemon, svc: &str, path: &str) -> String {
    let r = d.gateway_get(&host(svc), path);
    assert_eq!(r.status, 200, "GET {path} of {svc}: {}", r.body);
    r.body
}

/// `wisp logs NAME` until a line holds `needle`.
#[track_caller]
fn wait_log(d: &Daemon, svc: &str, needle: &str) -> String {
    wait_for(&format!("{needle:?} in `wisp logs {svc}`"), || {
        let r = d.wisp(&["logs", svc]);
        if r.ok && r.stdout.contains(needle) {
            Ok(r.stdout)
        } else {
            Err(r.to_string())
        }
    })
}

/// Waits until the revision fails (`Ready` False) and returns `(reason, message)` of Ready.
#[track_caller]
fn wait_failed(d: &Daemon, rev: &str) -> (String, String) {
    let r = wait_revision(d, rev, "Ready False", |r| condition(r, "Ready") == "False");
    let (_, reason, message) = cond_parts(&r, "Ready");
    (reason.to_string(), message.to_string())
}

/// No process of this rig's containers and no container in the daemon's runc root.
#[track_caller]
fn assert_nothing_runs(rig: &Rig) {
    let pids = marked_pids(&rig.mark);
    assert!(pids.is_empty(), "container processes run: {pids:?}");
    let containers = runc_containers(&rig.data_dir());
    assert!(
        containers.is_empty(),
        "runc containers exist: {containers:?}"
    );
    let mounts = mounts_under(&rig.data_dir().join("replicas"));
    assert!(mounts.is_empty(), "rootfs mounts exist: {mounts:?}");
}

// ---- the tests ------------------------------------------------------------------------------

/// `wisp build --push` into the daemon's own data dir, `wisp service create --image TAG`: the
/// revision pins the tag to the digest the build printed, runs it with runc and serves the page
/// through the gateway; the container's output is in `wisp logs`.
#[test]
fn built_image_is_pushed_pinned_and_served() {
    let rig = Rig::new("img-build");
    let reg = Registry::start();
    let mut d = rig.daemon(&rig.no_auth);
    let image = format!("{}/site:v2", reg.host());
    let body = format!("<h1>hello from {}</h1>\n", rig.mark);
    let built = rig.build(
        &image,
        &[("index.html", &body)],
        &serve_www("echo \"site up on port $PORT\"; "),
        true,
        &d.data_dir,
        &rig.no_auth,
    );
    assert_eq!(
        built.pinned,
        format!("{}/site@{}", reg.host(), built.digest)
    );

    rig.create(&d, "img-site", &image, &[]).success();
    let svc = d.wait_service_ready("img-site");
    let rev_name = s(&svc, "/status/latestReadyRevisionName").to_string();
    let rev = d.revision(&rev_name).expect("the ready revision");
    assert_eq!(
        image_digest(&rev),
        built.pinned,
        "imageDigest pins the tag: {rev}"
    );
    assert_eq!(
        s(&rev, "/spec/containers/0/image"),
        image,
        "the spec keeps the tag, as Knative does"
    );

    assert_eq!(page(&d, "img-site", "/"), body);
    let missing = d.gateway_get(&host("img-site"), "/no-such-page");
    assert_eq!(
        missing.status, 404,
        "httpd answers for itself: {}",
        missing.body
    );

    // One runc container runs the revision, its rootfs mounted under the data dir.
    let containers = runc_containers(&d.data_dir);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].status, "running");
    assert!(
        containers[0].id.contains(&rev_name),
        "the container id names the revision: {containers:?}"
    );
    assert!(marked_pids(&rig.mark).contains(&containers[0].pid));

    wait_log(&d, "img-site", "site up on port ");
    let describe = d.wisp(&["revision", "describe", &rev_name]).success();
    let short = &built.digest["sha256:".len().."sha256:".len() + 6];
    assert!(
        describe.stdout.contains(&format!("{image} (at {short})")),
        "describe shows the digest:\n{describe}"
    );

    rig.stop_clean(&mut d);
}

/// An image built into the daemon's store and never pushed runs from the store: its registry
/// does not even exist.
#[test]
fn unpushed_build_runs_from_the_daemon_store() {
    let rig = Rig::new("img-local");
    let mut d = rig.daemon(&rig.no_auth);
    let image = format!("127.0.0.1:{}/local:v1", free_port());
    let body = format!("local {}\n", rig.mark);
    let built = rig.build(
        &image,
        &[("index.html", &body)],
        &serve_www(""),
        false,
        &d.data_dir,
        &rig.no_auth,
    );
    rig.create(&d, "img-local", &image, &[]).success();
    let svc = d.wait_service_ready("img-local");
    let rev = d
        .revision(s(&svc, "/status/latestReadyRevisionName"))
        .expect("the ready revision");
    assert_eq!(image_digest(&rev), built.pinned, "{rev}");
    assert_eq!(page(&d, "img-local", "/"), body);
    rig.stop_clean(&mut d);
}

/// The daemon's image garbage collection: once its Service is deleted, an image goes from the
/// store; an image a revision runs, and one built here and never pushed, stay.
#[test]
fn unused_images_are_collected() {
    let rig = Rig::new("img-gc");
    let reg = Registry::start();
    let dc = rig.no_auth.to_str().expect("a UTF-8 path").to_string();
    let mut d = Daemon::start_in_with_env(
        rig.path(),
        &["--image-gc-interval", "1s"],
        &[("DOCKER_CONFIG", &dc)],
    );
    let build = |name: &str, push: bool, dir: &Path| {
        let image = if push {
            format!("{}/{name}:v1", reg.host())
        } else {
            format!("127.0.0.1:{}/{name}:v1", free_port())
        };
        let body = format!("{name} {}\n", rig.mark);
        let built = rig.build(
            &image,
            &[("index.html", &body)],
            &serve_www(""),
            push,
            dir,
            &rig.no_auth,
        );
        (image, built)
    };
    let (kept_image, kept) = build("gc-kept", true, &rig.builder_dir());
    let (gone_image, gone) = build("gc-gone", true, &rig.builder_dir());
    let (_, local) = build("gc-local", false, &d.data_dir);
    rig.create(&d, "img-gc-kept", &kept_image, &[]).success();
    rig.create(&d, "img-gc-gone", &gone_image, &[]).success();
    let blob = |b: &Built| {
        let hex = b.digest.strip_prefix("sha256:").expect("a sha256 digest");
        d.data_dir.join("oci/blobs/sha256").join(hex)
    };
    assert!(blob(&gone).is_file(), "pulled: {}", blob(&gone).display());
    d.wisp(&["service", "delete", "img-gc-gone"]).success();
    wait_for("the deleted service's image to be collected", || {
        if blob(&gone).exists() {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    });
    assert!(blob(&kept).is_file(), "the running image stays");
    assert!(blob(&local).is_file(), "the unpushed build stays");
    assert!(page(&d, "img-gc-kept", "/").starts_with("gc-kept"));
    rig.stop_clean(&mut d);
}

/// A replica has its own pid namespace, mount namespace and host name: it sees its own
/// processes only, not the host's files, and is named after its revision.
#[test]
fn replica_is_isolated_from_the_host() {
    let rig = Rig::new("img-iso");
    let reg = Registry::start();
    let image = format!("{}/iso:v1", reg.host());
    // A path that certainly exists on the host, and must not in the container.
    let host_path = rig.path().display().to_string();
    let before = format!(
        "{BUSYBOX} ls /proc > /www/procs.txt; {BUSYBOX} ps > /www/ps.txt; \
         {BUSYBOX} hostname > /www/hostname.txt; \
         if [ -e '{host_path}' ]; then echo visible; else echo hidden; fi > /www/hostfs.txt; "
    );
    rig.build(
        &image,
        &[("index.html", "iso\n")],
        &serve_www(&before),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    let mut d = rig.daemon(&rig.no_auth);
    rig.create(&d, "img-iso", &image, &[]).success();
    let svc = d.wait_service_ready("img-iso");
    let rev = s(&svc, "/status/latestReadyRevisionName").to_string();

    let procs = page(&d, "img-iso", "/procs.txt");
    let pids: Vec<u32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        pids.contains(&1),
        "the container has its own pid 1: {procs}"
    );
    assert!(
        pids.len() <= 4,
        "the container sees only its own processes, not the host's: {pids:?}"
    );
    let daemon_pid = d.pid().expect("the daemon runs");
    for pid in [daemon_pid, std::process::id()] {
        assert!(
            !pids.contains(&pid),
            "the container sees host pid {pid}: {pids:?}"
        );
    }
    assert!(
        procs.lines().any(|l| l == "self"),
        "/proc is mounted: {procs}"
    );

    let ps = page(&d, "img-iso", "/ps.txt");
    let init = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in ps: {ps}"));
    assert!(
        init.contains("busybox sh -c"),
        "pid 1 is the image's entrypoint: {ps}"
    );
    for line in ps.lines().skip(1) {
        assert!(
            line.contains(BUSYBOX),
            "only the container's own processes are listed: {ps}"
        );
    }

    assert_eq!(page(&d, "img-iso", "/hostfs.txt").trim(), "hidden");
    let hostname = page(&d, "img-iso", "/hostname.txt");
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_ne!(
        hostname.trim(),
        host_hostname.trim(),
        "the container has its own host name"
    );
    assert!(
        hostname.trim().starts_with(&format!("{rev}-")),
        "the host name is {{revision}}-{{replica}}: {hostname}"
    );
    rig.stop_clean(&mut d);
}

/// `resources.limits.memory: 16Mi` is enforced: an app that grows past it is killed, and the
/// revision says it ran out of memory.
#[test]
fn memory_limit_kills_and_reports_oom() {
    let rig = Rig::new("img-oom");
    let reg = Registry::start();
    let image = format!("{}/hog:v1", reg.host());
    // Doubles a shell string until the kernel kills it: 16 MiB is reached in 20 rounds.
    let hog = "echo hogging; x=0123456789abcdef; while true; do x=$x$x; done";
    rig.build(&image, &[], hog, true, &rig.builder_dir(), &rig.no_auth);
    let mut d = rig.daemon(&rig.no_auth);
    rig.create(
        &d,
        "img-hog",
        &image,
        &["--limit", "memory=16Mi", "--no-wait"],
    )
    .success();
    let svc = wait_for("service img-hog has a revision", || {
        let svc = d.service("img-hog").ok_or("absent")?;
        if s(&svc, "/status/latestCreatedRevisionName").is_empty() {
            Err(svc["status"].to_string())
        } else {
            Ok(svc)
        }
    });
    let rev_name = s(&svc, "/status/latestCreatedRevisionName").to_string();
    let rev = wait_revision(&d, &rev_name, "ContainerHealthy False", |r| {
        condition(r, "ContainerHealthy") == "False"
    });
    assert_eq!(
        s(&rev, "/spec/containers/0/resources/limits/memory"),
        "16Mi"
    );
    let (_, reason, message) = cond_parts(&rev, "ContainerHealthy");
    // Knative's reason is the exit code (128 + SIGKILL), the message what the runtime said.
    assert_eq!(reason, "ExitCode137", "{message}");
    assert!(
        message.contains("OOMKilled") && message.contains("16Mi"),
        "the message says the container ran out of its 16Mi: {message}"
    );
    assert_eq!(condition(&rev, "Ready"), "False");
    wait_log(&d, "img-hog", "hogging");
    rig.stop_clean(&mut d);
}

/// A revision runs the digest its tag had when it was created: pushing another image under the
/// same tag changes nothing for it, not even after a daemon restart; a new revision resolves
/// the tag anew.
#[test]
fn revision_keeps_its_digest_when_the_tag_moves() {
    let rig = Rig::new("img-pin");
    let reg = Registry::start();
    let image = format!("{}/pinned:v1", reg.host());
    let old_body = format!("old {}\n", rig.mark);
    let new_body = format!("new {}\n", rig.mark);
    let old = rig.build(
        &image,
        &[("index.html", &old_body)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    let mut d = rig.daemon(&rig.no_auth);
    rig.create(&d, "img-pinned", &image, &[]).success();
    let svc = d.wait_service_ready("img-pinned");
    let first = s(&svc, "/status/latestReadyRevisionName").to_string();
    assert_eq!(image_digest(&d.revision(&first).expect("rev")), old.pinned);
    assert_eq!(page(&d, "img-pinned", "/"), old_body);

    let new = rig.build(
        &image,
        &[("index.html", &new_body)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    assert_ne!(new.digest, old.digest, "a different image");

    // A restart starts the revision's replicas again: from the recorded digest.
    d.stop();
    let mut d = rig.daemon(&rig.no_auth);
    d.wait_service_ready("img-pinned");
    assert_eq!(page(&d, "img-pinned", "/"), old_body);
    let rev = d.revision(&first).expect("the first revision");
    assert_eq!(
        image_digest(&rev),
        old.pinned,
        "the digest did not move: {rev}"
    );

    d.wisp(&["service", "update", "img-pinned", "--env", "X=1"])
        .success();
    let svc = d.wait_service_ready("img-pinned");
    let second = s(&svc, "/status/latestReadyRevisionName").to_string();
    assert_ne!(second, first);
    assert_eq!(
        image_digest(&d.revision(&second).expect("the second revision")),
        new.pinned,
        "the new revision resolved the tag again"
    );
    assert_eq!(page(&d, "img-pinned", "/"), new_body);
    assert_eq!(
        image_digest(&d.revision(&first).expect("the first revision")),
        old.pinned
    );
    rig.stop_clean(&mut d);
}

/// A registry with Basic auth: without credentials, or with wrong ones, the revision fails
/// saying so; with the right ones in the daemon's docker `config.json` it runs.
#[test]
fn private_registry_needs_the_docker_config_credentials() {
    let rig = Rig::new("img-auth");
    let reg = Registry::start_with_htpasswd();
    let good = rig.docker_config(&reg, USER, PASSWORD);
    let bad = rig.docker_config(&reg, USER, "wrong-password");
    let image = format!("{}/private:v1", reg.host());
    let body = format!("private {}\n", rig.mark);

    let refused = rig.try_build(
        &image,
        &[("index.html", &body)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    assert!(!refused.ok, "a push without credentials fails:\n{refused}");
    assert!(refused.stderr.contains("credentials"), "{refused}");
    let built = rig.build(
        &image,
        &[("index.html", &body)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &good,
    );

    let mut d = rig.daemon(&rig.no_auth);
    rig.create(&d, "img-private", &image, &["--no-wait"])
        .success();
    let (reason, message) = wait_failed(&d, "img-private-00001");
    assert_eq!(reason, "ContainerMissing", "{message}");
    assert!(
        message.contains(&format!("Unable to fetch image {image:?}"))
            && message.contains("requires credentials"),
        "the message says credentials are needed: {message}"
    );
    assert_nothing_runs(&rig);
    d.stop();

    let mut d = rig.daemon(&bad);
    let (reason, message) = wait_failed(&d, "img-private-00001");
    assert_eq!(reason, "ContainerMissing", "{message}");
    wait_revision(
        &d,
        "img-private-00001",
        "the wrong password is reported",
        |r| cond_parts(r, "Ready").2.contains("refused the credentials"),
    );
    assert_nothing_runs(&rig);
    d.stop();

    let mut d = rig.daemon(&good);
    d.wait_service_ready("img-private");
    let rev = d.revision("img-private-00001").expect("the revision");
    assert_eq!(image_digest(&rev), built.pinned);
    assert_eq!(page(&d, "img-private", "/"), body);
    rig.stop_clean(&mut d);
}

/// `imagePullSecrets` naming a `kubernetes.io/dockerconfigjson` Secret of the namespace: a
/// daemon without any docker config pulls from a password-protected registry with it. The
/// Secret may come after the Service (the revision retries), and `valueFrom.secretKeyRef`
/// reads the same kind of object.
#[test]
fn image_pull_secret_of_the_namespace_is_used() {
    let rig = Rig::new("img-pullsecret");
    let reg = Registry::start_with_htpasswd();
    let good = rig.docker_config(&reg, USER, PASSWORD);
    let image = format!("{}/pullsecret:v1", reg.host());
    let body = format!("pull secret {}\n", rig.mark);
    rig.build(
        &image,
        &[("index.html", &body)],
        &serve_www("echo \"$GREETING\" > /www/greeting.txt; "),
        true,
        &rig.builder_dir(),
        &good,
    );
    let mut d = rig.daemon(&rig.no_auth);
    let svc = serde_json::json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "img-pullsecret", "namespace": "default"},
        "spec": {"template": {"spec": {
            "imagePullSecrets": [{"name": "regcred"}],
            "containers": [{
                "image": image,
                "env": [
                    {"name": MARK, "value": rig.mark},
                    {"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "greeting"}}},
                ],
            }],
        }}},
    });
    let r = d.post_json(&serving_path("default", "services", None), &svc);
    assert_eq!(r.status, 201, "{}", r.body);
    let (reason, message) = wait_failed(&d, "img-pullsecret-00001");
    assert_eq!(reason, "CreateContainerConfigError", "{message}");
    assert!(message.contains("\"app-secret\" not found"), "{message}");

    let secret = |name: &str, type_: &str, key: &str, value: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "type": type_,
            "data": {key: base64(value.as_bytes())},
        })
    };
    let app = secret("app-secret", "Opaque", "greeting", "hello from a secret");
    let r = d.post_json("/api/v1/namespaces/default/secrets", &app);
    assert_eq!(r.status, 201, "{}", r.body);
    // Now the image cannot be fetched: the pull secret is still missing.
    wait_revision(
        &d,
        "img-pullsecret-00001",
        "the registry asks for credentials",
        |r| cond_parts(r, "Ready").2.contains("requires credentials"),
    );
    assert_nothing_runs(&rig);

    let auth = base64(format!("{USER}:{PASSWORD}").as_bytes());
    let config = serde_json::json!({"auths": {reg.host(): {"auth": auth}}}).to_string();
    let regcred = secret(
        "regcred",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        &config,
    );
    let r = d.post_json("/api/v1/namespaces/default/secrets", &regcred);
    assert_eq!(r.status, 201, "{}", r.body);
    d.wait_service_ready("img-pullsecret");
    assert_eq!(page(&d, "img-pullsecret", "/"), body);
    assert_eq!(
        page(&d, "img-pullsecret", "/greeting.txt"),
        "hello from a secret\n"
    );
    rig.stop_clean(&mut d);
}

/// A layer whose bytes in the registry do not match its digest is refused: the revision says
/// so, nothing runs, and the image store keeps no copy of it.
#[test]
fn corrupt_layer_in_the_registry_is_refused() {
    let rig = Rig::new("img-corrupt");
    let reg = Registry::start();
    let image = format!("{}/corrupt:v1", reg.host());
    let built = rig.build(
        &image,
        &[("index.html", "fine\n")],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    let layers = reg.layers(&built.digest);
    assert!(!layers.is_empty());
    for layer in &layers {
        let file = reg.blob_file(layer);
        let mut bytes = std::fs::read(&file).expect("the layer is in the registry");
        let mid = bytes.len() / 2;
        let end = (mid + 16).min(bytes.len());
        for b in &mut bytes[mid..end] {
            *b ^= 0xff;
        }
        std::fs::write(&file, &bytes).expect("corrupt the layer");
    }

    let mut d = rig.daemon(&rig.no_auth);
    rig.create(&d, "img-corrupt", &image, &["--no-wait"])
        .success();
    let (_, message) = wait_failed(&d, "img-corrupt-00001");
    assert!(
        layers.iter().any(|l| message.contains(l.as_str()))
            && (message.contains("does not match") || message.contains("corrupt")),
        "the message names the corrupt layer: {message}"
    );
    assert_nothing_runs(&rig);
    for layer in &layers {
        let hex = layer.strip_prefix("sha256:").expect("sha256");
        let stored = d.data_dir.join("oci/blobs/sha256").join(hex);
        assert!(
            !stored.exists(),
            "the corrupt blob was stored: {}",
            stored.display()
        );
    }
    rig.stop_clean(&mut d);
}

/// An image that does not exist, or whose registry does not answer, fails its revision with
/// Knative's `ContainerMissing` naming the image, and `wisp service create` says so.
#[test]
fn missing_image_fails_the_revision() {
    let rig = Rig::new("img-missing");
    let reg = Registry::start();
    let mut d = rig.daemon(&rig.no_auth);

    let unknown = format!("{}/nothere:v1", reg.host());
    let r = rig.create(&d, "img-unknown", &unknown, &["--wait-timeout", "50"]);
    let r = r.failure();
    assert!(
        r.stderr
            .contains(&format!("Unable to fetch image {unknown:?}: ")),
        "the CLI reports why:\n{r}"
    );
    let (reason, message) = wait_failed(&d, "img-unknown-00001");
    assert_eq!(reason, "ContainerMissing", "{message}");
    assert!(
        message.starts_with(&format!("Unable to fetch image {unknown:?}: ")),
        "{message}"
    );
    assert!(message.contains("not found"), "{message}");
    let svc = d.service("img-unknown").expect("the service");
    assert_eq!(condition(&svc, "Ready"), "False", "{svc}");

    let unreachable = format!("127.0.0.1:{}/app:v1", free_port());
    rig.create(&d, "img-noregistry", &unreachable, &["--no-wait"])
        .success();
    let (reason, message) = wait_failed(&d, "img-noregistry-00001");
    assert_eq!(reason, "ContainerMissing", "{message}");
    assert!(
        message.starts_with(&format!("Unable to fetch image {unreachable:?}: ")),
        "{message}"
    );

    // Pinned to a digest the registry does not have: nothing to resolve, and the pull fails.
    let digest = format!("{}/nothere@sha256:{}", reg.host(), "ab".repeat(32));
    rig.create(&d, "img-nodigest", &digest, &["--no-wait"])
        .success();
    let (_, message) = wait_failed(&d, "img-nodigest-00001");
    assert!(
        message.contains(&digest),
        "the message names the image: {message}"
    );

    assert_nothing_runs(&rig);
    rig.stop_clean(&mut d);
}

/// A daemon killed with SIGKILL leaves its container running (runc dies with the daemon, the
/// container does not); the next daemon on the same data dir removes it before anything else,
/// and the service answers again from a new container.
#[test]
fn restart_after_sigkill_removes_stale_containers() {
    let rig = Rig::new("img-crash");
    let reg = Registry::start();
    let image = format!("{}/survivor:v1", reg.host());
    let body = format!("survivor {}\n", rig.mark);
    rig.build(
        &image,
        &[("index.html", &body)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    let mut d = rig.daemon(&rig.no_auth);
    rig.create(&d, "img-survivor", &image, &[]).success();
    d.wait_service_ready("img-survivor");
    assert_eq!(page(&d, "img-survivor", "/"), body);
    let before = runc_containers(&d.data_dir);
    assert_eq!(before.len(), 1, "{before:?}");
    let old_pids = marked_pids(&rig.mark);
    assert!(old_pids.contains(&before[0].pid), "{old_pids:?} {before:?}");

    d.kill();
    // runc dies with the daemon, the container does not: that is what the next daemon must
    // clean up.
    assert!(
        old_pids.iter().any(|p| pid_alive(*p)),
        "the container outlives a daemon killed with SIGKILL"
    );
    let mut d = rig.daemon(&rig.no_auth);
    wait_for("the old container's processes are gone", || {
        let alive: Vec<u32> = old_pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("{alive:?} alive"))
        }
    });
    let stale: Vec<Container> = runc_containers(&d.data_dir)
        .into_iter()
        .filter(|c| old_pids.contains(&c.pid) || c.status != "running")
        .collect();
    assert!(
        stale.is_empty(),
        "stale containers after the restart: {stale:?}"
    );

    d.wait_service_ready("img-survivor");
    assert_eq!(page(&d, "img-survivor", "/"), body);
    let now = runc_containers(&d.data_dir);
    assert_eq!(now.len(), 1, "one new container: {now:?}");
    assert_eq!(now[0].status, "running");
    assert!(!old_pids.contains(&now[0].pid), "{now:?} {old_pids:?}");
    let mounts = mounts_under(&d.data_dir.join("replicas"));
    assert_eq!(
        mounts.len(),
        1,
        "only the new container's rootfs is mounted: {mounts:?}"
    );
    rig.stop_clean(&mut d);
}

/// Two daemons on one host, each with its own data dir, both running a Service of the same
/// name: stopping one leaves the other's container alone.
#[test]
fn daemons_side_by_side_keep_their_containers_apart() {
    let rig_a = Rig::new("img-twin-a");
    let rig_b = Rig::new("img-twin-b");
    let reg = Registry::start();
    let image = format!("{}/twin:v1", reg.host());
    let body = format!("twin {}\n", rig_a.mark);
    rig_a.build(
        &image,
        &[("index.html", &body)],
        &serve_www(""),
        true,
        &rig_a.builder_dir(),
        &rig_a.no_auth,
    );
    // Started back to back: usually within the same second.
    let mut a = rig_a.daemon(&rig_a.no_auth);
    let mut b = rig_b.daemon(&rig_b.no_auth);
    rig_a.create(&a, "img-twin", &image, &[]).success();
    assert_eq!(page(&a, "img-twin", "/"), body);
    let in_a = runc_containers(&a.data_dir);
    assert_eq!(in_a.len(), 1, "{in_a:?}");

    rig_b.create(&b, "img-twin", &image, &[]).success();
    assert_eq!(page(&b, "img-twin", "/"), body);
    let in_b = runc_containers(&b.data_dir);
    assert_eq!(in_b.len(), 1, "{in_b:?}");
    assert!(
        pid_alive(in_a[0].pid) && runc_containers(&a.data_dir) == in_a,
        "starting daemon B's container {:?} killed daemon A's {:?}",
        in_b[0],
        in_a[0]
    );

    rig_a.stop_clean(&mut a);
    assert!(
        pid_alive(in_b[0].pid) && runc_containers(&b.data_dir) == in_b,
        "stopping daemon A killed daemon B's container {:?}",
        in_b[0]
    );
    assert_eq!(page(&b, "img-twin", "/"), body);
    rig_b.stop_clean(&mut b);
}

/// A TCP proxy to `backend` that passes `limit` bytes of responses per connection, then holds
/// the rest until the returned gate is opened (set to true and notified).
fn stalling_proxy(
    backend: String,
    limit: usize,
) -> (
    u16,
    std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
) {
    use std::io::{Read, Write};
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let g = gate.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&backend) else {
                continue;
            };
            let (mut c_in, mut s_out) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
            });
            let (mut s_in, mut c_out, g) = (server, client, g.clone());
            std::thread::spawn(move || {
                let mut passed = 0usize;
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if passed < limit && passed + n >= limit {
                        let (open, cv) = &*g;
                        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                        while !*open {
                            open = cv.wait(open).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    passed += n;
                    if c_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, gate)
}

/// While a replica waits for its image, the revision (and `wisp service create`'s wait) says
/// how far the pull has come.
#[test]
fn a_slow_pull_reports_its_progress() {
    let rig = Rig::new("img-progress");
    let reg = Registry::start();
    // Bytes that compress poorly, so the layer stays over the 1 MiB the proxy lets through.
    let noise: String = (0..3_000_000u64)
        .map(|i| char::from(b'a' + ((i.wrapping_mul(2_654_435_761) >> 7) % 26) as u8))
        .collect();
    let image = format!("{}/slow:v1", reg.host());
    rig.build(
        &image,
        &[("index.html", "slow\n"), ("noise.txt", &noise)],
        &serve_www(""),
        true,
        &rig.builder_dir(),
        &rig.no_auth,
    );
    let (port, gate) = stalling_proxy(reg.host(), 1 << 20);
    let mut d = rig.daemon(&rig.no_auth);
    let via_proxy = format!("127.0.0.1:{port}/slow:v1");
    rig.create(&d, "img-slow", &via_proxy, &["--no-wait"])
        .success();
    let rev = wait_revision(&d, "img-slow-00001", "the pull's progress", |r| {
        let (_, reason, message) = cond_parts(r, "ResourcesAvailable");
        reason == "Pulling" && message.contains("MB of ")
    });
    let (_, _, message) = cond_parts(&rev, "ResourcesAvailable");
    assert!(
        message.starts_with(&format!("Pulling image 127.0.0.1:{port}/slow@sha256:")),
        "{message}"
    );
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    d.wait_service_ready("img-slow");
    assert_eq!(page(&d, "img-slow", "/"), "slow\n");
    rig.stop_clean(&mut d);
}
