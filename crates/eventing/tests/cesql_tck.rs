//! The CloudEvents SQL v1 conformance kit (cloudevents/spec `cesql/cesql_tck`, copied with
//! its provenance into `tests/cesql_tck/`): every case of every file must pass.
//!
//! A case has an `expression`, the expected `result` and optionally the expected `error`
//! kind (`parse` means the expression must not parse). Its input event is `event` when given,
//! otherwise any valid event; `eventOverrides` then sets attributes on top (the kit's
//! README). Attribute values keep their YAML type, so `myint: 10` is a CESQL Integer and
//! `mybool: true` a Boolean, as the kit expects; strings stay strings.
//!
//! No case is skipped: `SKIPPED` is empty, and any name listed there must exist.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value as Yaml;
use wisp_eventing::cesql::{Expression, Value};

/// (file name, case name, reason) of cases deliberately not run.
const SKIPPED: &[(&str, &str, &str)] = &[];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    #[serde(default)]
    result: Option<Yaml>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    event: Option<BTreeMap<String, Yaml>>,
    #[serde(default)]
    event_overrides: Option<BTreeMap<String, Yaml>>,
}

fn to_value(y: &Yaml) -> Result<Value, String> {
    match y {
        Yaml::Bool(b) => Ok(Value::Boolean(*b)),
        Yaml::String(s) => Ok(Value::String(s.clone())),
        Yaml::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Integer)
            .ok_or_else(|| format!("{n} is not a 32-bit integer")),
        other => Err(format!("{other} is not a CESQL value")),
    }
}

/// The event a case runs against: `event`, or a minimal valid one, then `eventOverrides`.
fn event_of(case: &Case) -> Result<BTreeMap<String, Value>, String> {
    let mut event = BTreeMap::new();
    match &case.event {
        Some(attrs) => {
            for (name, v) in attrs {
                if name != "data" && name != "data_base64" {
                    event.insert(name.clone(), to_value(v)?);
                }
            }
        }
        None => {
            for (name, v) in [
                ("specversion", "1.0"),
                ("id", "tck-0001"),
                ("source", "https://example.com/tck"),
                ("type", "com.example.tck"),
            ] {
                event.insert(name.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    for (name, v) in case.event_overrides.iter().flatten() {
        event.insert(name.clone(), to_value(v)?);
    }
    Ok(event)
}

/// `None` when the case passes, else what went wrong.
fn run(case: &Case) -> Option<String> {
    let parsed = Expression::parse(&case.expression);
    if case.error.as_deref() == Some("parse") {
        return match parsed {
            Err(_) => None,
            Ok(_) => Some("parsed, but a parse error was expected".to_owned()),
        };
    }
    let expr = match parsed {
        Ok(expr) => expr,
        Err(e) => return Some(format!("parse error: {e}")),
    };
    let event = match event_of(case) {
        Ok(event) => event,
        Err(e) => return Some(format!("bad test event: {e}")),
    };
    let (value, error) = expr.evaluate(&|name| event.get(name).cloned());
    let want = match case.result.as_ref().map(to_value) {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Some(format!("bad expected result: {e}")),
        None => return Some("the case has no result".to_owned()),
    };
    let got_kind = error.as_ref().map(|e| e.kind.as_str());
    if value == want && got_kind == case.error.as_deref() {
        None
    } else {
        Some(format!(
            "got {value:?} with error {:?}, want {want:?} with error {:?}",
            error.map(|e| e.to_string()),
            case.error
        ))
    }
}

#[test]
fn cesql_conformance_kit() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cesql_tck");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 18,
        "expected the 18 TCK files in {}, found {}",
        dir.display(),
        files.len()
    );

    let (mut total, mut passed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut skips_seen = Vec::new();
    for path in &files {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("?");
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let suite: Suite = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!suite.tests.is_empty(), "{file}: no tests");
        for case in &suite.tests {
            total += 1;
            if let Some((.., reason)) = SKIPPED
                .iter()
                .find(|(f, c, _)| *f == file && *c == case.name)
            {
                skipped += 1;
                skips_seen.push((file.to_owned(), case.name.clone()));
                println!("SKIPPED {file} / {}: {reason}", case.name);
                continue;
            }
            match run(case) {
                None => passed += 1,
                Some(why) => failures.push(format!(
                    "{file} / {} / {}: `{}`: {why}",
                    suite.name, case.name, case.expression
                )),
            }
        }
    }
    for (file, name, _) in SKIPPED {
        assert!(
            skips_seen.iter().any(|(f, c)| f == file && c == name),
            "SKIPPED names a case that does not exist: {file} / {name}"
        );
    }
    println!(
        "CESQL TCK: {passed}/{total} cases passed, {skipped} skipped, {} failed",
        failures.len()
    );
    for failure in &failures {
        println!("FAILED {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} CESQL TCK cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
