//! `wisp logs NAME [-f]`: the stdout and stderr of a Service's replicas (or one Revision's),
//! each line prefixed with `[revision/replica]`, from the API's `revisions/{name}/log`.
//!
//! NAME is a Service unless `--revision` says otherwise or no Service has that name and a
//! Revision does. With `-f`, one follow stream per revision runs at once and lines print as
//! they arrive; revisions created later are not picked up (run the command again).

use anyhow::Context;
use http_body_util::BodyExt;
use std::io::Write;
use wisp_api::kinds;
use wisp_api::serving::keys;

use crate::Ctx;
use crate::client::{collection_path, object_path, query};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The Service (or Revision) whose replicas to show.
    pub name: String,
    /// NAME is a Revision.
    #[arg(long)]
    pub revision: bool,
    /// Keep printing new lines as the replicas write them.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each replica's log.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// The revisions to read, oldest first.
async fn revisions(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<Vec<String>> {
    let ns = Some(ctx.namespace.as_str());
    if !args.revision {
        let selector = format!("{}={}", keys::SERVICE_LABEL, args.name);
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
    let path = object_path(&kinds::REVISIONS, ns, &args.name);
    match ctx.client.get(&path).await {
        Ok(_) => Ok(vec![args.name.clone()]),
        Err(e) if e.is_not_found() => Err(anyhow::anyhow!(
            "no service or revision named {:?} in namespace {:?}",
            args.name,
            ctx.namespace
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let revs = revisions(ctx, &args).await?;
    let tail = args.tail.map(|n| n.to_string());
    let mut params = vec![("prefix", "true")];
    if let Some(t) = &tail {
        params.push(("tailLines", t.as_str()));
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
            while let Some(frame) = body.frame().await {
                let frame = frame.with_context(|| format!("reading the log of {rev}"))?;
                if let Ok(data) = frame.into_data() {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
            }
            anyhow::Ok(())
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
