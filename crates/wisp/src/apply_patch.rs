//! kubectl's client-side apply, as pure functions: the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation and the three-way JSON merge
//! patch computed from it.
//!
//! Why exact: users mix `kubectl apply` and `wisp apply` on the same objects, so both must
//! write the same annotation and read each other's. kubectl (k8s.io/kubectl `apply.go`,
//! apimachinery `jsonmergepatch.CreateThreeWayJSONMergePatch`) does, for custom resources:
//! - annotation = the manifest, namespace filled in, without the annotation itself but with
//!   `metadata.annotations` present (possibly `{}`), encoded by Go's `json.Encoder`: compact,
//!   keys sorted, `<>&` escaped, a trailing newline;
//! - patch = (merge-patch from current to modified, nulls dropped)
//!   merged with (merge-patch from last-applied to modified, only its nulls);
//!   where "modified" is the manifest carrying the new annotation. `{}` means unchanged.

use serde_json::{Map, Value};

/// The annotation kubectl keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manifest with the annotation removed and `metadata.annotations` present.
fn without_annotation(manifest: &Value) -> Value {
    let mut obj = manifest.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.remove(LAST_APPLIED);
        } else {
            *annotations = Value::Object(Map::new());
        }
    }
    obj
}

/// The value kubectl stores in [`LAST_APPLIED`] for `manifest`.
pub fn last_applied(manifest: &Value) -> String {
    let mut s = go_json(&without_annotation(manifest));
    s.push('\n');
    s
}

/// `manifest` carrying its [`LAST_APPLIED`] annotation: what apply creates, and the
/// "modified" side of the patch.
pub fn with_last_applied(manifest: &Value) -> Value {
    let annotation = last_applied(manifest);
    let mut obj = without_annotation(manifest);
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.to_string(), Value::String(annotation));
    }
    obj
}

/// The last applied configuration stored on a live object, if any.
pub fn original_of(current: &Value) -> Result<Option<Value>, String> {
    let Some(text) = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("the {LAST_APPLIED} annotation is not valid JSON: {e}"))
}

/// Go's `json.Marshal` of a generic value: compact, object keys sorted, HTML-safe escapes.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(&map[k], out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's generic JSON types: numbers are all float64, so `1` and `1.0` are the same value.
fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Deep equality with numbers compared as float64 (evanphx/json-patch `matchesValue`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// RFC 7386 merge patch turning object `from` into object `to` (evanphx/json-patch
/// `CreateMergePatch`): changed and added keys with their new values, removed keys as null,
/// nested objects diffed recursively, lists replaced whole.
pub fn create_merge_patch(
    from: &Map<String, Value>,
    to: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (k, tv) in to {
        match from.get(k) {
            None => {
                patch.insert(k.clone(), tv.clone());
            }
            Some(fv) if !same_type(fv, tv) => {
                patch.insert(k.clone(), tv.clone());
            }
            Some(Value::Object(fo)) => {
                let to_obj = tv.as_object().cloned().unwrap_or_default();
                let sub = create_merge_patch(fo, &to_obj);
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            Some(fv) => {
                if !json_equal(fv, tv) {
                    patch.insert(k.clone(), tv.clone());
                }
            }
        }
    }
    for k in from.keys() {
        if !to.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    patch
}

/// kubectl's `keepOrDeleteNullInObj`: with `keep_null`, only the deletions (nulls) of a patch
/// and the objects leading to them; without, everything but the nulls. Explicit empty objects
/// are values, kept only without `keep_null`.
fn keep_or_delete_null(patch: &Map<String, Value>, keep_null: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in patch {
        match v {
            Value::Null => {
                if keep_null {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(o) if o.is_empty() => {
                if !keep_null {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(o) => {
                let sub = keep_or_delete_null(o, keep_null);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            _ => {
                if !keep_null {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// evanphx/json-patch `pruneNulls`: drops null members of objects, at any depth.
fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items
            .iter_mut()
            .filter(|x| !x.is_null())
            .for_each(prune_nulls),
        _ => {}
    }
}

/// evanphx/json-patch `MergePatch(doc, patch)` for objects: applies RFC 7386 `patch` to `doc`.
fn merge_into(doc: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, pv) in patch {
        if pv.is_null() {
            doc.remove(k);
            continue;
        }
        match (doc.get_mut(k), pv) {
            (Some(Value::Object(cur)), Value::Object(p)) => merge_into(cur, p),
            _ => {
                let mut v = pv.clone();
                prune_nulls(&mut v);
                doc.insert(k.clone(), v);
            }
        }
    }
}

/// kubectl's three-way JSON merge patch (`CreateThreeWayJSONMergePatch`) from the last
/// applied configuration (`original`, `None` if the object has none), the new manifest with
/// its annotation (`modified`) and the live object (`current`). Refuses patches that would
/// change apiVersion, kind or name, as kubectl's preconditions do.
pub fn three_way_merge_patch(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
) -> Result<Value, String> {
    let empty = Map::new();
    let as_obj = |v: &Value, what: &str| {
        v.as_object()
            .cloned()
            .ok_or_else(|| format!("the {what} object is not a JSON object"))
    };
    let original = match original {
        Some(o) => as_obj(o, "last applied")?,
        None => empty,
    };
    let modified = as_obj(modified, "applied")?;
    let current = as_obj(current, "live")?;
    let add_and_change = keep_or_delete_null(&create_merge_patch(&current, &modified), false);
    let mut patch = keep_or_delete_null(&create_merge_patch(&original, &modified), true);
    merge_into(&mut patch, &add_and_change);
    let changes_name = patch
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("name"));
    if patch.contains_key("apiVersion") || patch.contains_key("kind") || changes_name {
        return Err("at least one of apiVersion, kind and name was changed".to_string());
    }
    Ok(Value::Object(patch))
}

/// Whether a patch does nothing (kubectl then reports `unchanged`).
pub fn is_empty_patch(patch: &Value) -> bool {
    patch.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [
                {"image": "ghcr.io/knative/helloworld-go", "env": [{"name": "TARGET", "value": "a&b"}]}
            ]}}}
        })
    }

    #[test]
    fn annotation_is_what_kubectl_writes() {
        // Byte for byte what kubectl 1.30 stores for this manifest.
        let want = "{\"apiVersion\":\"serving.knative.dev/v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"hello\",\"namespace\":\"default\"},\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"env\":[{\"name\":\"TARGET\",\"value\":\"a\\u0026b\"}],\"image\":\"ghcr.io/knative/helloworld-go\"}]}}}}\n";
        assert_eq!(last_applied(&manifest()), want);
        let with = with_last_applied(&manifest());
        assert_eq!(with["metadata"]["annotations"][LAST_APPLIED], json!(want));
        // Re-applying a manifest that already carries an annotation gives the same one.
        assert_eq!(last_applied(&with), want);
        assert_eq!(
            original_of(&with).ok().flatten(),
            Some(without_annotation(&manifest()))
        );
        assert_eq!(original_of(&manifest()), Ok(None));
    }

    #[test]
    fn go_json_escapes() {
        assert_eq!(
            go_json(&json!({"b": 1, "a": [true, null, 1.5]})),
            r#"{"a":[true,null,1.5],"b":1}"#
        );
        assert_eq!(
            go_json(&json!("<\u{1}\t\"\\>")),
            r#""\u003c\u0001\t\"\\\u003e""#
        );
    }

    #[test]
    fn merge_patch_diff() {
        let from = json!({"a": 1, "b": {"c": 1, "d": 2}, "e": [1, 2], "f": "x", "g": {}});
        let to = json!({"a": 1.0, "b": {"c": 1, "d": 3}, "e": [1, 2, 3], "g": {}, "h": null});
        let patch = create_merge_patch(
            from.as_object().unwrap_or(&Map::new()),
            to.as_object().unwrap_or(&Map::new()),
        );
        assert_eq!(
            Value::Object(patch),
            json!({"b": {"d": 3}, "e": [1, 2, 3], "f": null, "h": null})
        );
    }

    /// Cases from k8s.io/apimachinery `jsonmergepatch` and kubectl's apply tests.
    #[test]
    fn three_way() {
        struct Case {
            name: &'static str,
            original: Option<Value>,
            modified: Value,
            current: Value,
            want: Value,
        }
        let cases = vec![
            Case {
                name: "unchanged",
                original: Some(json!({"a": 1, "m": {"x": "y"}})),
                modified: json!({"a": 1, "m": {"x": "y"}}),
                current: json!({"a": 1, "m": {"x": "y"}, "status": {"ok": true}}),
                want: json!({}),
            },
            Case {
                name: "field removed from the manifest is deleted",
                original: Some(json!({"a": 1, "b": 2})),
                modified: json!({"a": 1}),
                current: json!({"a": 1, "b": 2, "server": 3}),
                want: json!({"b": null}),
            },
            Case {
                name: "field set by others is kept",
                original: Some(json!({"a": 1})),
                modified: json!({"a": 1}),
                current: json!({"a": 1, "other": 2}),
                want: json!({}),
            },
            Case {
                name: "live drift is reverted",
                original: Some(json!({"a": 1})),
                modified: json!({"a": 1}),
                current: json!({"a": 5}),
                want: json!({"a": 1}),
            },
            Case {
                name: "nested delete and change",
                original: Some(json!({"m": {"labels": {"x": "1", "y": "2"}}})),
                modified: json!({"m": {"labels": {"x": "3"}}}),
                current: json!({"m": {"labels": {"x": "1", "y": "2", "z": "9"}}}),
                want: json!({"m": {"labels": {"x": "3", "y": null}}}),
            },
            Case {
                name: "lists are replaced",
                original: Some(json!({"l": [1, 2]})),
                modified: json!({"l": [1]}),
                current: json!({"l": [1, 2]}),
                want: json!({"l": [1]}),
            },
            Case {
                name: "no last applied: only additions and changes",
                original: None,
                modified: json!({"a": 1, "b": {"c": 2}}),
                current: json!({"a": 0, "b": {"d": 1}, "z": 1}),
                want: json!({"a": 1, "b": {"c": 2}}),
            },
            Case {
                name: "null in the manifest is ignored",
                original: Some(json!({"m": {"creationTimestamp": null}})),
                modified: json!({"m": {"creationTimestamp": null}}),
                current: json!({"m": {"creationTimestamp": "2026-01-01T00:00:00Z"}}),
                want: json!({}),
            },
            Case {
                name: "empty object in the manifest is a value",
                original: Some(json!({})),
                modified: json!({"e": {}}),
                current: json!({}),
                want: json!({"e": {}}),
            },
            Case {
                name: "whole subtree removed",
                original: Some(json!({"s": {"a": 1}, "k": 1})),
                modified: json!({"k": 1}),
                current: json!({"s": {"a": 1, "b": 2}, "k": 1}),
                want: json!({"s": null}),
            },
        ];
        for c in cases {
            let got = three_way_merge_patch(c.original.as_ref(), &c.modified, &c.current);
            assert_eq!(got, Ok(c.want), "{}", c.name);
        }
    }

    #[test]
    fn apply_round_trip() {
        // First apply: the object is created with the annotation. Second apply with an env
        // removed and the image changed.
        let first = with_last_applied(&manifest());
        let mut live = first.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["status"] = json!({"observedGeneration": 1});
        let same = three_way_merge_patch(original_of(&live).ok().flatten().as_ref(), &first, &live);
        assert_eq!(same.as_ref().map(is_empty_patch), Ok(true));

        let mut next = manifest();
        next["spec"]["template"]["spec"]["containers"][0] = json!({"image": "busybox"});
        let modified = with_last_applied(&next);
        let patch =
            three_way_merge_patch(original_of(&live).ok().flatten().as_ref(), &modified, &live)
                .unwrap_or_default();
        assert_eq!(
            patch["spec"],
            json!({"template": {"spec": {"containers": [{"image": "busybox"}]}}})
        );
        assert_eq!(
            patch["metadata"]["annotations"][LAST_APPLIED],
            json!(last_applied(&next))
        );
        assert_eq!(patch.as_object().map(Map::len), Some(2));
    }

    #[test]
    fn refuses_renames() {
        let err = three_way_merge_patch(
            None,
            &json!({"kind": "Service", "metadata": {"name": "b"}}),
            &json!({"kind": "Service", "metadata": {"name": "a"}}),
        );
        assert_eq!(
            err,
            Err("at least one of apiVersion, kind and name was changed".to_string())
        );
    }
}
