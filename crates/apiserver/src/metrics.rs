//! What an API request is, for `apiserver_request_total` and its latency histogram: the verb
//! and resource as kube-apiserver labels them, from names this server serves only, so that a
//! client probing made-up paths cannot grow the label sets.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{Method, Uri};
use wisp_api::kinds;

use crate::paths::{self, Target};

/// The labels of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
}

fn is_watch(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        _ => "other",
    }
}

/// Kubernetes' verb for a request on a resource path; the lowercase method elsewhere.
pub fn request_info(method: &Method, uri: &Uri) -> RequestInfo {
    let other = RequestInfo {
        verb: method_verb(method),
        group: "",
        version: "",
        resource: "",
        subresource: "",
    };
    let Some(Target::Resource(path)) = paths::parse(uri.path()) else {
        return other;
    };
    let Some(info) = kinds::find(&path.group, &path.plural).filter(|i| i.version == path.version)
    else {
        return RequestInfo {
            resource: "unknown",
            ..other
        };
    };
    let named = path.name.is_some();
    let verb = match *method {
        Method::GET if named => "get",
        Method::GET if is_watch(uri) => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => other.verb,
    };
    let subresource = match path.subresource.as_deref() {
        None => "",
        Some("status") => "status",
        Some("log") => "log",
        Some(_) => "other",
    };
    RequestInfo {
        verb,
        group: info.group,
        version: info.version,
        resource: info.plural,
        subresource,
    }
}

/// The middleware: counts and times every API request (until its response's head).
pub(crate) async fn observe(
    State(metrics): State<Arc<wisp_telemetry::Api>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let info = request_info(request.method(), request.uri());
    let response = next.run(request).await;
    metrics.record(&wisp_telemetry::ApiRequest {
        verb: info.verb,
        group: info.group,
        version: info.version,
        resource: info.resource,
        subresource: info.subresource,
        code: response.status().as_u16(),
        latency: started.elapsed(),
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> RequestInfo {
        request_info(&method, &uri.parse().unwrap())
    }

    #[test]
    fn verbs_as_kubernetes_names_them() {
        let svc = "/apis/serving.knative.dev/v1/namespaces/default/services";
        assert_eq!(info(Method::GET, svc).verb, "list");
        assert_eq!(
            info(Method::GET, &format!("{svc}?watch=true")).verb,
            "watch"
        );
        assert_eq!(info(Method::GET, &format!("{svc}/hello")).verb, "get");
        assert_eq!(info(Method::POST, svc).verb, "create");
        assert_eq!(info(Method::PUT, &format!("{svc}/hello")).verb, "update");
        assert_eq!(info(Method::PATCH, &format!("{svc}/hello")).verb, "patch");
        assert_eq!(info(Method::DELETE, &format!("{svc}/hello")).verb, "delete");
        assert_eq!(info(Method::DELETE, svc).verb, "deletecollection");
        let i = info(Method::PUT, &format!("{svc}/hello/status"));
        assert_eq!(
            (i.group, i.version, i.resource, i.subresource),
            ("serving.knative.dev", "v1", "services", "status")
        );
        let events = info(Method::GET, "/api/v1/namespaces/default/events");
        assert_eq!((events.group, events.resource), ("", "events"));
    }

    #[test]
    fn made_up_names_never_become_labels() {
        let i = info(
            Method::GET,
            "/apis/evil.example/v1/namespaces/x/whatever-123",
        );
        assert_eq!((i.group, i.version, i.resource), ("", "", "unknown"));
        let i = info(
            Method::GET,
            "/apis/serving.knative.dev/v1/namespaces/default/services/a/made-up",
        );
        assert_eq!(i.subresource, "other");
        let i = info(Method::GET, "/healthz");
        assert_eq!((i.verb, i.resource), ("get", ""));
    }
}
