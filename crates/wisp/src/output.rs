//! Machine-readable output (`-o yaml|json|name`), shaped like kubectl's: one object as
//! itself, several as a `v1` `List`, JSON indented by four spaces.

use serde::Serialize;
use serde_json::{Value, json};
use wisp_api::kinds::ResourceInfo;

use crate::manifest::kind_ref;

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
    /// `kind.group/name`, one per line.
    Name,
    /// The table with the extra columns.
    Wide,
}

/// Items of a list response carry no apiVersion/kind on the wire; kubectl fills them in.
pub fn with_type(mut obj: Value, info: &ResourceInfo) -> Value {
    if let Some(map) = obj.as_object_mut() {
        if !map.contains_key("apiVersion") {
            map.insert("apiVersion".into(), json!(info.api_version()));
        }
        if !map.contains_key("kind") {
            map.insert("kind".into(), json!(info.kind));
        }
    }
    obj
}

/// kubectl's `List` wrapper.
pub fn list_of(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// JSON as kubectl prints it (4-space indentation), with a final newline.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return format!("{v}\n");
    }
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    s.push('\n');
    s
}

/// YAML (block style, 2-space indentation, lists not indented, like kubectl).
pub fn to_yaml(v: &Value) -> String {
    match serde_saphyr::to_string(v) {
        Ok(mut s) => {
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        Err(_) => to_json(v),
    }
}

/// Prints objects in `format` (yaml, json or name): a single object as itself when
/// `single`, else a `List`.
pub fn render(
    objects: Vec<Value>,
    info: &ResourceInfo,
    format: OutputFormat,
    single: bool,
) -> String {
    let objects: Vec<Value> = objects.into_iter().map(|o| with_type(o, info)).collect();
    match format {
        OutputFormat::Name => objects
            .iter()
            .map(|o| {
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("{}/{name}\n", kind_ref(info))
            })
            .collect(),
        OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Wide => {
            let doc = match (single, objects.len()) {
                (true, 1) => objects.into_iter().next().unwrap_or(Value::Null),
                _ => list_of(objects),
            };
            if format == OutputFormat::Yaml {
                to_yaml(&doc)
            } else {
                to_json(&doc)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::kinds;

    #[test]
    fn single_objects_and_lists() {
        let obj = json!({"metadata": {"name": "hello"}, "spec": {"a": [1, 2]}});
        let got = render(
            vec![obj.clone()],
            &kinds::SERVICES,
            OutputFormat::Json,
            true,
        );
        assert!(
            got.starts_with("{\n    \"metadata\": {\n        \"name\": \"hello\"\n    },"),
            "{got}"
        );
        assert!(got.contains("\"apiVersion\": \"serving.knative.dev/v1\""));
        assert!(got.ends_with("}\n"));

        let got = render(
            vec![obj.clone(), obj.clone()],
            &kinds::SERVICES,
            OutputFormat::Json,
            false,
        );
        let v: Value = serde_json::from_str(&got).unwrap_or_default();
        assert_eq!(v["kind"], json!("List"));
        assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["items"][1]["kind"], json!("Service"));

        let got = render(
            vec![obj.clone()],
            &kinds::SERVICES,
            OutputFormat::Yaml,
            true,
        );
        assert!(got.contains("metadata:\n  name: hello\n"), "{got}");
        assert!(got.contains("kind: Service\n"), "{got}");
        let back: Value = serde_saphyr::from_str(&got).unwrap_or_default();
        assert_eq!(back["spec"]["a"], json!([1, 2]));

        let got = render(
            vec![obj.clone(), obj],
            &kinds::SERVICES,
            OutputFormat::Name,
            false,
        );
        assert_eq!(
            got,
            "service.serving.knative.dev/hello\nservice.serving.knative.dev/hello\n"
        );
        let empty = render(Vec::new(), &kinds::SERVICES, OutputFormat::Yaml, false);
        assert!(empty.contains("items: []"), "{empty}");
    }

    #[test]
    fn yaml_keeps_strings_strings() {
        let obj = json!({"a": "true", "b": "8080", "c": "line1\nline2\n", "d": "", "e": null});
        let got = to_yaml(&obj);
        let back: Value = serde_saphyr::from_str(&got).unwrap_or_default();
        assert_eq!(back, obj, "{got}");
    }
}
