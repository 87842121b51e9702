//! `wisp route list|describe`: kn's `route` commands.

use std::time::SystemTime;

use wisp_api::kinds;
use wisp_api::serving::Route;

use crate::Ctx;
use crate::client::object_path;
use crate::cmd_get::{Listing, list};
use crate::describe;
use crate::output::{self, OutputFormat};

#[derive(Debug, clap::Subcommand)]
pub enum RouteCommand {
    /// List routes.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a route.
    Describe(DescribeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this route.
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
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Name of the route.
    pub name: String,
    /// More output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DescribeOutput>,
}

pub async fn run(ctx: &Ctx, cmd: RouteCommand) -> anyhow::Result<()> {
    match cmd {
        RouteCommand::List(args) => {
            let names: Vec<String> = args.name.into_iter().collect();
            list(
                ctx,
                &Listing {
                    info: &kinds::ROUTES,
                    names: &names,
                    output: args.output,
                    all_namespaces: args.all_namespaces,
                    selector: None,
                    field_selector: None,
                    no_headers: args.no_headers,
                    empty_message: Some("No routes found."),
                },
            )
            .await
        }
        RouteCommand::Describe(args) => {
            let json = ctx
                .client
                .get(&object_path(
                    &kinds::ROUTES,
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
                    output::render(vec![json], &kinds::ROUTES, format, true)
                );
                return Ok(());
            }
            let route: Route = serde_json::from_value(json)
                .map_err(|e| anyhow::anyhow!("the server sent a route wisp cannot read: {e}"))?;
            print!(
                "{}",
                describe::describe_route(&route, args.verbose, SystemTime::now())
            );
            Ok(())
        }
    }
}
