//! The request path, phase by phase (see the chart in the crate docs): route, time limits,
//! hold / limit / balance, forward with rewritten headers, then stream the response back (or
//! splice an upgraded connection). Each phase is a small function or type of its own module;
//! this file only strings them together, and turns an error into a response in one call.

use std::net::IpAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{self, CONTENT_TYPE, HeaderValue};
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tracing::Instrument;

use crate::Inner;
use crate::body::ResponseBody;
use crate::dispatch::InFlight;
use crate::error::{GatewayError, TimeoutKind};
use crate::headers::{
    ClientAddr, K_NETWORK_HASH, K_NETWORK_PROBE, add_forwarding, is_upgrade_request,
    strip_hop_by_hop,
};
use crate::observe::Observed;
use crate::pool::{SendError, Sent};
use crate::route::Target;
use crate::table::{RevisionConfig, normalize_host};
use crate::trace::{HopTrace, TRACEPARENT};

/// Answers one request (one HTTP/1.1 request or one HTTP/2 stream).
pub(crate) async fn handle(
    inner: &Inner,
    request: Request<Incoming>,
    client: &ClientAddr,
    remote: IpAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    // Costs nothing unless debug logging is on for this crate.
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
    );
    // Propagation is always on: the replica's parent is this hop.
    let trace = HopTrace::of(
        request.headers().get(&TRACEPARENT),
        inner.options.sample_new_traces,
    );
    let mut observed = inner
        .observer
        .get()
        .map(|o| Observed::new(o.clone(), &request, started, remote, trace));
    let response = match forward(inner, request, client, started, &trace, &mut observed)
        .instrument(span)
        .await
    {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    // Still here: the gateway answered itself (a proxied body reports when it ends).
    if let Some(mut observed) = observed {
        observed.status = response.status().as_u16();
        observed.response_size = response.body().size_hint().exact().unwrap_or(0);
        observed.finish();
    }
    response
}

async fn forward(
    inner: &Inner,
    mut request: Request<Incoming>,
    client: &ClientAddr,
    started: Instant,
    trace: &HopTrace,
    observed: &mut Option<Observed>,
) -> Result<Response<ResponseBody>, GatewayError> {
    // Routing: host -> route -> weighted pick of a revision, on a lock-free snapshot.
    let host = request_host(&request)?;
    if let Some(o) = observed.as_mut() {
        o.set_host(&host);
    }
    let revision = {
        let routes = inner.routes.load();
        let name = normalize_host(host.to_str().unwrap_or_default());
        let Some(route) = routes.lookup(&name) else {
            return Err(GatewayError::UnknownHost {
                host: name.into_owned(),
            });
        };
        if let Some(probe) = request.headers().get(&K_NETWORK_PROBE) {
            return Ok(probe_response(
                probe,
                request.headers().get(&K_NETWORK_HASH),
            ));
        }
        match route.pick() {
            Some(Target::Known(revision)) => revision.clone(),
            Some(Target::Unknown(key)) => {
                return Err(GatewayError::RevisionUnavailable {
                    revision: key.clone(),
                });
            }
            None => {
                return Err(GatewayError::NoTargets {
                    namespace: route.namespace.to_string(),
                    route: route.route.to_string(),
                });
            }
        }
    };
    if let Some(o) = observed.as_mut() {
        o.set_revision(&revision);
    }
    let config = revision.config();
    let mut flight = InFlight::new(revision, started);

    // Time limits: the response must start by `head_deadline`; waiting for a replica or a
    // slot also stops at the gateway's hold timeout.
    let (head_deadline, kind, limit) = head_deadline(started, &config);
    let wait_deadline = head_deadline.min(deadline_after(started, inner.options.hold_timeout));

    // Hold while activating, concurrency limit, balancing.
    let acquired = flight
        .acquire(
            config.container_concurrency,
            &inner.options,
            started,
            wait_deadline,
        )
        .await;
    if let Some(o) = observed.as_mut() {
        o.held = flight.held;
        if flight.held {
            o.held_for = Some(Instant::now().duration_since(started));
        }
    }
    acquired?;

    // Forward.
    let downstream_version = request.version();
    let client_upgrade = (!config.h2c
        && downstream_version == Version::HTTP_11
        && is_upgrade_request(request.headers()))
    .then(|| hyper::upgrade::on(&mut request));
    let request = prepare_request(
        request,
        &host,
        client,
        &config,
        client_upgrade.is_some(),
        inner.options.forwarded_proto,
        trace,
    );
    let sent = tokio::time::timeout_at(
        head_deadline,
        send(&mut flight, request, &config, &inner.options),
    )
    .await;
    if let Some(o) = observed.as_mut() {
        o.replica = flight.replica().map(|r| r.addr);
    }
    let (mut response, conn) = match sent {
        Ok(result) => result?,
        Err(_) => {
            return Err(GatewayError::Timeout {
                revision: flight.revision.key.clone(),
                kind,
                limit,
            });
        }
    };
    // From here the response is the replica's: its end is reported by the body (or tunnel).
    let status = response.status().as_u16();
    let mut take_observed = || {
        observed.take().map(|mut o| {
            o.status = status;
            o
        })
    };

    // Respond: splice an upgrade, or stream the body back.
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(GatewayError::UnexpectedUpgrade {
                revision: flight.revision.key.clone(),
            });
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        strip_hop_by_hop(response.headers_mut(), true);
        let (parts, _) = response.into_parts();
        let observed = take_observed();
        tokio::spawn(tunnel(client_upgrade, upstream_upgrade, flight, observed));
        return Ok(Response::from_parts(parts, ResponseBody::empty()));
    }
    strip_hop_by_hop(response.headers_mut(), false);
    let (mut parts, body) = response.into_parts();
    parts.version = downstream_version;
    let observed = take_observed();
    Ok(Response::from_parts(
        parts,
        ResponseBody::proxied(body, flight, conn, config.idle_timeout, observed),
    ))
}

/// The host the client asked for: the URI's authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1.1 target, which RFC 9112 says wins) or else the `Host` header.
fn request_host(request: &Request<Incoming>) -> Result<HeaderValue, GatewayError> {
    if let Some(authority) = request.uri().authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        return Ok(value);
    }
    request
        .headers()
        .get(header::HOST)
        .cloned()
        .ok_or(GatewayError::MissingHost)
}

/// When the response must have started, and which timeout sets that: the earliest of
/// `timeoutSeconds`, `responseStartTimeoutSeconds` and `idleTimeoutSeconds`, all counted from
/// the request's arrival (as Knative's timeout handler does). Zero means "not set".
pub(crate) fn head_deadline(
    started: Instant,
    config: &RevisionConfig,
) -> (Instant, TimeoutKind, Duration) {
    let candidates = [
        (Some(config.timeout), TimeoutKind::Request),
        (config.response_start_timeout, TimeoutKind::ResponseStart),
        (config.idle_timeout, TimeoutKind::Idle),
    ];
    let (limit, kind) = candidates
        .into_iter()
        .filter_map(|(d, kind)| d.filter(|d| !d.is_zero()).map(|d| (d, kind)))
        .min_by_key(|(d, _)| *d)
        .unwrap_or((FAR_FUTURE, TimeoutKind::Request));
    (deadline_after(started, limit), kind, limit)
}

/// Thirty years: "no limit" without overflowing `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

fn deadline_after(start: Instant, limit: Duration) -> Instant {
    start
        .checked_add(limit.min(FAR_FUTURE))
        .unwrap_or(start + Duration::from_secs(24 * 3600))
}

/// The request as the replica gets it: hop-by-hop headers out, forwarding headers in, the
/// original `Host` kept, `traceparent` naming this hop, and the target form its protocol
/// wants.
fn prepare_request(
    request: Request<Incoming>,
    host: &HeaderValue,
    client: &ClientAddr,
    config: &RevisionConfig,
    keep_upgrade: bool,
    proto: &str,
    trace: &HopTrace,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, keep_upgrade);
    parts.headers.insert(header::HOST, host.clone());
    add_forwarding(&mut parts.headers, client, host, proto);
    // `tracestate` passes untouched.
    parts
        .headers
        .insert(TRACEPARENT.clone(), trace.context.to_header());
    if config.h2c {
        parts.version = Version::HTTP_2;
        if parts.uri.authority().is_none() {
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            if let Ok(uri) = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(host.as_bytes())
                .path_and_query(path)
                .build()
            {
                parts.uri = uri;
            }
        }
    } else {
        parts.version = Version::HTTP_11;
        if parts.uri.authority().is_some() {
            // Origin form for HTTP/1.1 (the replica is not a proxy).
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path);
        }
    }
    parts.extensions = Default::default();
    Request::from_parts(parts, body)
}

/// Sends on the leased replica. A refused connection never carried the request, so it is
/// retried once on another replica (without waiting), whatever the method: replicas being
/// drained refuse connections before the endpoint update reaches the gateway.
async fn send(
    flight: &mut InFlight,
    mut request: Request<Incoming>,
    config: &RevisionConfig,
    options: &crate::GatewayOptions,
) -> Result<Sent, GatewayError> {
    let mut retried = false;
    loop {
        let Some(replica) = flight.replica() else {
            return Err(GatewayError::RevisionUnavailable {
                revision: flight.revision.key.clone(),
            });
        };
        let addr = replica.addr;
        let result = replica
            .pool
            .send(request, config.h2c, options.connect_timeout)
            .await;
        match result {
            Ok(sent) => return Ok(sent),
            Err(SendError::Connect {
                error,
                request: unsent,
            }) => {
                if !retried && flight.try_other_replica(config.container_concurrency) {
                    tracing::debug!(replica = %addr, %error, "connect failed; retrying on another replica");
                    retried = true;
                    request = *unsent;
                    continue;
                }
                return Err(GatewayError::Connect {
                    revision: flight.revision.key.clone(),
                    replica: addr,
                    source: error,
                });
            }
            Err(SendError::Upstream(source)) => {
                return Err(GatewayError::Upstream {
                    revision: flight.revision.key.clone(),
                    replica: addr,
                    source,
                });
            }
        }
    }
}

/// Splices an upgraded client connection to the upgraded replica connection. The request
/// stays in flight (and holds its slot) until both sides are done, as in Knative.
async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    flight: InFlight,
    mut observed: Option<Observed>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(error = %err, revision = %flight.revision.key, "upgrade failed");
            drop(flight);
            if let Some(o) = observed {
                o.finish();
            }
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((_, to_client)) => {
            if let Some(o) = observed.as_mut() {
                o.response_size = to_client;
            }
        }
        Err(err) => {
            tracing::debug!(error = %err, revision = %flight.revision.key, "upgraded connection ended");
        }
    }
    drop(flight);
    if let Some(o) = observed {
        o.finish();
    }
}

/// Knative's `K-Network-Probe`: answered by the gateway itself once the host is routed (so a
/// probe tells whether a route is programmed), echoing the probe value and `K-Network-Hash`.
fn probe_response(probe: &HeaderValue, hash: Option<&HeaderValue>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(bytes::Bytes::copy_from_slice(
        probe.as_bytes(),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Some(hash) = hash {
        response
            .headers_mut()
            .insert(K_NETWORK_HASH.clone(), hash.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_timeout_sets_the_response_deadline() {
        let t0 = Instant::now();
        let mut config = RevisionConfig {
            timeout: Duration::from_secs(300),
            ..RevisionConfig::default()
        };
        assert_eq!(
            head_deadline(t0, &config),
            (
                t0 + Duration::from_secs(300),
                TimeoutKind::Request,
                Duration::from_secs(300)
            )
        );
        config.response_start_timeout = Some(Duration::from_secs(10));
        config.idle_timeout = Some(Duration::from_secs(20));
        assert_eq!(head_deadline(t0, &config).1, TimeoutKind::ResponseStart);
        config.idle_timeout = Some(Duration::from_secs(5));
        assert_eq!(head_deadline(t0, &config).1, TimeoutKind::Idle);
        // Zero means unset.
        let unset = RevisionConfig {
            timeout: Duration::ZERO,
            ..RevisionConfig::default()
        };
        assert!(head_deadline(t0, &unset).0 > t0 + Duration::from_secs(3600 * 24 * 365));
        // Absurd values do not overflow.
        let huge = RevisionConfig {
            timeout: Duration::MAX,
            ..RevisionConfig::default()
        };
        assert!(head_deadline(t0, &huge).0 > t0);
    }
}
