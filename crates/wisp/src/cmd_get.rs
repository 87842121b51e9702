//! `wisp get KIND [NAME...]`: kubectl's `get`. Tables come from the server (`Table` responses
//! carry the printer columns of each kind); `-o yaml|json|name` prints the objects.

use std::time::SystemTime;

use serde_json::Value;
use wisp_api::kinds::{self, ResourceInfo};

use crate::client::{ApiError, collection_path, object_path, query};
use crate::output::{self, OutputFormat};
use crate::table::{self, TableOptions};
use crate::{Ctx, Reported};

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to list: a plural, singular or short name (ksvc, rev, cfg, rt, ns, ...), or
    /// KIND/NAME.
    pub kind: String,
    /// Names of the objects (all of them if none).
    pub names: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, e.g. serving.knative.dev/service=hello.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Field selector, e.g. metadata.name=hello.
    #[arg(long = "field-selector", value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Do not print the header line of tables.
    #[arg(long)]
    pub no_headers: bool,
}

/// Resolves what the user typed (`ksvc`, `revisions`, `Service`, ...).
pub fn resolve_kind(kind: &str) -> anyhow::Result<&'static ResourceInfo> {
    kinds::by_name_or_short(kind).ok_or_else(|| {
        let served: Vec<String> = kinds::ALL
            .iter()
            .map(|r| match r.short_names.last() {
                Some(short) => format!("{} ({short})", r.plural),
                None => r.plural.to_string(),
            })
            .collect();
        anyhow::anyhow!(
            "the server doesn't have a resource type {kind:?}; wisp serves {}",
            served.join(", ")
        )
    })
}

/// `KIND/NAME` arguments, as kubectl accepts them.
pub fn split_kind(kind: &str, names: &[String]) -> (String, Vec<String>) {
    match kind.split_once('/') {
        Some((k, n)) => {
            let mut all = vec![n.to_string()];
            all.extend(names.iter().cloned());
            (k.to_string(), all)
        }
        None => (kind.to_string(), names.to_vec()),
    }
}

/// Where lists of `info` are read: the namespace, or everywhere with `-A` (and for
/// cluster-scoped kinds).
pub fn list_namespace<'a>(ctx: &'a Ctx, info: &ResourceInfo, all: bool) -> Option<&'a str> {
    (!all && info.namespaced).then_some(ctx.namespace.as_str())
}

/// kubectl's message when nothing matched.
pub fn nothing_found(ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

/// What `get` and the `list` commands share.
pub struct Listing<'a> {
    pub info: &'static ResourceInfo,
    pub names: &'a [String],
    pub output: Option<OutputFormat>,
    pub all_namespaces: bool,
    pub selector: Option<&'a str>,
    pub field_selector: Option<&'a str>,
    pub no_headers: bool,
    /// Printed (to stdout, as kn does) instead of kubectl's stderr note when nothing matched.
    pub empty_message: Option<&'a str>,
}

pub async fn run(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let (kind, names) = split_kind(&args.kind, &args.names);
    let info = resolve_kind(&kind)?;
    let listing = Listing {
        info,
        names: &names,
        output: args.output,
        all_namespaces: args.all_namespaces,
        selector: args.selector.as_deref(),
        field_selector: args.field_selector.as_deref(),
        no_headers: args.no_headers,
        empty_message: None,
    };
    list(ctx, &listing).await
}

/// Prints the objects of a listing as a table or in the `-o` format.
pub async fn list(ctx: &Ctx, l: &Listing<'_>) -> anyhow::Result<()> {
    let ns = list_namespace(ctx, l.info, l.all_namespaces);
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = l.selector {
        params.push(("labelSelector", s));
    }
    if let Some(s) = l.field_selector {
        params.push(("fieldSelector", s));
    }
    let as_table = matches!(l.output, None | Some(OutputFormat::Wide));
    // Named objects live in one namespace; lists may span all.
    let object_ns = l.info.namespaced.then_some(ctx.namespace.as_str());
    let mut found: Vec<Value> = Vec::new();
    let mut failed = false;
    if l.names.is_empty() {
        let path = format!("{}{}", collection_path(l.info, ns), query(&params));
        if as_table {
            found.push(ctx.client.get_table(&path).await?);
        } else {
            let list = ctx.client.get(&path).await?;
            found = list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
        }
    } else {
        for name in l.names {
            let path = object_path(l.info, object_ns, name);
            let got = if as_table {
                ctx.client.get_table(&path).await
            } else {
                ctx.client.get(&path).await
            };
            match got {
                Ok(v) => found.push(v),
                Err(e @ ApiError::Status(_)) => {
                    eprintln!("{e}");
                    failed = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let text = if as_table {
        if table::row_count(&found) == 0 {
            if !failed {
                match l.empty_message {
                    Some(m) => println!("{m}"),
                    None => eprintln!("{}", nothing_found(ns)),
                }
            }
            String::new()
        } else {
            let opts = TableOptions {
                wide: l.output == Some(OutputFormat::Wide),
                no_headers: l.no_headers,
                with_namespace: l.all_namespaces && l.info.namespaced && l.names.is_empty(),
                now: SystemTime::now(),
            };
            table::render_table(&found, &opts)
        }
    } else {
        let single = l.names.len() == 1;
        if found.is_empty() && (single || l.output == Some(OutputFormat::Name)) {
            String::new()
        } else {
            output::render(
                found,
                l.info,
                l.output.unwrap_or(OutputFormat::Yaml),
                single,
            )
        }
    };
    print!("{text}");
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(
            split_kind("ksvc/hello", &["b".to_string()]),
            (
                "ksvc".to_string(),
                vec!["hello".to_string(), "b".to_string()]
            )
        );
        assert_eq!(split_kind("rev", &[]), ("rev".to_string(), vec![]));
        assert_eq!(
            resolve_kind("kservice").map(|i| i.plural).ok(),
            Some("services")
        );
        assert_eq!(
            resolve_kind("config").map(|i| i.plural).ok(),
            Some("configurations")
        );
        let err = resolve_kind("pods")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(
                "the server doesn't have a resource type \"pods\"; wisp serves services (ksvc)"
            ),
            "{err}"
        );
        assert_eq!(
            nothing_found(Some("default")),
            "No resources found in default namespace."
        );
        assert_eq!(nothing_found(None), "No resources found");
    }
}
