//! A minimal OpenAPI v3 surface, enough for kubectl to trust the server with validation.
//!
//! kubectl (1.27+) validates manifests itself from the server's OpenAPI schema unless the
//! server declares support for `?fieldValidation=` on each kind's PATCH operation, in which
//! case it leaves validation to the server. wisp always validates strictly on the server
//! (unknown fields are refused with their path), so it publishes exactly that declaration: one
//! document per group-version listing the object paths with the `fieldValidation` parameter and
//! the `x-kubernetes-group-version-kind` extension. It is not a full schema; `kubectl explain`
//! has nothing to show.

use serde_json::{Value, json};
use wisp_api::kinds;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn root() -> Value {
    let mut paths = serde_json::Map::new();
    for info in kinds::ALL {
        let p = gv_path(info.group, info.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/{api/v1 | apis/group/version}`.
pub fn group_version(path: &str) -> Option<Value> {
    let served: Vec<_> = kinds::ALL
        .iter()
        .filter(|i| gv_path(i.group, i.version) == path)
        .collect();
    if served.is_empty() {
        return None;
    }
    let field_validation = json!({
        "name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
        "description": "wisp always validates strictly: unknown or duplicate fields are refused.",
    });
    let mut paths = serde_json::Map::new();
    for info in served {
        let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
        let collection = if info.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("/{path}/{}", info.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", info.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(collection.clone(), json!({"post": op("post")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"put": op("put"), "patch": op("patch")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "wisp", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_field_validation_on_patch_for_each_kind() {
        let root = root();
        assert!(root["paths"]["apis/serving.knative.dev/v1"]["serverRelativeURL"].is_string());
        let doc = group_version("apis/serving.knative.dev/v1").unwrap();
        let patch = &doc["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert!(group_version("apis/nope/v1").is_none());
        let core = group_version("api/v1").unwrap();
        assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
    }
}
