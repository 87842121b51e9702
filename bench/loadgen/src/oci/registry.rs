//! Debian's `docker-registry` on 127.0.0.1 with a free port, its config and storage in the
//! workdir (Debian's own config listens on all interfaces with auth), and a bare client that
//! fetches an image the way a pull does, for the limit of the pull benchmark.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::ImageInfo;
use crate::nginx::free_port;

pub struct Registry {
    pub addr: SocketAddr,
    child: Child,
}

impl Registry {
    pub async fn start(bin: &Path, dir: &Path, pidfile: Option<&Path>) -> anyhow::Result<Registry> {
        anyhow::ensure!(
            bin.exists(),
            "{} is missing (Debian package docker-registry)",
            bin.display()
        );
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  \
filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  \
secret: wisp-bench-secret\n",
            dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        if let (Some(pidfile), Some(pid)) = (pidfile, child.id()) {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pidfile)?;
            writeln!(f, "{pid}")?;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = RegistryConn::connect(addr).await
                && let Ok((StatusCode::OK, _)) = c.get("/v2/", "application/json").await
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "docker-registry exited with {status}: {}",
                    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("docker-registry did not answer on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Registry { addr, child })
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// One keep-alive connection to the registry, with the `Accept` a pull sends.
pub struct RegistryConn {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
}

impl RegistryConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RegistryConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(RegistryConn {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn get(&mut self, path: &str, accept: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let req = Request::get(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, accept)
            .body(Empty::new())?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// The registry alone: manifest (by tag, as a resolve + pull asks for it), config and layers
/// over one new keep-alive connection, each body read to the end and its size checked;
/// returns the time and the bytes received.
pub async fn fetch_alone(addr: SocketAddr, image: &ImageInfo) -> anyhow::Result<(Duration, u64)> {
    let t0 = Instant::now();
    let mut c = RegistryConn::connect(addr).await?;
    let tag = image
        .reference
        .rsplit_once(':')
        .map_or("latest", |(_, t)| t);
    let path = format!("/v2/{}/manifests/{tag}", image.repository);
    let (status, manifest) = c.get(&path, MANIFEST_TYPES).await?;
    anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status}");
    let mut bytes = manifest.len() as u64;
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let path = format!("/v2/{}/blobs/{}", image.repository, blob.digest);
        let (status, body) = c.get(&path, "*/*").await?;
        anyhow::ensure!(
            status == StatusCode::OK && body.len() as u64 == blob.size,
            "GET {path}: {status}, {} of {} bytes",
            body.len(),
            blob.size
        );
        bytes += body.len() as u64;
    }
    Ok((t0.elapsed(), bytes))
}
