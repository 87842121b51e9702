//! Server-side printing: `meta.k8s.io/v1` `Table` responses.
//!
//! kubectl asks for tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) and prints
//! whatever columns the server defines, exactly as it does for Knative's CRDs and their
//! `additionalPrinterColumns`. `wisp get` asks for the same tables, so the columns of every kind
//! are defined once, in `wisp_api::kinds`, and evaluated here with the small JSONPath subset those
//! definitions use: `.a.b`, `.a[0]`, and `.a[?(@.k=='v')].b`.

use serde_json::{Value, json};
use std::time::SystemTime;
use wisp_api::kinds::ResourceInfo;

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let p: Vec<&str> = part.split(';').map(str::trim).collect();
            p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io")
        })
    })
}

/// Evaluates a printer-column JSONPath against an object.
pub fn eval_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = object;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    rest = rest.strip_prefix('.').unwrap_or(rest);
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        rest = tail;
        if let Some(t) = rest.strip_prefix('[') {
            let close = t.find(']')?;
            let inner = &t[..close];
            rest = &t[close + 1..];
            cur = if let Some(key) = inner
                .strip_prefix('\'')
                .and_then(|k| k.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            {
                cur.get(key.replace("\\.", ".").as_str())?
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '\'' || c == '"');
                cur.as_array()?
                    .iter()
                    .find(|item| item.get(key.trim()).and_then(Value::as_str) == Some(want))?
            } else {
                cur.get(inner.parse::<usize>().ok()?)?
            };
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    Some(cur)
}

/// Kubernetes' human duration (`duration.HumanDuration`): 45s, 3m20s, 5h, 3d, 2y...
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        match d % 365 {
            0 => format!("{}y", d / 365),
            dd => format!("{}y{dd}d", d / 365),
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(ts: Option<&str>, now: SystemTime) -> String {
    ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .map(|t| human_duration(now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0)))
        .unwrap_or_else(|| "<unknown>".into())
}

fn cell(value: Option<&Value>, type_: &str, now: SystemTime) -> Value {
    match (value, type_) {
        (None | Some(Value::Null), _) => json!(""),
        (Some(Value::String(s)), "date") => json!(age(Some(s), now)),
        (Some(Value::Array(a)), _) => json!(
            a.iter()
                .map(|v| v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        (Some(v), _) => v.clone(),
    }
}

/// The column definitions of a kind: Name first, then the kind's printer columns.
fn columns(info: &ResourceInfo) -> Vec<Value> {
    let mut cols = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    cols.extend(info.printer_columns.iter().map(|c| {
        json!({
            "name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_ },
            "format": "", "priority": c.priority, "description": c.json_path,
        })
    }));
    cols
}

fn row(info: &ResourceInfo, object: &Value, now: SystemTime) -> Value {
    let mut cells = vec![
        object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(json!("")),
    ];
    cells.extend(
        info.printer_columns
            .iter()
            .map(|c| cell(eval_path(object, c.json_path), c.type_, now)),
    );
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        },
    })
}

/// A Table of `objects`; `with_columns` is false for the 2nd and later events of a watch.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: Option<u64>,
    with_columns: bool,
    now: SystemTime,
) -> Value {
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": if with_columns { columns(info) } else { Vec::new() },
        "rows": objects.iter().map(|o| row(info, o, now)).collect::<Vec<_>>(),
    });
    if let Some(rv) = resource_version {
        t["metadata"]["resourceVersion"] = json!(rv.to_string());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {
            "url": "http://x",
            "conditions": [
                {"type": "ConfigurationsReady", "status": "True"},
                {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"}
            ],
            "traffic": [{"percent": 100}]
        }});
        assert_eq!(eval_path(&o, ".status.url"), Some(&json!("http://x")));
        assert_eq!(
            eval_path(&o, ".status.conditions[?(@.type=='Ready')].status"),
            Some(&json!("Unknown"))
        );
        assert_eq!(
            eval_path(&o, ".status.conditions[?(@.type==\"Ready\")].reason"),
            Some(&json!("RevisionMissing"))
        );
        assert_eq!(
            eval_path(&o, ".status.traffic[0].percent"),
            Some(&json!(100))
        );
        let labelled =
            json!({"metadata": {"labels": {"serving.knative.dev/configuration": "hello"}}});
        assert_eq!(
            eval_path(
                &labelled,
                r".metadata.labels['serving\.knative\.dev/configuration']"
            ),
            Some(&json!("hello"))
        );
        assert_eq!(
            eval_path(&o, ".status.conditions[?(@.type=='Nope')].status"),
            None
        );
        assert_eq!(eval_path(&o, ".status.missing"), None);
        assert_eq!(eval_path(&o, "{.status.url}"), Some(&json!("http://x")));
    }

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn accept_header_detection() {
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
        assert!(!wants_table(None));
    }
}
