//! `wisp service create|update|list|describe|delete`: kn's `service` commands.
//!
//! Writes use optimistic concurrency (GET, edit, PUT with the resourceVersion, retry on 409)
//! and then wait, over a watch, until the server reports the change reconciled
//! (`wait::wait_state`); the final lines are kn's.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wisp_api::core::Container;
use wisp_api::kinds;
use wisp_api::serving::{Revision, Service, TrafficTarget, keys};

use crate::client::{ApiError, collection_path, object_path, query};
use crate::cmd_get::{Listing, list};
use crate::describe;
use crate::output::{self, OutputFormat};
use crate::service_edit::{EditContext, EditFlags};
use crate::traffic_flags::{self, ComputeMode, RevisionRef, ServiceTrafficState, TrafficFlags};
use crate::wait::{self, Expected, WaitConfig, WaitError};
use crate::{Ctx, Reported};

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Create a service (or replace it with --force).
    Create(CreateArgs),
    /// Update a service: a new revision for template changes, and traffic/tags.
    Update(UpdateArgs),
    /// List services.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a service.
    Describe(DescribeArgs),
    /// Delete services.
    Delete(DeleteArgs),
}

/// kn's wait flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitFlags {
    /// Return at once instead of waiting for the service to be reconciled.
    #[arg(long = "no-wait", overrides_with = "wait")]
    pub no_wait: bool,
    /// Wait for the service to be reconciled (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Seconds to wait before giving up.
    #[arg(long = "wait-timeout", default_value_t = 600, value_name = "SECONDS")]
    pub wait_timeout: u64,
    /// Seconds Ready may stay False before the wait fails.
    #[arg(long = "wait-window", default_value_t = 2, value_name = "SECONDS")]
    pub wait_window: u64,
}

impl WaitFlags {
    fn config(&self) -> WaitConfig {
        WaitConfig {
            timeout: Duration::from_secs(self.wait_timeout),
            error_window: Duration::from_secs(self.wait_window),
        }
    }
}

/// kn's `--traffic`, `--tag` and `--untag`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrafficArgs {
    /// Traffic split: REF=PERCENT, REF a revision, a tag or @latest; comma-separated or
    /// repeated, summing to 100 (a missing rest goes to the one revision left out).
    #[arg(long = "traffic", value_name = "REF=PERCENT", value_delimiter = ',')]
    pub traffic: Vec<String>,
    /// Tag a revision: REF=TAG, REF a revision or @latest (TAG alone means @latest).
    #[arg(long = "tag", value_name = "REF=TAG", value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Remove a tag.
    #[arg(long = "untag", value_name = "TAG", value_delimiter = ',')]
    pub untag: Vec<String>,
}

impl TrafficArgs {
    fn flags(&self) -> TrafficFlags {
        TrafficFlags {
            traffic: self.traffic.clone(),
            tags: self.tag.clone(),
            untag: self.untag.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the service.
    pub name: String,
    #[command(flatten)]
    pub edit: EditFlags,
    /// Tag a revision: REF=TAG, REF a revision or @latest (TAG alone means @latest).
    #[arg(long = "tag", value_name = "REF=TAG", value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Replace the service if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitFlags,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the service.
    pub name: String,
    #[command(flatten)]
    pub edit: EditFlags,
    #[command(flatten)]
    pub traffic: TrafficArgs,
    #[command(flatten)]
    pub wait: WaitFlags,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this service.
    pub name: Option<String>,
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
    /// Only the URL.
    Url,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Name of the service.
    pub name: String,
    /// More output: every revision, full labels and annotations, condition messages.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DescribeOutput>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Names of the services.
    pub names: Vec<String>,
    /// Delete every service in the namespace.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(args) => create(ctx, args).await,
        ServiceCommand::Update(args) => update(ctx, args).await,
        ServiceCommand::List(args) => {
            let names: Vec<String> = args.name.into_iter().collect();
            list(
                ctx,
                &Listing {
                    info: &kinds::SERVICES,
                    names: &names,
                    output: args.output,
                    all_namespaces: args.all_namespaces,
                    selector: None,
                    field_selector: None,
                    no_headers: args.no_headers,
                    empty_message: Some("No services found."),
                },
            )
            .await
        }
        ServiceCommand::Describe(args) => describe_cmd(ctx, args).await,
        ServiceCommand::Delete(args) => delete(ctx, args).await,
    }
}

/// Random numbers for `{{.Random N}}`: good enough for name suffixes, not for secrets.
fn random_source() -> impl FnMut() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 32) | 1;
    move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Reads `--env-file` into the flags.
fn load_env_file(edit: &mut EditFlags) -> anyhow::Result<()> {
    if let Some(path) = &edit.env_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("Invalid --env-file: cannot read {}: {e}", path.display())
        })?;
        edit.env_file_lines = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    }
    Ok(())
}

fn apply_edits(edit: &EditFlags, svc: &mut Service) -> anyhow::Result<()> {
    let now = crate::age::rfc3339_seconds(SystemTime::now());
    let mut random = random_source();
    let mut ctx = EditContext {
        now: &now,
        random: &mut random,
    };
    edit.apply(svc, &mut ctx).map_err(anyhow::Error::msg)
}

fn to_value(svc: &Service) -> anyhow::Result<Value> {
    serde_json::to_value(svc).map_err(|e| anyhow::anyhow!("cannot encode the service: {e}"))
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("the server sent a {what} wisp cannot read: {e}"))
}

fn service_path(ctx: &Ctx, name: &str) -> String {
    object_path(&kinds::SERVICES, Some(&ctx.namespace), name)
}

/// kn's retry back-off for conflicts: 20 ms, growing by half each time, 5 attempts.
const RETRIES: u32 = 5;
async fn backoff(attempt: u32) {
    let ms = 20.0 * 1.5f64.powi(i32::try_from(attempt).unwrap_or(0));
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
}

async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    let name = args.name.clone();
    if args.edit.image.is_none() && args.edit.cmd.is_empty() {
        anyhow::bail!(
            "'service create' requires the image name to run provided with the --image option (or a host command with --cmd)"
        );
    }
    let mut edit = args.edit.clone();
    load_env_file(&mut edit)?;
    let mut svc = Service::new(&ns, &name);
    svc.spec.template.spec.containers.push(Container::default());
    apply_edits(&edit, &mut svc)?;
    if !args.tag.is_empty() {
        let flags = TrafficFlags {
            tags: args.tag.clone(),
            ..TrafficFlags::default()
        };
        let state = ServiceTrafficState {
            name: &name,
            ..ServiceTrafficState::default()
        };
        let mode = ComputeMode {
            mutation: edit.any_mutation(),
            create: true,
        };
        svc.spec.traffic =
            traffic_flags::compute(&state, &flags, &[], mode).map_err(anyhow::Error::msg)?;
    }
    let path = service_path(ctx, &name);
    let existing = match ctx.client.get(&path).await {
        Ok(v) => Some(v),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if existing.is_none() {
        let created = ctx
            .client
            .create(
                &collection_path(&kinds::SERVICES, Some(&ns)),
                &to_value(&svc)?,
            )
            .await?;
        let expected = Expected {
            generation: generation(&created).max(1),
            new_revision: true,
            revision_name: svc.spec.template.metadata.name.clone(),
            ..Expected::default()
        };
        return finish(
            ctx,
            &name,
            &args.wait,
            expected,
            "",
            ("Creating", "created"),
        )
        .await;
    }
    if !args.force {
        anyhow::bail!(
            "cannot create service '{name}' in namespace '{ns}' because the service already exists and no --force option was given"
        );
    }
    // Replace: keep only the creator/lastModifier annotations of the live object.
    for attempt in 0..RETRIES {
        let current_json = ctx.client.get(&path).await?;
        let current: Service = from_value(current_json.clone(), "service")?;
        let mut desired = svc.clone();
        for key in [keys::CREATOR_ANNOTATION, keys::UPDATER_ANNOTATION] {
            if let Some(v) = current.metadata.annotations.get(key) {
                desired
                    .metadata
                    .annotations
                    .insert(key.to_string(), v.clone());
            }
        }
        desired.metadata.resource_version = current.metadata.resource_version.clone();
        match ctx.client.replace(&path, &to_value(&desired)?).await {
            Ok(updated) => {
                if generation(&updated) == current.metadata.generation {
                    println!("Service '{name}' replaced in namespace '{ns}' (unchanged).");
                    return Ok(());
                }
                let template_changed = desired.spec.template != current.spec.template;
                let expected = Expected {
                    generation: generation(&updated),
                    new_revision: template_changed,
                    previous_revision: current.status.latest_created_revision_name.clone(),
                    revision_name: if template_changed {
                        desired.spec.template.metadata.name.clone()
                    } else {
                        String::new()
                    },
                };
                return finish(
                    ctx,
                    &name,
                    &args.wait,
                    expected,
                    "",
                    ("Replacing", "replaced"),
                )
                .await;
            }
            Err(e) if e.is_conflict() && attempt + 1 < RETRIES => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("service '{name}' kept changing while it was replaced; try again")
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Revision names the new traffic points at that were not in the old traffic and are not
/// revisions of the service: kn sends them anyway (the Route then reports RevisionMissing);
/// wisp checks them first.
fn unknown_new_targets(
    before: &[TrafficTarget],
    after: &[TrafficTarget],
    revisions: &[Revision],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in after {
        let name = &t.revision_name;
        if name.is_empty()
            || before.iter().any(|b| &b.revision_name == name)
            || revisions.iter().any(|r| &r.metadata.name == name)
            || out.contains(name)
        {
            continue;
        }
        out.push(name.clone());
    }
    out
}

fn missing_revision_message(revision: &str, service: &str) -> String {
    format!(
        "Revision name '{revision}' doesn't exist for service '{service}' (see `wisp revision list -s {service}`)"
    )
}

async fn service_revisions(ctx: &Ctx, service: &str) -> anyhow::Result<Vec<Revision>> {
    let selector = format!("{}={service}", keys::SERVICE_LABEL);
    let path = format!(
        "{}{}",
        collection_path(&kinds::REVISIONS, Some(&ctx.namespace)),
        query(&[("labelSelector", &selector)])
    );
    let list = ctx.client.get(&path).await?;
    let items = list
        .get("items")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    from_value(items, "revision list")
}

async fn update(ctx: &Ctx, args: UpdateArgs) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    let name = args.name.clone();
    let flags = args.traffic.flags();
    if !args.edit.any() && !flags.changed() {
        anyhow::bail!("flag(s) not set\nUsage: wisp service update NAME [flags]");
    }
    let mut edit = args.edit.clone();
    load_env_file(&mut edit)?;
    let path = service_path(ctx, &name);
    for attempt in 0..RETRIES {
        let current_json = ctx.client.get(&path).await?;
        let current: Service = from_value(current_json.clone(), "service")?;
        if current.metadata.deletion_timestamp.is_some() {
            anyhow::bail!("can't update service {name} because it has been marked for deletion");
        }
        let mut svc = current.clone();
        apply_edits(&edit, &mut svc)?;
        if flags.changed() {
            let mut revisions = service_revisions(ctx, &name).await?;
            revisions.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let refs: Vec<RevisionRef> = revisions
                .iter()
                .map(|r| RevisionRef {
                    name: r.metadata.name.clone(),
                    tags_annotation: r
                        .metadata
                        .annotations
                        .get(traffic_flags::REVISION_TAGS_ANNOTATION)
                        .cloned(),
                })
                .collect();
            let state = ServiceTrafficState {
                name: &name,
                spec_traffic: &svc.spec.traffic,
                status_traffic: &svc.status.traffic,
                latest_ready_revision: &svc.status.latest_ready_revision_name,
            };
            let mode = ComputeMode {
                mutation: edit.any_mutation(),
                create: false,
            };
            let traffic =
                traffic_flags::compute(&state, &flags, &refs, mode).map_err(anyhow::Error::msg)?;
            // A revision of another configuration may be referenced too: ask for each.
            for revision in unknown_new_targets(&svc.spec.traffic, &traffic, &revisions) {
                let rev_path = object_path(&kinds::REVISIONS, Some(&ns), &revision);
                match ctx.client.get(&rev_path).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        anyhow::bail!(missing_revision_message(&revision, &name))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            svc.spec.traffic = traffic;
        }
        if svc == current {
            println!("Service '{name}' updated in namespace '{ns}'.");
            println!("No new revision has been created.");
            return Ok(());
        }
        match ctx.client.replace(&path, &to_value(&svc)?).await {
            Ok(updated) => {
                if generation(&updated) == current.metadata.generation {
                    println!("Service '{name}' updated in namespace '{ns}'.");
                    println!("No new revision has been created.");
                    return Ok(());
                }
                let template_changed = svc.spec.template != current.spec.template;
                let expected = Expected {
                    generation: generation(&updated),
                    new_revision: template_changed,
                    previous_revision: current.status.latest_created_revision_name.clone(),
                    revision_name: if template_changed {
                        svc.spec.template.metadata.name.clone()
                    } else {
                        String::new()
                    },
                };
                let before = wait::reported_revision(&current_json);
                return finish(
                    ctx,
                    &name,
                    &args.wait,
                    expected,
                    &before,
                    ("Updating", "updated"),
                )
                .await;
            }
            Err(e) if e.is_conflict() && attempt + 1 < RETRIES => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("service '{name}' kept changing while it was updated; try again")
}

/// kn's closing lines for a created/updated service.
pub fn url_message(service: &Value, original_revision: &str, what: &str) -> String {
    let name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let url = service
        .pointer("/status/url")
        .and_then(Value::as_str)
        .unwrap_or("");
    let revision = wait::reported_revision(service);
    if !original_revision.is_empty() && original_revision == revision {
        format!(
            "Service '{name}' with latest revision '{revision}' (unchanged) is available at URL:\n{url}"
        )
    } else {
        format!(
            "Service '{name}' {what} to latest revision '{revision}' is available at URL:\n{url}"
        )
    }
}

/// Waits (unless `--no-wait`) and prints kn's result lines.
async fn finish(
    ctx: &Ctx,
    name: &str,
    flags: &WaitFlags,
    expected: Expected,
    original_revision: &str,
    (doing, done): (&str, &str),
) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    if flags.no_wait {
        println!("Service '{name}' {done} in namespace '{ns}'.");
        return Ok(());
    }
    if std::io::stderr().is_terminal() {
        let what = if doing == "Updating" {
            "Service"
        } else {
            "service"
        };
        eprintln!("{doing} {what} '{name}' in namespace '{ns}':");
    }
    match wait::wait_for_service(&ctx.client, ns, name, &expected, flags.config()).await {
        Ok(svc) => {
            println!("{}", url_message(&svc, original_revision, done));
            Ok(())
        }
        Err(WaitError::Api(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

async fn describe_cmd(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<()> {
    let json = ctx.client.get(&service_path(ctx, &args.name)).await?;
    match args.output {
        Some(DescribeOutput::Url) => {
            println!(
                "{}",
                json.pointer("/status/url")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
            return Ok(());
        }
        Some(DescribeOutput::Yaml) => {
            print!(
                "{}",
                output::render(vec![json], &kinds::SERVICES, OutputFormat::Yaml, true)
            );
            return Ok(());
        }
        Some(DescribeOutput::Json) => {
            print!(
                "{}",
                output::render(vec![json], &kinds::SERVICES, OutputFormat::Json, true)
            );
            return Ok(());
        }
        None => {}
    }
    let svc: Service = from_value(json, "service")?;
    let mut revisions = service_revisions(ctx, &svc.metadata.name).await?;
    // Traffic may point at revisions of other configurations: fetch those one by one.
    let wanted: Vec<String> = svc
        .status
        .traffic
        .iter()
        .map(|t| t.revision_name.clone())
        .chain([
            svc.status.latest_created_revision_name.clone(),
            svc.status.latest_ready_revision_name.clone(),
        ])
        .filter(|n| !n.is_empty())
        .collect();
    for name in wanted {
        if revisions.iter().any(|r| r.metadata.name == name) {
            continue;
        }
        match ctx
            .client
            .get(&object_path(&kinds::REVISIONS, Some(&ctx.namespace), &name))
            .await
        {
            Ok(v) => revisions.push(from_value(v, "revision")?),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let descs = describe::revision_descs(&svc, &revisions, args.verbose);
    print!(
        "{}",
        describe::describe_service(&svc, &descs, args.verbose, SystemTime::now())
    );
    Ok(())
}

async fn delete(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let names = if args.all {
        if !args.names.is_empty() {
            anyhow::bail!("'service delete' with --all flag requires no arguments");
        }
        let list = ctx
            .client
            .get(&collection_path(&kinds::SERVICES, Some(ns)))
            .await?;
        let names: Vec<String> = list
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        i.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            println!("No services found.");
            return Ok(());
        }
        names
    } else {
        if args.names.is_empty() {
            anyhow::bail!("'service delete' requires the service name(s)");
        }
        args.names
    };
    let mut failed = false;
    for name in names {
        match ctx.client.delete(&service_path(ctx, &name)).await {
            Ok(_) => println!("Service '{name}' successfully deleted in namespace '{ns}'."),
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

    #[test]
    fn kn_url_messages() {
        let svc = json!({
            "metadata": {"name": "hello"},
            "status": {"url": "http://hello.default.localhost", "latestCreatedRevisionName": "hello-00002",
                       "latestReadyRevisionName": "hello-00002",
                       "conditions": [{"type": "Ready", "status": "True"}]}
        });
        assert_eq!(
            url_message(&svc, "", "created"),
            "Service 'hello' created to latest revision 'hello-00002' is available at URL:\nhttp://hello.default.localhost"
        );
        assert_eq!(
            url_message(&svc, "hello-00001", "updated"),
            "Service 'hello' updated to latest revision 'hello-00002' is available at URL:\nhttp://hello.default.localhost"
        );
        assert_eq!(
            url_message(&svc, "hello-00002", "updated"),
            "Service 'hello' with latest revision 'hello-00002' (unchanged) is available at URL:\nhttp://hello.default.localhost"
        );
    }

    #[test]
    fn new_traffic_targets_must_exist() {
        let rev = |n: &str| Revision::new("default", n);
        let t = |n: &str| TrafficTarget {
            revision_name: n.into(),
            percent: Some(50),
            ..TrafficTarget::default()
        };
        let revisions = vec![rev("hello-00001")];
        assert!(unknown_new_targets(&[], &[t("hello-00001"), t("")], &revisions).is_empty());
        // Already referenced before: not this command's doing.
        assert!(unknown_new_targets(&[t("gone")], &[t("gone")], &revisions).is_empty());
        assert_eq!(
            unknown_new_targets(&[], &[t("hello-0001"), t("hello-0001")], &revisions),
            ["hello-0001"]
        );
        assert_eq!(
            missing_revision_message("hello-0001", "hello"),
            "Revision name 'hello-0001' doesn't exist for service 'hello' (see `wisp revision list -s hello`)"
        );
    }

    #[test]
    fn random_names_use_the_source() {
        let mut r = random_source();
        let (a, b) = (r(), r());
        assert_ne!(a, b);
    }
}
