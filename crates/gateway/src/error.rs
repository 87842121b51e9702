//! Every way the gateway itself can answer a request instead of a replica, and the one place
//! ([`GatewayError::into_response`]) where each becomes an HTTP status and a message.
//!
//! Messages name what the user can act on: the host that has no route, the revision that has
//! no replica, which limit or timeout was hit and its value.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::table::RevisionKey;

/// Which of a revision's timeouts fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// `timeoutSeconds`.
    Request,
    /// `responseStartTimeoutSeconds`.
    ResponseStart,
    /// `idleTimeoutSeconds`.
    Idle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Request => "timeoutSeconds",
            TimeoutKind::ResponseStart => "responseStartTimeoutSeconds",
            TimeoutKind::Idle => "idleTimeoutSeconds",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("request has no Host header")]
    MissingHost,
    #[error("no route for host {host:?}")]
    UnknownHost { host: String },
    #[error("route {namespace}/{route} has no traffic targets")]
    NoTargets { namespace: String, route: String },
    #[error("revision {revision} is not available")]
    RevisionUnavailable { revision: RevisionKey },
    #[error("revision {revision} has no ready replica: {message}")]
    RevisionFailing {
        revision: RevisionKey,
        message: String,
    },
    #[error("revision {revision} was removed while the request waited")]
    RevisionRemoved { revision: RevisionKey },
    #[error(
        "revision {revision} has no ready replica and {limit} requests are already held for it"
    )]
    HoldQueueFull { revision: RevisionKey, limit: usize },
    #[error(
        "revision {revision} has no ready replica after waiting {}: it did not scale from zero in time",
        secs(*waited)
    )]
    HoldTimeout {
        revision: RevisionKey,
        waited: Duration,
    },
    #[error("pending request queue full: {limit} requests already wait for revision {revision}")]
    QueueFull { revision: RevisionKey, limit: usize },
    #[error(
        "no free slot on revision {revision} after waiting {} (containerConcurrency {container_concurrency})",
        secs(*waited)
    )]
    QueueTimeout {
        revision: RevisionKey,
        waited: Duration,
        container_concurrency: u32,
    },
    #[error("cannot connect to replica {replica} of revision {revision}: {source}")]
    Connect {
        revision: RevisionKey,
        replica: SocketAddr,
        source: std::io::Error,
    },
    #[error("replica {replica} of revision {revision} failed before responding: {source}")]
    Upstream {
        revision: RevisionKey,
        replica: SocketAddr,
        source: hyper::Error,
    },
    #[error("revision {revision} switched protocols on a request that did not ask to")]
    UnexpectedUpgrade { revision: RevisionKey },
    #[error("{kind} ({}) expired before revision {revision} started its response", secs(*limit))]
    Timeout {
        revision: RevisionKey,
        kind: TimeoutKind,
        limit: Duration,
    },
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MissingHost => StatusCode::BAD_REQUEST,
            UnknownHost { .. } => StatusCode::NOT_FOUND,
            NoTargets { .. }
            | RevisionUnavailable { .. }
            | RevisionRemoved { .. }
            | RevisionFailing { .. }
            | HoldQueueFull { .. }
            | HoldTimeout { .. }
            | QueueFull { .. }
            | QueueTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Connect { .. } | Upstream { .. } | UnexpectedUpgrade { .. } => StatusCode::BAD_GATEWAY,
            Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The response the client gets: the status, and the message as plain text.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        if status.is_server_error() {
            tracing::debug!(status = status.as_u16(), error = %self, "gateway answered");
        }
        let mut response = Response::new(ResponseBody::full(format!("{self}\n")));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RevisionKey {
        RevisionKey::new("default", "hello-00001")
    }

    #[test]
    fn statuses_and_messages() {
        let cases = [
            (
                GatewayError::UnknownHost {
                    host: "nope.default.localhost".into(),
                },
                404,
                "no route for host \"nope.default.localhost\"",
            ),
            (
                GatewayError::QueueFull {
                    revision: key(),
                    limit: 10,
                },
                503,
                "pending request queue full",
            ),
            (
                GatewayError::HoldTimeout {
                    revision: key(),
                    waited: Duration::from_millis(1500),
                },
                503,
                "no ready replica after waiting 1.5s",
            ),
            (
                GatewayError::Timeout {
                    revision: key(),
                    kind: TimeoutKind::ResponseStart,
                    limit: Duration::from_secs(2),
                },
                504,
                "responseStartTimeoutSeconds (2s) expired",
            ),
        ];
        for (err, status, text) in cases {
            let msg = err.to_string();
            assert!(msg.contains(text), "{msg}");
            assert_eq!(err.into_response().status().as_u16(), status);
        }
    }
}
