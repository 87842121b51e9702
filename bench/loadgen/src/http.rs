//! One HTTP/1.1 keep-alive connection, driven request by request, so each request's time is the
//! client's own round trip and nothing else (no pool, no retries, no extra tasks in the path).

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        Conn::connect_host(addr, &addr.to_string()).await
    }

    /// A connection whose requests carry `Host: host` (how the gateway picks a Service).
    pub async fn connect_host(addr: SocketAddr, host: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: host.to_owned(),
        })
    }

    fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(body.unwrap_or_default()))
            .expect("a request built from a valid path")
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let req = self.request(method, path, body);
        let resp = self
            .sender
            .send_request(req)
            .await
            .with_context(|| format!("request to {path} failed"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send(Method::GET, path, None).await
    }

    /// GET that must answer 200; returns the parsed JSON body.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get(path).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(serde_json::from_slice(&body)?)
    }

    /// Starts a streaming GET (a watch) and hands back the body, read by the caller.
    pub async fn stream(mut self, path: &str) -> anyhow::Result<Incoming> {
        self.sender.ready().await?;
        let req = self.request(Method::GET, path, None);
        let resp = self.sender.send_request(req).await?;
        anyhow::ensure!(
            resp.status() == StatusCode::OK,
            "GET {path}: {}",
            resp.status()
        );
        Ok(resp.into_body())
    }
}
