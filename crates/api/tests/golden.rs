//! Golden corpus: real Knative manifests in `tests/golden/NAME.yaml` go through `admit` and
//! must produce exactly `NAME.out.json` (the stored object) or `NAME.err` (the refusal, with
//! field paths). `NAME.old.yaml`, when present, is admitted first and `NAME.yaml` is then an
//! update of it.
//!
//! Regenerate with `WISP_REGEN_GOLDEN=1 cargo test -p wisp-api --test golden`, then read the
//! diff: the files are the specification.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wisp_api::admission::{AdmissionContext, AdmissionError, Operation, admit};
use wisp_api::kinds::{self, ResourceInfo};

const USER: &str = "golden@example.com";

fn load(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_saphyr::from_str::<Value>(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn info_for(v: &Value) -> Result<&'static ResourceInfo, String> {
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    kinds::by_api_version_kind(api, kind)
        .or_else(|| kinds::by_kind(group, kind))
        .ok_or_else(|| format!("no resource for {api} {kind}"))
}

fn render_err(e: &AdmissionError) -> String {
    match e {
        AdmissionError::BadRequest(m) => format!("BadRequest (400)\n{m}\n"),
        AdmissionError::Invalid(errs) => {
            let mut out = format!("Invalid (422)\n{errs}\ncauses:\n");
            for c in errs.iter() {
                out.push_str(&format!(
                    "  - reason: {}\n    field: {}\n    message: {}\n",
                    c.reason.as_str(),
                    c.path,
                    c.cause_message()
                ));
            }
            out
        }
    }
}

/// Admits one case; returns (extension, content) of what the case produced.
fn run_case(input: &Path) -> Result<(&'static str, String), String> {
    let new = load(input)?;
    let info = info_for(&new)?;
    let ctx = AdmissionContext::new(USER);
    let old_path = input.with_extension("old.yaml");
    let result = if old_path.exists() {
        let old = load(&old_path)?;
        let stored = admit(info, Operation::Create, None, old, &ctx)
            .map_err(|e| format!("{}: the old object must admit: {e}", old_path.display()))?;
        admit(
            info,
            Operation::Update,
            Some(&stored),
            new,
            &AdmissionContext::new("updater@example.com"),
        )
    } else {
        admit(info, Operation::Create, None, new, &ctx)
    };
    Ok(match result {
        Ok(v) => (
            "out.json",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n",
        ),
        Err(e) => ("err", render_err(&e)),
    })
}

#[test]
fn golden_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let regen = std::env::var_os("WISP_REGEN_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.ends_with(".yaml") && !name.ends_with(".old.yaml")
    });
    inputs.sort();
    assert!(
        inputs.len() >= 20,
        "golden corpus missing from {}",
        dir.display()
    );

    let mut failures = Vec::new();
    for input in &inputs {
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let (ext, got) = match run_case(input) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let want_path = dir.join(format!("{stem}.{ext}"));
        let other = dir.join(format!(
            "{stem}.{}",
            if ext == "err" { "out.json" } else { "err" }
        ));
        if regen {
            let _ = fs::remove_file(&other);
            if let Err(e) = fs::write(&want_path, &got) {
                failures.push(format!("{}: {e}", want_path.display()));
            }
            continue;
        }
        if other.exists() {
            failures.push(format!(
                "{stem}: expected {}, got {ext}:\n{got}",
                other.display()
            ));
            continue;
        }
        match fs::read_to_string(&want_path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{stem}.{ext} differs\n--- want\n{want}\n--- got\n{got}"
            )),
            Err(_) => failures.push(format!(
                "{stem}: no {} (run with WISP_REGEN_GOLDEN=1); got:\n{got}",
                want_path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
