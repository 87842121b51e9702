//! `wisp revision list|describe|delete`: kn's `revision` commands. The list's TRAFFIC and
//! TAGS columns come from each owning Service's `status.traffic`, as in kn.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;
use wisp_api::kinds;
use wisp_api::meta::Condition;
use wisp_api::serving::{Revision, Service, keys};

use crate::client::{ApiError, collection_path, object_path, query};
use crate::describe;
use crate::output::{self, OutputFormat};
use crate::table::render_rows;
use crate::{Ctx, Reported, age};

#[derive(Debug, clap::Subcommand)]
pub enum RevisionCommand {
    /// List revisions (of one service with -s).
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a revision.
    Describe(DescribeArgs),
    /// Delete revisions.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this revision.
    pub name: Option<String>,
    /// Only the revisions of this service.
    #[arg(short = 's', long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Do not print the header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// `describe -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DescribeOutput {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Name of the revision.
    pub name: String,
    /// More output: the owning service's traffic and tags, full labels, condition messages.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DescribeOutput>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Names of the revisions.
    pub names: Vec<String>,
}

pub async fn run(ctx: &Ctx, cmd: RevisionCommand) -> anyhow::Result<()> {
    match cmd {
        RevisionCommand::List(args) => list(ctx, args).await,
        RevisionCommand::Describe(args) => describe_cmd(ctx, args).await,
        RevisionCommand::Delete(args) => delete(ctx, args).await,
    }
}

/// kn truncates list cells to 50 characters.
fn trunc(s: &str) -> String {
    if s.chars().count() <= 50 {
        s.to_string()
    } else {
        format!("{} ...", s.chars().take(46).collect::<String>())
    }
}

fn ready_condition(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// kn's `ConditionsValue`: `2 OK / 4`.
pub fn conditions_value(conditions: &[Condition]) -> String {
    let ok = conditions.iter().filter(|c| c.is_true()).count();
    format!("{ok} OK / {}", conditions.len())
}

/// kn's `NonReadyConditionReason`.
pub fn non_ready_reason(conditions: &[Condition]) -> String {
    match ready_condition(conditions) {
        None => "<unknown>".to_string(),
        Some(c) if c.is_true() => String::new(),
        Some(c) if !c.message.is_empty() => format!("{} : {}", c.reason, c.message),
        Some(c) => c.reason.clone(),
    }
}

fn generation_of(r: &Revision) -> Option<i64> {
    r.metadata
        .labels
        .get(keys::CONFIGURATION_GENERATION_LABEL)
        .and_then(|g| g.parse().ok())
}

fn service_of(r: &Revision) -> &str {
    r.metadata
        .labels
        .get(keys::SERVICE_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

/// kn's order: namespace, service, newest generation first, name.
pub fn sort_revisions(revs: &mut [Revision]) {
    revs.sort_by(|a, b| {
        a.metadata
            .namespace
            .cmp(&b.metadata.namespace)
            .then_with(|| service_of(a).cmp(service_of(b)))
            .then_with(|| match (generation_of(a), generation_of(b)) {
                (Some(x), Some(y)) if x != y => y.cmp(&x),
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// kn's revision table: NAME SERVICE TRAFFIC TAGS GENERATION AGE CONDITIONS READY REASON
/// (NAMESPACE first with `-A`). `services` maps (namespace, name) to the owning service.
pub fn revision_rows(
    revisions: &[Revision],
    services: &BTreeMap<(String, String), Service>,
    with_namespace: bool,
    no_headers: bool,
    now: SystemTime,
) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if !no_headers {
        let mut header: Vec<String> = [
            "NAME",
            "SERVICE",
            "TRAFFIC",
            "TAGS",
            "GENERATION",
            "AGE",
            "CONDITIONS",
            "READY",
            "REASON",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if with_namespace {
            header.insert(0, "NAMESPACE".into());
        }
        rows.push(header);
    }
    for r in revisions {
        let service = service_of(r);
        let (percent, tags) = services
            .get(&(r.metadata.namespace.clone(), service.to_string()))
            .map(|s| describe::traffic_and_tags(&r.metadata.name, s))
            .unwrap_or((0, Vec::new()));
        let conditions = &r.status.conditions;
        let mut row = vec![
            trunc(&r.metadata.name),
            trunc(service),
            if percent != 0 {
                format!("{percent}%")
            } else {
                String::new()
            },
            trunc(&tags.join(",")),
            trunc(
                r.metadata
                    .labels
                    .get(keys::CONFIGURATION_GENERATION_LABEL)
                    .map(String::as_str)
                    .unwrap_or(""),
            ),
            age::table_age(r.metadata.creation_timestamp.as_deref(), now),
            conditions_value(conditions),
            ready_condition(conditions)
                .map(|c| c.status.to_string())
                .unwrap_or_else(|| "<unknown>".into()),
            trunc(&non_ready_reason(conditions)),
        ];
        if with_namespace {
            row.insert(0, r.metadata.namespace.clone());
        }
        rows.push(row);
    }
    rows
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("the server sent a {what} wisp cannot read: {e}"))
}

async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let ns = (!args.all_namespaces).then_some(ctx.namespace.as_str());
    if let Some(service) = &args.service {
        // Like kn: the service must exist.
        let ns = ns.unwrap_or(&ctx.namespace);
        ctx.client
            .get(&object_path(&kinds::SERVICES, Some(ns), service))
            .await?;
    }
    let selector = args
        .service
        .as_ref()
        .map(|s| format!("{}={s}", keys::SERVICE_LABEL));
    let field = args.name.as_ref().map(|n| format!("metadata.name={n}"));
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = &selector {
        params.push(("labelSelector", s));
    }
    if let Some(f) = &field {
        params.push(("fieldSelector", f));
    }
    let path = format!(
        "{}{}",
        collection_path(&kinds::REVISIONS, ns),
        query(&params)
    );
    let list = ctx.client.get(&path).await?;
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(format) = args.output.filter(|f| *f != OutputFormat::Wide) {
        print!(
            "{}",
            output::render(items, &kinds::REVISIONS, format, false)
        );
        return Ok(());
    }
    if items.is_empty() {
        println!("No revisions found.");
        return Ok(());
    }
    let mut revisions: Vec<Revision> = from_value(Value::Array(items), "revision list")?;
    sort_revisions(&mut revisions);
    let mut services = BTreeMap::new();
    for r in &revisions {
        let key = (r.metadata.namespace.clone(), service_of(r).to_string());
        if key.1.is_empty() || services.contains_key(&key) {
            continue;
        }
        match ctx
            .client
            .get(&object_path(&kinds::SERVICES, Some(&key.0), &key.1))
            .await
        {
            Ok(v) => {
                services.insert(key, from_value::<Service>(v, "service")?);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let rows = revision_rows(
        &revisions,
        &services,
        args.all_namespaces,
        args.no_headers,
        SystemTime::now(),
    );
    print!("{}", render_rows(&rows));
    Ok(())
}

async fn describe_cmd(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<()> {
    let json = ctx
        .client
        .get(&object_path(
            &kinds::REVISIONS,
            Some(&ctx.namespace),
            &args.name,
        ))
        .await?;
    if let Some(o) = args.output {
        let format = if o == DescribeOutput::Yaml {
            OutputFormat::Yaml
        } else {
            OutputFormat::Json
        };
        print!(
            "{}",
            output::render(vec![json], &kinds::REVISIONS, format, true)
        );
        return Ok(());
    }
    let rev: Revision = from_value(json, "revision")?;
    let mut service = None;
    if args.verbose
        && let Some(name) = rev.metadata.labels.get(keys::SERVICE_LABEL)
    {
        let v = ctx
            .client
            .get(&object_path(&kinds::SERVICES, Some(&ctx.namespace), name))
            .await?;
        service = Some(from_value::<Service>(v, "service")?);
    }
    print!(
        "{}",
        describe::describe_revision(&rev, service.as_ref(), args.verbose, SystemTime::now())
    );
    Ok(())
}

async fn delete(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    if args.names.is_empty() {
        anyhow::bail!("'wisp revision delete' requires one or more revision name");
    }
    let mut failed = false;
    for name in &args.names {
        match ctx
            .client
            .delete(&object_path(&kinds::REVISIONS, Some(&ctx.namespace), name))
            .await
        {
            Ok(_) => println!(
                "Revision '{name}' deleted in namespace '{}'.",
                ctx.namespace
            ),
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
    use std::time::Duration;

    fn rev(ns: &str, name: &str, service: &str, generation: &str, ready: &str) -> Revision {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-02T03:04:05Z",
                         "labels": {"serving.knative.dev/service": service,
                                    "serving.knative.dev/configurationGeneration": generation}},
            "status": {"conditions": [
                {"type": "ContainerHealthy", "status": "True"},
                {"type": "Ready", "status": ready, "reason": if ready == "True" { "" } else { "Deploying" },
                 "message": if ready == "False" { "boom" } else { "" }},
                {"type": "ResourcesAvailable", "status": "True"}
            ]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn rows_like_kn() {
        let mut revs = vec![
            rev("default", "hello-00001", "hello", "1", "True"),
            rev("default", "hello-00002", "hello", "2", "Unknown"),
            rev("default", "bye-00001", "bye", "1", "False"),
        ];
        sort_revisions(&mut revs);
        let names: Vec<&str> = revs.iter().map(|r| r.metadata.name.as_str()).collect();
        assert_eq!(names, ["bye-00001", "hello-00002", "hello-00001"]);

        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "default"},
            "status": {"traffic": [
                {"revisionName": "hello-00002", "percent": 80, "latestRevision": true},
                {"revisionName": "hello-00001", "percent": 20, "tag": "old"},
                {"revisionName": "hello-00001", "percent": 0, "tag": "stable"}
            ]}
        }))
        .unwrap_or_default();
        let mut services = BTreeMap::new();
        services.insert(("default".to_string(), "hello".to_string()), svc);
        let now = age::parse_timestamp("2026-01-02T03:04:05Z").unwrap_or(SystemTime::UNIX_EPOCH)
            + Duration::from_secs(42);
        let got = render_rows(&revision_rows(&revs, &services, false, false, now));
        let want = "\
NAME          SERVICE   TRAFFIC   TAGS         GENERATION   AGE   CONDITIONS   READY     REASON
bye-00001     bye                              1            42s   2 OK / 3     False     Deploying : boom
hello-00002   hello     80%                    2            42s   2 OK / 3     Unknown   Deploying
hello-00001   hello     20%       old,stable   1            42s   3 OK / 3     True
";
        assert_eq!(got, want);
        let with_ns = revision_rows(&revs, &services, true, true, now);
        assert_eq!(with_ns[0][0], "default");
        assert_eq!(with_ns.len(), 3);
    }

    #[test]
    fn condition_helpers() {
        assert_eq!(non_ready_reason(&[]), "<unknown>");
        assert_eq!(conditions_value(&[]), "0 OK / 0");
        assert_eq!(trunc(&"x".repeat(60)).len(), 50);
    }
}
