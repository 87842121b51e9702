//! A real registry for the tests: Debian's `docker-registry`, started on 127.0.0.1 with a free
//! port, a temporary storage directory and a config written here (Debian's own config listens
//! on all interfaces with auth). Missing binaries fail the tests with what to install.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_oci::digest::Digest;
use wisp_oci::manifest::{Descriptor, ImageConfig, ImageManifest, Platform, RootFs, media};
use wisp_oci::store::Store;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const USER: &str = "wisp";
pub const PASSWORD: &str = "s3cret-pw";

pub struct Registry {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// `host:port` as references spell it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn start() -> Registry {
        Registry::start_with(false)
    }

    /// With HTTP Basic auth (htpasswd, bcrypt) for [`USER`]/[`PASSWORD`].
    pub fn start_with_htpasswd() -> Registry {
        Registry::start_with(true)
    }

    fn start_with(htpasswd: bool) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install it with `apt-get install -y docker-registry` (see crates/oci/CI.md)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut auth = String::new();
        if htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run htpasswd ({e}): install it with `apt-get install -y apache2-utils` (see crates/oci/CI.md)")
                });
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: wisp-test\n    path: {}\n",
                path.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: wisp-test-secret\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut registry = Registry { addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A tar stream of (path, contents) regular files; paths ending in `/` are directories.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
        }
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// One layer: media type, blob, uncompressed tar.
pub struct Layer {
    pub media_type: &'static str,
    pub blob: Vec<u8>,
    pub tar: Vec<u8>,
}

pub fn gzip_layer(entries: &[(&str, &[u8])]) -> Layer {
    let tar = tar_of(entries);
    Layer {
        media_type: media::OCI_LAYER_GZIP,
        blob: gzip(&tar),
        tar,
    }
}

pub fn zstd_layer(entries: &[(&str, &[u8])]) -> Layer {
    let tar = tar_of(entries);
    Layer {
        media_type: media::OCI_LAYER_ZSTD,
        blob: zstd(&tar),
        tar,
    }
}

/// Writes an image (config for `platform`, the layers) into `store`; returns the manifest's
/// digest and descriptor.
pub fn put_image(
    store: &Store,
    layers: &[Layer],
    platform: &Platform,
    cmd: &[&str],
) -> (Digest, Descriptor) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = store.put_blob(&l.blob).unwrap();
        descs.push(Descriptor::new(l.media_type, d, l.blob.len() as u64));
        diff_ids.push(Digest::of(&l.tar));
    }
    let config = ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(wisp_oci::ContainerConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }),
        rootfs: RootFs {
            type_: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put_blob(&config_bytes).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers: descs,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = store.put_blob(&bytes).unwrap();
    let mut desc = Descriptor::new(media::OCI_MANIFEST, digest.clone(), bytes.len() as u64);
    desc.platform = Some(platform.clone());
    (digest, desc)
}

/// Writes an OCI index of `manifests` into `store`.
pub fn put_index(store: &Store, manifests: Vec<Descriptor>) -> Digest {
    let index = wisp_oci::manifest::ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        manifests,
        annotations: None,
    };
    store
        .put_blob(&serde_json::to_vec(&index).unwrap())
        .unwrap()
}

/// A platform this host cannot run.
pub fn foreign_platform() -> Platform {
    if Platform::host().architecture == "s390x" {
        Platform::new("linux", "riscv64", None)
    } else {
        Platform::new("linux", "s390x", None)
    }
}

// ---- a bearer-token front for the registry ----------------------------------------------

/// An in-test token server plus a proxy that lets through only requests with a token it
/// issued for the right scope, challenging the others as Docker Hub does.
pub struct TokenFront {
    pub addr: SocketAddr,
    pub token_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Tokens = Arc<std::sync::Mutex<HashMap<String, String>>>;

impl TokenFront {
    pub async fn start(backend: SocketAddr) -> TokenFront {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let tokens: Tokens = Arc::default();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let counter = token_requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tokens = tokens.clone();
                let client = client.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(
                            req,
                            addr,
                            backend,
                            tokens.clone(),
                            client.clone(),
                            counter.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenFront {
            addr,
            token_requests,
            task,
        }
    }
}

type Resp = hyper::Response<http_body_util::Full<Bytes>>;

fn reply(status: u16, body: &str) -> Resp {
    hyper::Response::builder()
        .status(status)
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    me: SocketAddr,
    backend: SocketAddr,
    tokens: Tokens,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    counter: Arc<AtomicUsize>,
) -> Result<Resp, std::convert::Infallible> {
    use base64::Engine as _;
    use http_body_util::BodyExt as _;
    let path = req.uri().path().to_string();
    if path == "/token" {
        counter.fetch_add(1, Ordering::SeqCst);
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(want.as_str()) {
            return Ok(reply(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            ));
        }
        let query = req.uri().query().unwrap_or("");
        let scope = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("scope="))
            .map(|s| {
                s.replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",")
            })
            .unwrap_or_default();
        let token = format!("tok{}", counter.load(Ordering::SeqCst));
        tokens.lock().unwrap().insert(token.clone(), scope);
        return Ok(reply(
            200,
            &format!(r#"{{"token":"{token}","expires_in":300}}"#),
        ));
    }
    // /v2/<repo>/(manifests|blobs)/...
    let repo = path
        .strip_prefix("/v2/")
        .and_then(|rest| {
            ["/manifests/", "/blobs/", "/tags/"]
                .iter()
                .find_map(|m| rest.find(m).map(|i| rest[..i].to_string()))
        })
        .unwrap_or_default();
    let push = !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
    let needed = if push {
        format!("repository:{repo}:pull,push")
    } else {
        format!("repository:{repo}:pull")
    };
    let granted = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| tokens.lock().unwrap().get(t).cloned());
    let ok = granted
        .is_some_and(|g| g == needed || (!push && g == format!("repository:{repo}:pull,push")));
    if !ok {
        let resp = hyper::Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{me}/token",service="wisp-test",scope="{needed}""#),
            )
            .body(http_body_util::Full::new(Bytes::from_static(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )))
            .unwrap();
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let uri = format!(
        "http://{backend}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut fwd = hyper::Request::builder().method(parts.method).uri(uri);
    for (k, v) in &parts.headers {
        if k != "authorization" {
            fwd = fwd.header(k, v);
        }
    }
    let resp = match client
        .request(fwd.body(http_body_util::Full::new(body)).unwrap())
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(reply(502, &e.to_string())),
    };
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(hyper::Response::from_parts(
        parts,
        http_body_util::Full::new(body),
    ))
}

/// Releases a root file system when dropped, so a failing test leaves no mount behind.
pub struct Mounted(pub wisp_oci::Rootfs);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.0.release();
    }
}
