//! `wisp apply -f FILE`: kubectl's client-side apply. Each object is created when absent,
//! else patched with the three-way merge patch of `apply_patch`; the output lines are
//! kubectl's (`service.serving.knative.dev/hello created|configured|unchanged`).

use serde_json::{Value, json};

use crate::apply_patch::{self, LAST_APPLIED};
use crate::client::{ApiError, object_path};
use crate::manifest::{self, Document, object_ref};
use crate::{Ctx, Reported};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifest files, directories (their .yaml/.yml/.json files) or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,
    /// With -f DIR: also the manifests of subdirectories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Fills in the namespace as kubectl does, refusing a conflict with an explicit `-n`.
pub fn set_namespace(
    obj: &mut Value,
    namespaced: bool,
    namespace: &str,
    given: bool,
) -> Result<(), String> {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err("object has no metadata".to_string());
    };
    if !namespaced {
        return Ok(());
    }
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => {
            if given && ns != namespace {
                return Err(format!(
                    "the namespace from the provided object {ns:?} does not match the namespace {namespace:?}. You must pass '--namespace={ns}' to perform this operation."
                ));
            }
        }
        _ => {
            meta.insert("namespace".into(), json!(namespace));
        }
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<()> {
    let docs = manifest::read_manifests(&args.files, args.recursive)?;
    if docs.is_empty() {
        anyhow::bail!("no objects passed to apply");
    }
    let mut failed = false;
    for doc in docs {
        match apply_one(ctx, &doc).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                match e.downcast_ref::<ApiError>() {
                    Some(api @ ApiError::Status(_)) => eprintln!("{api}"),
                    Some(api @ ApiError::Unreachable { .. }) => {
                        return Err(anyhow::anyhow!("{api}"));
                    }
                    _ => eprintln!("Error: {e:#}"),
                }
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

async fn apply_one(ctx: &Ctx, doc: &Document) -> anyhow::Result<String> {
    let info =
        manifest::resource_of(&doc.object).map_err(|e| anyhow::anyhow!("{}: {e}", doc.source))?;
    let mut obj = doc.object.clone();
    set_namespace(
        &mut obj,
        info.namespaced,
        &ctx.namespace,
        ctx.namespace_given,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", doc.source))?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let generate = obj.pointer("/metadata/generateName").is_some();
        anyhow::bail!(
            "{}: a {} {}",
            doc.source,
            info.kind,
            if generate {
                "with generateName cannot be applied (use a name)"
            } else {
                "must have metadata.name"
            }
        );
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let path = object_path(info, ns.as_deref(), &name);
    let modified = apply_patch::with_last_applied(&obj);
    // kubectl retries a patch that lost a race a few times.
    for _ in 0..5 {
        let current = match ctx.client.get(&path).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => {
                let collection = path.rsplit_once('/').map(|(c, _)| c).unwrap_or(&path);
                match ctx.client.create(collection, &modified).await {
                    Ok(_) => {
                        return Ok(format!(
                            "{} {}",
                            object_ref(info, &name),
                            Outcome::Created.as_str()
                        ));
                    }
                    // Created by someone else meanwhile: patch it instead.
                    Err(e) if e.is_already_exists() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let original = apply_patch::original_of(&current)
            .map_err(|e| anyhow::anyhow!("{}: {e}", object_ref(info, &name)))?;
        if original.is_none() {
            eprintln!(
                "Warning: resource {} is missing the {LAST_APPLIED} annotation which is required by wisp apply (and kubectl apply). The missing annotation will be patched automatically.",
                object_ref(info, &name)
            );
        }
        let patch = apply_patch::three_way_merge_patch(original.as_ref(), &modified, &current)
            .map_err(|e| anyhow::anyhow!("{}: {e}", object_ref(info, &name)))?;
        if apply_patch::is_empty_patch(&patch) {
            return Ok(format!(
                "{} {}",
                object_ref(info, &name),
                Outcome::Unchanged.as_str()
            ));
        }
        match ctx.client.merge_patch(&path, &patch).await {
            Ok(_) => {
                return Ok(format!(
                    "{} {}",
                    object_ref(info, &name),
                    Outcome::Configured.as_str()
                ));
            }
            Err(e) if e.is_conflict() || e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "{}: the object kept changing while it was applied; try again",
        object_ref(info, &name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_like_kubectl() {
        let mut obj = json!({"metadata": {"name": "a"}});
        assert_eq!(set_namespace(&mut obj, true, "default", false), Ok(()));
        assert_eq!(obj["metadata"]["namespace"], json!("default"));

        let mut obj = json!({"metadata": {"name": "a", "namespace": "team"}});
        assert_eq!(set_namespace(&mut obj, true, "default", false), Ok(()));
        assert_eq!(obj["metadata"]["namespace"], json!("team"));
        assert_eq!(
            set_namespace(&mut obj, true, "default", true),
            Err("the namespace from the provided object \"team\" does not match the namespace \"default\". You must pass '--namespace=team' to perform this operation.".into())
        );

        let mut obj = json!({"metadata": {"name": "team"}});
        assert_eq!(set_namespace(&mut obj, false, "default", true), Ok(()));
        assert!(obj["metadata"].get("namespace").is_none());
        assert!(set_namespace(&mut json!({"kind": "X"}), true, "default", false).is_err());
    }
}
