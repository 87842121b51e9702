//! The event sender: one HTTP/1.1 keep-alive connection POSTing binary-mode CloudEvents, one
//! at a time, each stamped with its run and its send time.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::clock;
use super::sink::{RUN_HEADER, SENT_HEADER};

/// The event's data: a JSON object of exactly `bytes` bytes (at least 12).
pub fn body(bytes: usize) -> Bytes {
    let pad = bytes.saturating_sub(12).max(1);
    Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(pad)))
}

/// Hands out run numbers (what `ce-benchrun` carries), one per measured run.
#[derive(Debug, Default)]
pub struct RunIds(u32);

impl RunIds {
    pub fn next(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

pub struct EventConn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    path: String,
    body: Bytes,
}

impl EventConn {
    pub async fn connect(addr: SocketAddr, path: &str, body: Bytes) -> anyhow::Result<EventConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(EventConn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
            path: path.to_owned(),
            body,
        })
    }

    /// POSTs event `n` of `run`, stamped as sent at `sent`; returns the answer's status once
    /// its body is read.
    pub async fn post(&mut self, run: u32, n: u64, sent: Instant) -> anyhow::Result<StatusCode> {
        self.sender.ready().await.context("connection closed")?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .body(Full::new(self.body.clone()))
            .expect("a request built from a valid path");
        let h = req.headers_mut();
        h.insert(header::HOST, self.host.clone());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("ce-specversion", HeaderValue::from_static("1.0"));
        h.insert("ce-id", HeaderValue::from_str(&format!("{run}-{n}"))?);
        h.insert("ce-source", HeaderValue::from_static("/wisp-loadgen"));
        h.insert("ce-type", HeaderValue::from_static("dev.wisp.bench"));
        h.insert(RUN_HEADER, HeaderValue::from(run));
        h.insert(SENT_HEADER, HeaderValue::from(clock::ns_of(sent)));
        let resp = self
            .sender
            .send_request(req)
            .await
            .with_context(|| format!("POST {} failed", self.path))?;
        let status = resp.status();
        resp.into_body().collect().await?;
        Ok(status)
    }
}
