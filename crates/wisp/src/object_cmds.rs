//! The verbs the Eventing command families (`broker`, `trigger`, `source ...`, `channel`,
//! `subscription`) share: create, a read-modify-write update with optimistic concurrency, list
//! as kn's client-side table or `-o yaml|json|name`, describe `-o`, and delete.
//!
//! kn prints its own columns for these kinds (NAME, BROKER, SINK, AGE, CONDITIONS, READY,
//! REASON...), not the CRDs' printer columns, so tables are built here from typed objects by
//! each family's pure row function; `wisp get` keeps showing the server's columns.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wisp_api::kinds::ResourceInfo;

use crate::client::{ApiError, collection_path, object_path};
use crate::output::{self, OutputFormat};
use crate::table::render_rows;
use crate::{Ctx, Reported};

/// The list flags every family takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Output format (the table without -o).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Do not print the header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// `describe -o` for kinds without an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DescribeOutput {
    Yaml,
    Json,
}

/// `describe -o` for addressable kinds (brokers, channels): `url` prints only the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressDescribeOutput {
    Yaml,
    Json,
    /// Only the URL.
    Url,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DescribeArgs {
    /// Name of the object.
    pub name: String,
    /// More output: full labels and annotations, condition messages.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DescribeOutput>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AddressDescribeArgs {
    /// Name of the object.
    pub name: String,
    /// More output: full labels and annotations, condition messages.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<AddressDescribeOutput>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    /// Names of the objects.
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn to_value<T: Serialize>(obj: &T, what: &str) -> anyhow::Result<Value> {
    serde_json::to_value(obj).map_err(|e| anyhow::anyhow!("cannot encode the {what}: {e}"))
}

pub fn from_value<T: DeserializeOwned>(v: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("the server sent a {what} wisp cannot read: {e}"))
}

/// POSTs a new object into the current namespace.
pub async fn create<T: Serialize>(
    ctx: &Ctx,
    info: &ResourceInfo,
    obj: &T,
) -> anyhow::Result<Value> {
    let body = to_value(obj, info.singular)?;
    Ok(ctx
        .client
        .create(&collection_path(info, Some(&ctx.namespace)), &body)
        .await?)
}

/// kn's retry for conflicts: 5 attempts, 20 ms growing by half each time.
const RETRIES: u32 = 5;

/// Read-modify-write: GETs the object, lets `edit` change it, PUTs it back with the
/// resourceVersion it was read at, and starts over on a conflict. Returns whether anything
/// changed (an edit that changes nothing writes nothing).
pub async fn update<T, F>(
    ctx: &Ctx,
    info: &ResourceInfo,
    name: &str,
    mut edit: F,
) -> anyhow::Result<bool>
where
    T: Serialize + DeserializeOwned + PartialEq + Clone,
    F: FnMut(&mut T) -> anyhow::Result<()>,
{
    let path = object_path(info, Some(&ctx.namespace), name);
    for attempt in 0..RETRIES {
        let current: T = from_value(ctx.client.get(&path).await?, info.singular)?;
        let mut next = current.clone();
        edit(&mut next)?;
        if next == current {
            return Ok(false);
        }
        match ctx
            .client
            .replace(&path, &to_value(&next, info.singular)?)
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.is_conflict() && attempt + 1 < RETRIES => {
                let ms = 20.0 * 1.5f64.powi(i32::try_from(attempt).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "{} '{name}' kept changing while it was updated; try again",
        info.singular
    )
}

/// The objects of the current namespace, or of all with `-A`.
pub async fn list_items(
    ctx: &Ctx,
    info: &ResourceInfo,
    all_namespaces: bool,
) -> anyhow::Result<Vec<Value>> {
    let ns = (!all_namespaces).then_some(ctx.namespace.as_str());
    let list = ctx.client.get(&collection_path(info, ns)).await?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// kn's order: by name, and with `-A` the `default` namespace first, then by namespace.
pub fn sort_items(items: &mut [Value]) {
    items.sort_by(|a, b| {
        let (na, nb) = (meta_str(a, "namespace"), meta_str(b, "namespace"));
        (na != "default")
            .cmp(&(nb != "default"))
            .then_with(|| na.cmp(nb))
            .then_with(|| meta_str(a, "name").cmp(meta_str(b, "name")))
    });
}

/// A kn list table: `header` and one row per object, a NAMESPACE column first with `-A`.
pub fn table(
    header: &[&str],
    rows: Vec<(String, Vec<String>)>,
    with_namespace: bool,
    no_headers: bool,
) -> String {
    let mut all: Vec<Vec<String>> = Vec::new();
    if !no_headers {
        let mut h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        if with_namespace {
            h.insert(0, "NAMESPACE".into());
        }
        all.push(h);
    }
    for (ns, mut row) in rows {
        if with_namespace {
            row.insert(0, ns);
        }
        all.push(row);
    }
    render_rows(&all)
}

/// A kn list: `-o yaml|json|name` prints the objects; otherwise `empty` when there are none,
/// or the table whose rows `row` builds from each object.
pub async fn list<T: DeserializeOwned>(
    ctx: &Ctx,
    info: &'static ResourceInfo,
    args: &ListArgs,
    empty: &str,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    let mut items = list_items(ctx, info, args.all_namespaces).await?;
    sort_items(&mut items);
    if let Some(format) = args.output.filter(|f| *f != OutputFormat::Wide) {
        print!("{}", output::render(items, info, format, false));
        return Ok(());
    }
    if items.is_empty() {
        println!("{empty}");
        return Ok(());
    }
    let mut rows = Vec::new();
    for item in items {
        let ns = meta_str(&item, "namespace").to_string();
        let obj: T = from_value(item, info.singular)?;
        rows.push((ns, row(&obj)));
    }
    print!(
        "{}",
        table(header, rows, args.all_namespaces, args.no_headers)
    );
    Ok(())
}

/// `describe -o yaml|json`; `None` when the summary is wanted.
pub fn describe_output(
    json: &Value,
    info: &ResourceInfo,
    output: Option<DescribeOutput>,
) -> Option<String> {
    let format = match output? {
        DescribeOutput::Yaml => OutputFormat::Yaml,
        DescribeOutput::Json => OutputFormat::Json,
    };
    Some(output::render(vec![json.clone()], info, format, true))
}

/// `describe -o yaml|json|url` of an addressable object (`status.address.url`).
pub fn address_describe_output(
    json: &Value,
    info: &ResourceInfo,
    output: Option<AddressDescribeOutput>,
) -> Option<String> {
    match output? {
        AddressDescribeOutput::Url => Some(format!(
            "{}\n",
            json.pointer("/status/address/url")
                .and_then(Value::as_str)
                .unwrap_or("")
        )),
        AddressDescribeOutput::Yaml => describe_output(json, info, Some(DescribeOutput::Yaml)),
        AddressDescribeOutput::Json => describe_output(json, info, Some(DescribeOutput::Json)),
    }
}

/// GETs an object for `describe` as JSON.
pub async fn get_json(ctx: &Ctx, info: &ResourceInfo, name: &str) -> anyhow::Result<Value> {
    Ok(ctx
        .client
        .get(&object_path(info, Some(&ctx.namespace), name))
        .await?)
}

/// Deletes each named object, printing `done(name)` for each; server refusals are printed
/// and the command fails after trying every name.
pub async fn delete(
    ctx: &Ctx,
    info: &ResourceInfo,
    names: &[String],
    done: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let mut failed = false;
    for name in names {
        match ctx
            .client
            .delete(&object_path(info, Some(&ctx.namespace), name))
            .await
        {
            Ok(_) => println!("{}", done(name)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wisp_api::kinds;

    #[test]
    fn sorts_like_kn() {
        let item = |ns: &str, name: &str| json!({"metadata": {"namespace": ns, "name": name}});
        let mut items = vec![
            item("b", "x"),
            item("default", "z"),
            item("a", "y"),
            item("default", "a"),
        ];
        sort_items(&mut items);
        let got: Vec<String> = items
            .iter()
            .map(|i| format!("{}/{}", meta_str(i, "namespace"), meta_str(i, "name")))
            .collect();
        assert_eq!(got, ["default/a", "default/z", "a/y", "b/x"]);
    }

    #[test]
    fn tables_with_and_without_namespaces() {
        let rows = || {
            vec![(
                "team".to_string(),
                vec!["t1".to_string(), "default".to_string()],
            )]
        };
        assert_eq!(
            table(&["NAME", "BROKER"], rows(), false, false),
            "NAME   BROKER\nt1     default\n"
        );
        assert_eq!(
            table(&["NAME", "BROKER"], rows(), true, true),
            "team   t1    default\n"
        );
    }

    #[test]
    fn describe_outputs() {
        let b = json!({"metadata": {"name": "b"}, "status": {"address": {"url": "http://x/default/b"}}});
        assert_eq!(
            address_describe_output(&b, &kinds::BROKERS, Some(AddressDescribeOutput::Url))
                .as_deref(),
            Some("http://x/default/b\n")
        );
        let yaml = address_describe_output(&b, &kinds::BROKERS, Some(AddressDescribeOutput::Yaml))
            .unwrap_or_default();
        assert!(yaml.contains("kind: Broker"), "{yaml}");
        assert_eq!(describe_output(&b, &kinds::BROKERS, None), None);
    }
}
