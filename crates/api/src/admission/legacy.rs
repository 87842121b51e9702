//! Pre-v1 Knative manifests (`serving.knative.dev/v1alpha1` and `v1beta1`).
//!
//! Choice: wisp refuses them with a precise hint instead of converting. Knative itself stopped
//! serving these versions, the v1alpha1 modes (`runLatest`, `pinned`, `release`, `manual`)
//! do not map one-to-one onto v1 traffic (`release` tags, `rolloutPercent`, `manual`), and a
//! silent conversion would store something the user never wrote. The hint says exactly what
//! to write instead.

use serde_json::Value;

/// Each legacy construct found, as (path, how to write it in v1).
pub(crate) fn issues(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    match api_version {
        "serving.knative.dev/v1alpha1" => out.push((
            "apiVersion".to_string(),
            "serving.knative.dev/v1alpha1 is no longer served (Knative removed it): write apiVersion: serving.knative.dev/v1".to_string(),
        )),
        "serving.knative.dev/v1beta1" => out.push((
            "apiVersion".to_string(),
            "serving.knative.dev/v1beta1 is no longer served: write apiVersion: serving.knative.dev/v1 (the v1beta1 fields are the same)".to_string(),
        )),
        _ => {}
    }
    let Some(spec) = value.get("spec").and_then(Value::as_object) else {
        return out;
    };
    let mut push = |path: &str, msg: &str| out.push((path.to_string(), msg.to_string()));
    if spec.contains_key("runLatest") {
        push(
            "spec.runLatest",
            "runLatest is the v1alpha1 shape: in v1 move spec.runLatest.configuration.revisionTemplate to spec.template (its spec.container becomes spec.containers: [ ... ]) and leave spec.traffic out (all traffic then goes to the latest revision)",
        );
    }
    if spec.contains_key("pinned") {
        push(
            "spec.pinned",
            "pinned is the v1alpha1 shape: in v1 move spec.pinned.configuration.revisionTemplate to spec.template (its spec.container becomes spec.containers: [ ... ]) and pin with spec.traffic: [{revisionName: <spec.pinned.revisionName>, percent: 100}]",
        );
    }
    if spec.contains_key("release") {
        push(
            "spec.release",
            "release is the v1alpha1 shape: in v1 move spec.release.configuration.revisionTemplate to spec.template (its spec.container becomes spec.containers: [ ... ]) and list the revisions in spec.traffic, e.g. [{tag: current, revisionName: <revisions[0]>, percent: <100 - rolloutPercent>}, {tag: candidate, revisionName: <revisions[1]>, percent: <rolloutPercent>}, {tag: latest, latestRevision: true, percent: 0}]",
        );
    }
    if spec.contains_key("manual") {
        push(
            "spec.manual",
            "manual is the v1alpha1 shape and has no v1 equivalent: write a Service with spec.template (and spec.traffic), or manage a Configuration and a Route yourself",
        );
    }
    if spec.contains_key("revisionTemplate") {
        push(
            "spec.revisionTemplate",
            "revisionTemplate is the v1alpha1 name: in v1 it is spec.template",
        );
    }
    if spec.contains_key("generation") {
        push(
            "spec.generation",
            "spec.generation was removed in v1: the server sets metadata.generation",
        );
    }
    if spec.contains_key("container") {
        push(
            "spec.container",
            "container (one object) is the v1alpha1 shape: in v1 write containers: [ ... ] (a list)",
        );
    }
    if let Some(t) = spec
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(Value::as_object)
        && t.contains_key("container")
    {
        push(
            "spec.template.spec.container",
            "container (one object) is the v1alpha1 shape: in v1 write spec.template.spec.containers: [ ... ] (a list)",
        );
    }
    if let Some(traffic) = spec.get("traffic").and_then(Value::as_array) {
        for (i, t) in traffic.iter().enumerate() {
            if t.get("name").is_some() {
                push(
                    &format!("spec.traffic[{i}].name"),
                    "name is the v1alpha1 spelling: in v1 it is tag",
                );
            }
        }
    }
    out
}

/// A message saying how to write a pre-v1 manifest in v1, or `None` when nothing legacy is
/// found.
pub fn legacy_hint(value: &Value) -> Option<String> {
    let issues = issues(value);
    if issues.is_empty() {
        return None;
    }
    Some(
        issues
            .iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hints() {
        let v1 = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert_eq!(legacy_hint(&v1), None);

        let run_latest = json!({"apiVersion": "serving.knative.dev/v1alpha1", "kind": "Service",
            "spec": {"runLatest": {"configuration": {"revisionTemplate": {"spec": {"container": {"image": "x"}}}}}}});
        let h = legacy_hint(&run_latest).unwrap_or_default();
        assert!(
            h.starts_with("apiVersion: serving.knative.dev/v1alpha1 is no longer served"),
            "{h}"
        );
        assert!(
            h.contains("spec.runLatest: runLatest is the v1alpha1 shape"),
            "{h}"
        );

        let container = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "spec": {"template": {"spec": {"container": {"image": "x"}}}, "traffic": [{"name": "a", "percent": 100}]}});
        let issues = issues(&container);
        let paths: Vec<&str> = issues.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.template.spec.container", "spec.traffic[0].name"]
        );

        for key in ["pinned", "release", "manual", "revisionTemplate"] {
            let v = json!({"apiVersion": "serving.knative.dev/v1", "spec": {key: {}}});
            assert!(
                legacy_hint(&v).is_some_and(|h| h.contains(&format!("spec.{key}"))),
                "{key}"
            );
        }
    }
}
