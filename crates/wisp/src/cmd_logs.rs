//! `wisp logs NAME [-f]`: the stdout and stderr of a Service's replicas (or one Revision's),
//! each line prefixed with `[revision/replica]`, from the API's `revisions/{name}/log`.
//! `wisp logs --requests [NAME]`: the gateway's request log, one JSON line per request, from
//! the API port's `/debug/requests`.
//!
//! NAME is a Service unless `--revision` says otherwise or no Service has that name and a
//! Revision does; `--revision R` picks one revision of it. With `-f`, one follow stream per
//! revision runs at once and lines print as they arrive; revisions created later are not
//! picked up (run the command again). `--replica ID` keeps one replica's lines. `--since 5m`
//! keeps request-log lines of the last five
//! minutes; replica output carries no times, so for it `--since` keeps the replicas that
//! wrote within that time.

use anyhow::Context;
use http_body_util::BodyExt;
use std::io::Write;
use wisp_api::kinds;
use wisp_api::serving::keys;

use crate::Ctx;
use crate::client::{collection_path, object_path, query};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The Service (or Revision) whose replicas to show; with --requests, optional.
    #[arg(required_unless_present_any = ["requests", "revision"])]
    pub name: Option<String>,
    /// NAME is a Revision; or, with a value, only that revision of the Service NAME.
    #[arg(long, value_name = "R", num_args = 0..=1)]
    pub revision: Option<Option<String>>,
    /// The gateway's request log (JSON lines) instead of the replicas' output.
    #[arg(long)]
    pub requests: bool,
    /// Only what was written within this long (5m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Only this replica (the id after the revision in the `[revision/replica]` prefix).
    #[arg(long, value_name = "ID", conflicts_with = "requests")]
    pub replica: Option<String>,
    /// Keep printing new lines as the replicas write them.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each replica's log.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// A Go duration as whole seconds (rounded up, at least one).
fn parse_since(s: &str) -> Result<u64, String> {
    let d = wisp_api::goparse::parse_duration(s)
        .ok()
        .filter(|d| *d > 0)
        .map(wisp_api::goparse::to_std)
        .ok_or_else(|| format!("{s:?} is not a positive duration such as 90s or 5m"))?;
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

impl LogsArgs {
    /// NAME names a Revision (`--revision` without a value).
    fn name_is_revision(&self) -> bool {
        matches!(self.revision, Some(None))
    }

    /// The one revision `--revision R` picks.
    fn picked_revision(&self) -> Option<&str> {
        self.revision.as_ref().and_then(|r| r.as_deref())
    }
}

/// The revisions to read, oldest first.
async fn revisions(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<Vec<String>> {
    let ns = Some(ctx.namespace.as_str());
    if let Some(rev) = args.picked_revision() {
        return Ok(vec![rev.to_string()]);
    }
    let name = args.name.clone().unwrap_or_default();
    if !args.name_is_revision() {
        let selector = format!("{}={}", keys::SERVICE_LABEL, name);
        let path = format!(
            "{}{}",
            collection_path(&kinds::REVISIONS, ns),
            query(&[("labelSelector", &selector)])
        );
        let list = ctx.client.get(&path).await?;
        let mut items: Vec<(String, i64)> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let name = r["metadata"]["name"].as_str().unwrap_or("").to_string();
                let generation = r["metadata"]["labels"][keys::CONFIGURATION_GENERATION_LABEL]
                    .as_str()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0);
                (name, generation)
            })
            .collect();
        if !items.is_empty() {
            items.sort_by_key(|(name, g)| (*g, name.clone()));
            return Ok(items.into_iter().map(|(n, _)| n).collect());
        }
    }
    // A Revision by that name, or nothing to show.
    let path = object_path(&kinds::REVISIONS, ns, &name);
    match ctx.client.get(&path).await {
        Ok(_) => Ok(vec![name]),
        Err(e) if e.is_not_found() => Err(anyhow::anyhow!(
            "no service or revision named {:?} in namespace {:?}",
            name,
            ctx.namespace
        )),
        Err(e) => Err(e.into()),
    }
}

/// Copies a streamed body to stdout as it arrives.
async fn print(body: &mut hyper::body::Incoming, what: &str) -> anyhow::Result<()> {
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("reading {what}"))?;
        if let Ok(data) = frame.into_data() {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// `--requests`: the request log, filtered by the daemon.
async fn requests(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<()> {
    let (tail, since) = (
        args.tail.map(|n| n.to_string()),
        args.since.map(|s| s.to_string()),
    );
    let mut params: Vec<(&str, &str)> = Vec::new();
    let scoped = args.name.is_some() || args.picked_revision().is_some();
    if scoped {
        params.push(("namespace", ctx.namespace.as_str()));
    }
    match (&args.name, args.picked_revision()) {
        (_, Some(rev)) => params.push(("revision", rev)),
        (Some(name), None) if args.name_is_revision() => params.push(("revision", name)),
        (Some(name), None) => params.push(("service", name)),
        (None, None) => {}
    }
    if let Some(s) = &since {
        params.push(("sinceSeconds", s));
    }
    if let Some(t) = &tail {
        params.push(("tailLines", t));
    }
    if args.follow {
        params.push(("follow", "true"));
    }
    let path = format!("/debug/requests{}", query(&params));
    let mut body = ctx.client.open(&path).await?;
    print(&mut body, "the request log").await
}

pub async fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    if args.requests {
        return requests(ctx, &args).await;
    }
    let revs = revisions(ctx, &args).await?;
    let (tail, since) = (
        args.tail.map(|n| n.to_string()),
        args.since.map(|s| s.to_string()),
    );
    let mut params = vec![("prefix", "true")];
    if let Some(t) = &tail {
        params.push(("tailLines", t.as_str()));
    }
    if let Some(s) = &since {
        params.push(("sinceSeconds", s.as_str()));
    }
    if let Some(r) = &args.replica {
        params.push(("replica", r.as_str()));
    }
    if args.follow {
        params.push(("follow", "true"));
    }
    let q = query(&params);
    let mut streams = tokio::task::JoinSet::new();
    for rev in revs {
        let path = format!(
            "{}/log{q}",
            object_path(&kinds::REVISIONS, Some(&ctx.namespace), &rev)
        );
        let client = ctx.client.clone();
        streams.spawn(async move {
            let mut body = client.open(&path).await?;
            print(&mut body, &format!("the log of {rev}")).await
        });
        if !args.follow {
            // In order, one revision after another.
            if let Some(r) = streams.join_next().await {
                r??;
            }
        }
    }
    while let Some(r) = streams.join_next().await {
        r??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        logs: LogsArgs,
    }

    fn parse(argv: &[&str]) -> Result<LogsArgs, clap::Error> {
        let mut v = vec!["logs"];
        v.extend_from_slice(argv);
        T::try_parse_from(v).map(|t| t.logs)
    }

    #[test]
    fn names_revisions_and_requests() {
        let a = parse(&["hello"]).unwrap();
        assert_eq!(a.name.as_deref(), Some("hello"));
        assert!(!a.name_is_revision() && a.picked_revision().is_none());
        let a = parse(&["hello-00001", "--revision"]).unwrap();
        assert!(a.name_is_revision());
        let a = parse(&["hello", "--revision", "hello-00002"]).unwrap();
        assert_eq!(a.picked_revision(), Some("hello-00002"));
        let a = parse(&["--requests", "--since", "5m"]).unwrap();
        assert!(a.requests && a.name.is_none());
        assert_eq!(a.since, Some(300));
        assert!(parse(&[]).is_err(), "NAME is needed for replica logs");
        assert!(parse(&["hello", "--since", "0s"]).is_err());
        assert_eq!(parse_since("1.5s"), Ok(2));
    }
}
