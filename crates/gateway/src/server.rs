//! Accepting connections: HTTP/1.1 and h2c (prior knowledge) on one port, each connection on
//! its own task, upgrades allowed, graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::headers::ClientAddr;
use crate::{Gateway, Inner, proxy};

/// What a connection's requests share: the gateway and the client's formatted address.
struct Connection {
    inner: Arc<Inner>,
    client: ClientAddr,
    remote: std::net::IpAddr,
}

impl Gateway {
    /// Serves clients on `listener` until `shutdown` completes, then stops accepting, lets
    /// every open connection finish its requests (idle keep-alive connections are closed,
    /// HTTP/2 clients get GOAWAY) and returns. Bound the drain with a timeout around this
    /// call if needed.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new());
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors, say: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "set_nodelay failed");
            }
            let connection = Arc::new(Connection {
                inner: self.inner.clone(),
                client: ClientAddr::new(remote.ip()),
                remote: remote.ip(),
            });
            let service = service_fn(move |request: Request<Incoming>| {
                let connection = connection.clone();
                async move {
                    Ok::<_, Infallible>(
                        proxy::handle(
                            &connection.inner,
                            request,
                            &connection.client,
                            connection.remote,
                        )
                        .await,
                    )
                }
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, client = %remote, "connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }
}
