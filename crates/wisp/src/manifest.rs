//! Manifests: the YAML (or JSON) files given to `apply -f` and `delete -f`.
//!
//! A file holds one or more `---`-separated documents; `kind: List` documents are expanded
//! into their items, as kubectl does. Parse errors name the file, line and column, so a user
//! can jump straight to the typo. Parsing is pure ([`parse_documents`]); reading files,
//! directories and stdin is the only I/O here ([`read_manifests`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_saphyr::MessageFormatter;
use wisp_api::kinds::{self, ResourceInfo};

/// One object read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from (`-` for stdin).
    pub source: String,
    /// The object, as JSON.
    pub object: Value,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("error parsing {file}: line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("error parsing {file}: {message}")]
    Other { file: String, message: String },
}

/// The documents of one file's text. Empty documents are skipped.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Value>, ManifestError> {
    let looks_like_json = source.ends_with(".json")
        || (text.trim_start().starts_with('{') && serde_json::from_str::<Value>(text).is_ok());
    let docs: Vec<Value> = if looks_like_json {
        let v: Value = serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
            file: source.to_string(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: json_message(&e),
        })?;
        vec![v]
    } else {
        serde_saphyr::from_multiple::<Value>(text).map_err(|e| yaml_error(source, &e))?
    };
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        match doc {
            Value::Null => {}
            Value::Object(_) => expand_list(doc, &mut out),
            other => {
                return Err(ManifestError::Other {
                    file: source.to_string(),
                    message: format!(
                        "document {} is not an object (got {}): want apiVersion, kind and metadata",
                        i + 1,
                        type_name(&other)
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the location is reported separately.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn yaml_error(source: &str, e: &serde_saphyr::Error) -> ManifestError {
    let message: String = serde_saphyr::DefaultMessageFormatter
        .format_message(e)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match e.location() {
        Some(loc) if loc.line() > 0 => ManifestError::Syntax {
            file: source.to_string(),
            line: loc.line(),
            column: loc.column(),
            message,
        },
        _ => ManifestError::Other {
            file: source.to_string(),
            message,
        },
    }
}

/// `kind: List` (and `*List` kinds with `items`) become their items.
fn expand_list(doc: Value, out: &mut Vec<Value>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.ends_with("List")
        && let Some(items) = doc.get("items").and_then(Value::as_array)
    {
        for item in items {
            expand_list(item.clone(), out);
        }
        return;
    }
    out.push(doc);
}

/// The served resource a manifest object is, from its `apiVersion` and `kind`; the error
/// lists what wisp serves.
pub fn resource_of(object: &Value) -> Result<&'static ResourceInfo, String> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(format!(
            "object has no {}: every document needs apiVersion and kind",
            if api_version.is_empty() {
                "apiVersion"
            } else {
                "kind"
            }
        ));
    }
    kinds::by_api_version_kind(api_version, kind).ok_or_else(|| {
        // An old Knative shape gets told how to write it in v1.
        if let Some(hint) = wisp_api::admission::legacy_hint(object) {
            return hint;
        }
        let served: Vec<String> = kinds::ALL
            .iter()
            .map(|r| format!("{} ({})", r.kind, r.api_version()))
            .collect();
        format!(
            "no matches for kind {kind:?} in version {api_version:?}: wisp serves {}",
            served.join(", ")
        )
    })
}

/// kubectl's name for an object in messages: `service.serving.knative.dev/hello`,
/// `namespace/team`.
pub fn object_ref(info: &ResourceInfo, name: &str) -> String {
    format!("{}/{name}", kind_ref(info))
}

/// `service.serving.knative.dev`, `configmap`.
pub fn kind_ref(info: &ResourceInfo) -> String {
    let kind = info.kind.to_ascii_lowercase();
    if info.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", info.group)
    }
}

/// Reads every `-f` argument: files, directories (their `.yaml`, `.yml` and `.json` files in
/// name order; with `recursive`, subdirectories too) and `-` for stdin.
pub fn read_manifests(paths: &[String], recursive: bool) -> anyhow::Result<Vec<Document>> {
    let mut docs = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("cannot read stdin: {e}"))?;
            push_docs("-", &text, &mut docs)?;
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("the path {p:?} cannot be read: {e}"))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(path, recursive, &mut files)?;
            if files.is_empty() {
                anyhow::bail!("no .yaml, .yml or .json files in the directory {p:?}");
            }
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
                push_docs(&f.display().to_string(), &text, &mut docs)?;
            }
        } else {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {p}: {e}"))?;
            push_docs(p, &text, &mut docs)?;
        }
    }
    Ok(docs)
}

fn push_docs(source: &str, text: &str, docs: &mut Vec<Document>) -> anyhow::Result<()> {
    for object in parse_documents(source, text)? {
        docs.push(Document {
            source: source.to_string(),
            object,
        });
    }
    Ok(())
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read the directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            if recursive {
                collect_dir(&e, recursive, out)?;
            }
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        {
            out.push(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml() {
        let text = "\
# a comment
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: \"42\"
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: a}
    data: {enabled: \"true\"}
  - apiVersion: v1
    kind: Namespace
    metadata: {name: team}
";
        let docs = parse_documents("hello.yaml", text).unwrap_or_default();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["metadata"]["name"], json!("hello"));
        let c = &docs[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["ports"][0]["containerPort"], json!(8080));
        assert_eq!(c["env"][0]["value"], json!("42"));
        assert_eq!(docs[1]["data"]["enabled"], json!("true"));
        assert_eq!(docs[2]["kind"], json!("Namespace"));
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n";
        match parse_documents("bad.yaml", text) {
            Err(ManifestError::Syntax {
                file,
                line,
                column,
                message,
            }) => {
                assert_eq!(file, "bad.yaml");
                assert!(line >= 4, "line {line}");
                assert!(column >= 1, "column {column}");
                assert!(!message.is_empty());
            }
            other => panic!("want a syntax error, got {other:?}"),
        }
        let text = "a: 1\n  b: 2\n";
        let err = parse_documents("x.yaml", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("error parsing x.yaml: line 2, column"),
            "{err}"
        );
    }

    #[test]
    fn json_manifests() {
        let docs = parse_documents(
            "a.json",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(docs.len(), 1);
        let err = parse_documents("a.json", "{\n  \"a\": ,\n}").err();
        assert!(
            matches!(err, Some(ManifestError::Syntax { line: 2, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn non_objects_are_refused() {
        let err = parse_documents("s.yaml", "- a\n- b\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "error parsing s.yaml: document 1 is not an object (got a list): want apiVersion, kind and metadata"
            )
        );
    }

    #[test]
    fn resources_by_api_version_and_kind() {
        let svc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service"});
        let info = resource_of(&svc).unwrap_or(&kinds::EVENTS);
        assert_eq!(info.plural, "services");
        assert_eq!(
            object_ref(info, "hello"),
            "service.serving.knative.dev/hello"
        );
        assert_eq!(object_ref(&kinds::NAMESPACES, "team"), "namespace/team");
        let err = resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"}))
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("no matches for kind \"Deployment\" in version \"apps/v1\": wisp serves Service (serving.knative.dev/v1), "), "{err}");
        let err = resource_of(&json!({"kind": "Service"}))
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            "object has no apiVersion: every document needs apiVersion and kind"
        );
    }
}
