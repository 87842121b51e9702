//! Discovery documents: how kubectl learns which kinds exist, their plural and short names, and
//! whether they are namespaced. All of it derives from the one registry in `wisp_api::kinds`.

use serde_json::{Value, json};
use wisp_api::kinds::{self, ResourceInfo};

/// The groups other than core that have at least one served kind.
fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for info in kinds::ALL.iter().filter(|i| !i.group.is_empty()) {
        if !out.contains(&info.group) {
            out.push(info.group);
        }
    }
    out
}

fn versions_of(group: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for info in kinds::ALL.iter().filter(|i| i.group == group) {
        if !out.contains(&info.version) {
            out.push(info.version);
        }
    }
    out
}

fn group_doc(group: &str) -> Value {
    let versions: Vec<Value> = versions_of(group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /api`
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(group_doc).collect::<Vec<_>>(),
    })
}

/// `GET /apis/{group}`
pub fn group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut doc = group_doc(group);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

fn resource_doc(info: &ResourceInfo) -> Value {
    json!({
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": info.verbs,
        "shortNames": info.short_names,
        "categories": info.categories,
    })
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceInfo> = kinds::ALL
        .iter()
        .filter(|i| i.group == group && i.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for info in served {
        resources.push(resource_doc(info));
        if info.has_status {
            resources.push(json!({
                "name": format!("{}/status", info.plural),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// `GET /version`
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0-wisp.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_group_lists_knative_kinds_with_short_names() {
        let list = resource_list("serving.knative.dev", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for want in [
            "services",
            "services/status",
            "configurations",
            "revisions",
            "routes",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let ksvc = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "services")
            .unwrap();
        assert_eq!(ksvc["shortNames"], json!(["kservice", "ksvc"]));
        assert_eq!(ksvc["namespaced"], json!(true));
        assert!(
            group_list()["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "serving.knative.dev")
        );
        assert!(resource_list("nope.dev", "v1").is_none());
        let core = resource_list("", "v1").unwrap();
        assert_eq!(core["groupVersion"], json!("v1"));
    }
}
