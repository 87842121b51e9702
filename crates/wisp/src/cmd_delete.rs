//! `wisp delete KIND NAME...` and `wisp delete -f FILE`: kubectl's `delete`. Each object is
//! deleted on its own; failures are reported and the command exits non-zero at the end.

use serde_json::Value;
use wisp_api::kinds::ResourceInfo;

use crate::client::{ApiError, collection_path, object_path, query};
use crate::cmd_get::{list_namespace, resolve_kind};
use crate::manifest::{self, kind_ref};
use crate::{Ctx, Reported};

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Kind of the objects (ksvc, rev, ns, ...) or KIND/NAME.
    pub kind: Option<String>,
    /// Names of the objects.
    pub names: Vec<String>,
    /// Manifest files (or directories, or - for stdin) whose objects to delete.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
    /// With -f DIR: also the manifests of subdirectories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Succeed when an object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Delete every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Delete the objects matching a label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// With --all or -l: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// kubectl's line for a deleted object: `service.serving.knative.dev "hello" deleted`.
pub fn deleted_line(info: &ResourceInfo, name: &str) -> String {
    format!("{} {name:?} deleted", kind_ref(info))
}

/// One object to delete.
struct Target {
    info: &'static ResourceInfo,
    namespace: Option<String>,
    name: String,
}

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let targets = targets(ctx, &args).await?;
    let mut failed = false;
    for t in targets {
        let path = object_path(t.info, t.namespace.as_deref(), &t.name);
        match ctx.client.delete(&path).await {
            Ok(_) => println!("{}", deleted_line(t.info, &t.name)),
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ ApiError::Status(_)) => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

async fn targets(ctx: &Ctx, args: &DeleteArgs) -> anyhow::Result<Vec<Target>> {
    if !args.files.is_empty() {
        if args.kind.is_some() {
            anyhow::bail!("give either -f FILE or KIND NAME, not both");
        }
        let mut out = Vec::new();
        for doc in manifest::read_manifests(&args.files, args.recursive)? {
            let info = manifest::resource_of(&doc.object)
                .map_err(|e| anyhow::anyhow!("{}: {e}", doc.source))?;
            let name = doc
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                anyhow::bail!(
                    "{}: a {} without metadata.name cannot be deleted",
                    doc.source,
                    info.kind
                );
            }
            let ns = doc
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str);
            let namespace = info
                .namespaced
                .then(|| ns.unwrap_or(&ctx.namespace).to_string());
            out.push(Target {
                info,
                namespace,
                name: name.to_string(),
            });
        }
        return Ok(out);
    }
    let Some(kind) = &args.kind else {
        anyhow::bail!("you must provide one or more resources by kind and name, or -f FILE");
    };
    let (kind, mut names) = match kind.split_once('/') {
        Some((k, n)) => (k.to_string(), vec![n.to_string()]),
        None => (kind.clone(), Vec::new()),
    };
    names.extend(args.names.iter().cloned());
    let info = resolve_kind(&kind)?;
    let namespace = info.namespaced.then(|| ctx.namespace.clone());
    if args.all || args.selector.is_some() {
        if !names.is_empty() {
            anyhow::bail!("names cannot be given together with --all or a label selector");
        }
        let ns = list_namespace(ctx, info, args.all_namespaces);
        let params: Vec<(&str, &str)> = args
            .selector
            .as_deref()
            .map(|s| ("labelSelector", s))
            .into_iter()
            .collect();
        let list = ctx
            .client
            .get(&format!("{}{}", collection_path(info, ns), query(&params)))
            .await?;
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            eprintln!("{}", crate::cmd_get::nothing_found(ns));
        }
        return Ok(items
            .iter()
            .map(|o| Target {
                info,
                namespace: o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                name: o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
            .collect());
    }
    if names.is_empty() {
        anyhow::bail!("resource(s) were provided, but no name was specified");
    }
    Ok(names
        .into_iter()
        .map(|name| Target {
            info,
            namespace: namespace.clone(),
            name,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::kinds;

    #[test]
    fn lines_like_kubectl() {
        assert_eq!(
            deleted_line(&kinds::SERVICES, "hello"),
            "service.serving.knative.dev \"hello\" deleted"
        );
        assert_eq!(
            deleted_line(&kinds::NAMESPACES, "team"),
            "namespace \"team\" deleted"
        );
    }
}
