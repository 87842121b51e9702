//! `wisp events`: what happened, as `kubectl events` shows it (the Kubernetes Events the
//! controllers and the event plane record).

use anyhow::Context as _;
use wisp_api::kinds;

use crate::Ctx;
use crate::cmd_get::{Listing, list, resolve_kind, split_kind};
use crate::output::OutputFormat;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only the events of this object: KIND/NAME, e.g. revision/hello-00001 or ksvc/hello.
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    /// Only events of this type: Normal or Warning.
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// Events of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    #[arg(long)]
    pub no_headers: bool,
}

/// The field selector for `--for` and `--type`.
fn field_selector(for_object: Option<&str>, type_: Option<&str>) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    if let Some(f) = for_object {
        let (kind, names) = split_kind(f, &[]);
        let name = names
            .first()
            .with_context(|| format!("--for {f:?}: want KIND/NAME, e.g. revision/hello-00001"))?;
        let info = resolve_kind(&kind).with_context(|| format!("--for {f:?}"))?;
        parts.push(format!("involvedObject.kind={}", info.kind));
        parts.push(format!("involvedObject.name={name}"));
    }
    if let Some(t) = type_ {
        match t {
            "Normal" | "Warning" => parts.push(format!("type={t}")),
            _ => anyhow::bail!("--type {t:?}: want Normal or Warning"),
        }
    }
    Ok(parts.join(","))
}

pub async fn run(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    let selector = field_selector(args.for_object.as_deref(), args.type_.as_deref())?;
    let listing = Listing {
        info: &kinds::EVENTS,
        names: &[],
        output: args.output,
        all_namespaces: args.all_namespaces,
        selector: None,
        field_selector: (!selector.is_empty()).then_some(selector.as_str()),
        no_headers: args.no_headers,
        empty_message: None,
    };
    list(ctx, &listing).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_the_object_by_its_kind() {
        assert_eq!(
            field_selector(Some("rev/hello-00001"), None).unwrap(),
            "involvedObject.kind=Revision,involvedObject.name=hello-00001"
        );
        assert_eq!(
            field_selector(Some("ksvc/hello"), Some("Warning")).unwrap(),
            "involvedObject.kind=Service,involvedObject.name=hello,type=Warning"
        );
        assert!(field_selector(Some("revision"), None).is_err());
        assert!(field_selector(None, Some("Bad")).is_err());
        assert_eq!(field_selector(None, None).unwrap(), "");
    }
}
