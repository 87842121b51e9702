//! `wisp build`: the role Knative Build had, kept small — an OCI image from files, without a
//! container engine or a Dockerfile: a base (`scratch` or an image), files copied in, and the
//! config (entrypoint, cmd, env, working directory, user, ports). The image goes into the
//! daemon's image store (so `image:` can name it with no registry) and, with `--push`, to its
//! registry. Output is deterministic: the same inputs give the same digest.
//!
//! Unlike the other commands this one works on the daemon's data directory directly (its
//! image store), because images are files, not API objects.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use wisp_oci::auth::Keychain;
use wisp_oci::build::{BuildSpec, Copy, build};
use wisp_oci::pull::Images;
use wisp_oci::reference::Reference;
use wisp_oci::registry::{Client, ClientConfig};
use wisp_oci::store::Store;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// A directory whose contents go to the image's root (or to --workdir), unless --copy
    /// says where files go.
    pub dir: Option<PathBuf>,
    /// The image to build on: `scratch` (nothing) or a reference.
    #[arg(long, default_value = "scratch")]
    pub base: String,
    /// Copy SRC (file or directory contents) to DEST in the image. Repeatable.
    #[arg(long = "copy", value_name = "SRC:DEST")]
    pub copies: Vec<String>,
    /// The entrypoint: words split at spaces, or a JSON array.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The default arguments (the image's Cmd): words split at spaces, or a JSON array.
    #[arg(long)]
    pub cmd: Option<String>,
    /// An environment variable, NAME=VALUE. Repeatable.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The working directory (absolute).
    #[arg(long)]
    pub workdir: Option<String>,
    /// The user to run as (`uid[:gid]` or a name).
    #[arg(long)]
    pub user: Option<String>,
    /// A port the app listens on (recorded as exposed). Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// The image's name, e.g. 127.0.0.1:5000/site:v1.
    #[arg(long)]
    pub image: String,
    /// Also push the image to its registry.
    #[arg(long)]
    pub push: bool,
    /// The daemon's data directory, whose image store receives the image.
    #[arg(long, env = "WISP_DATA_DIR", default_value = ".wisp")]
    pub data_dir: PathBuf,
}

/// `["a","b"]` as JSON, or words split at whitespace.
fn words(s: &str) -> anyhow::Result<Vec<String>> {
    let t = s.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t)
            .with_context(|| format!("{s:?} is not a JSON array of strings"));
    }
    Ok(t.split_whitespace().map(str::to_string).collect())
}

fn spec(args: &BuildArgs) -> anyhow::Result<BuildSpec> {
    let mut copies = args
        .copies
        .iter()
        .map(|c| Copy::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    if copies.is_empty()
        && let Some(dir) = &args.dir
    {
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
        copies.push(Copy {
            src: dir.clone(),
            dest: args.workdir.clone().unwrap_or_else(|| "/".to_string()),
        });
    }
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {kv:?}: expected NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(BuildSpec {
        copies,
        entrypoint: args.entrypoint.as_deref().map(words).transpose()?,
        cmd: args.cmd.as_deref().map(words).transpose()?,
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        exposed_ports: args.ports.clone(),
        ..BuildSpec::default()
    })
}

pub async fn run(args: BuildArgs) -> anyhow::Result<()> {
    let target = Reference::parse(&args.image).context("--image")?;
    let mut spec = spec(&args)?;
    let store = Store::attach(&args.data_dir)
        .with_context(|| format!("cannot open the image store in {}", args.data_dir.display()))?;
    let keychain = Keychain::from_default_docker_config().unwrap_or_default();
    let images = Images::new(
        Arc::new(Client::new(ClientConfig::default())),
        store.clone(),
    );
    if args.base != "scratch" {
        let base = Reference::parse(&args.base).context("--base")?;
        eprintln!("Pulling {base}");
        spec.base = Some(images.pull(&base, &keychain).await?);
    }
    let built = build(&store, &spec)?;
    store.put_built_record(&target, &built.digest)?;
    let pinned = target.pinned(built.digest.clone());
    println!("Image {target} built: {pinned}");
    if args.push {
        let pushed = images.push(&built.digest, &target, &keychain).await?;
        println!("Pushed {target} ({pushed})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_or_json() {
        assert_eq!(
            words("/bin/httpd -f -p 8080").unwrap(),
            ["/bin/httpd", "-f", "-p", "8080"]
        );
        assert_eq!(
            words(r#"["sh", "-c", "echo hi"]"#).unwrap(),
            ["sh", "-c", "echo hi"]
        );
        assert!(words("[oops").is_err());
    }
}
