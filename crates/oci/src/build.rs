//! `wisp build`: an OCI image from a directory, without a container engine.
//!
//! An image is a base (an image already in the store, or `scratch`) plus one layer holding
//! the copied files, and a config with the entrypoint, cmd, env, working directory, user,
//! labels and exposed ports. Everything goes into the store (layer tar+gzip, config, OCI
//! manifest); pushing is [`crate::Images::push`].
//!
//! Output is deterministic: entries sorted by path, owner 0:0, mtime 0, permission bits kept,
//! gzip header without name or time, config `created` at the epoch. The same inputs give the
//! same digest, so rebuilding an unchanged app makes no new revision.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::manifest::{
    ContainerConfig, Descriptor, ImageConfig, ImageManifest, Platform, RootFs, media,
};
use crate::store::{Image, Store, StoreError};

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid copy {0:?}: expected SRC:DEST, e.g. ./site:/srv/www")]
    BadCopy(String),
    #[error("cannot copy {path}: {source}")]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("destination {dest:?}: {problem}")]
    BadDest { dest: String, problem: &'static str },
    #[error("working directory {0:?} must be an absolute path")]
    BadWorkdir(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One `src:dest` copy: a file to a file (or into `dest/` when it ends with `/`), or a
/// directory's contents into `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub src: PathBuf,
    pub dest: String,
}

impl Copy {
    /// Parses `SRC:DEST` (split at the last `:`).
    pub fn parse(s: &str) -> Result<Copy, BuildError> {
        let (src, dest) = s
            .rsplit_once(':')
            .ok_or_else(|| BuildError::BadCopy(s.to_string()))?;
        if src.is_empty() || dest.is_empty() {
            return Err(BuildError::BadCopy(s.to_string()));
        }
        Ok(Copy {
            src: PathBuf::from(src),
            dest: dest.to_string(),
        })
    }
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// The base image (pulled into the store first); `None` is `scratch`.
    pub base: Option<Image>,
    pub copies: Vec<Copy>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Set (or replace) these variables.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    /// For `scratch`; a base image keeps its own. Default: this host's.
    pub platform: Option<Platform>,
}

/// What was built: in the store, by manifest digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    /// The new layer, if any file was copied.
    pub layer: Option<Descriptor>,
}

#[derive(Debug, Clone)]
enum Source {
    Dir { mode: u32 },
    File { path: PathBuf, mode: u32 },
    Symlink { target: PathBuf },
}

/// Builds the image into `store`.
pub fn build(store: &Store, spec: &BuildSpec) -> Result<Built, BuildError> {
    let mut config = match &spec.base {
        Some(base) => base.config.clone(),
        None => {
            let p = spec.platform.clone().unwrap_or_else(Platform::host);
            ImageConfig {
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
                ..Default::default()
            }
        }
    };
    let mut cc: ContainerConfig = config.config.clone().unwrap_or_default();
    if let Some(w) = &spec.workdir {
        if !w.starts_with('/') {
            return Err(BuildError::BadWorkdir(w.clone()));
        }
        cc.working_dir = Some(w.clone());
    }
    let workdir = cc
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());

    let mut entries: BTreeMap<String, Source> = BTreeMap::new();
    for copy in &spec.copies {
        collect(copy, &workdir, &mut entries)?;
    }
    let mut layers = spec
        .base
        .as_ref()
        .map(|b| b.manifest.layers.clone())
        .unwrap_or_default();
    let mut rootfs = config.rootfs.clone();
    if rootfs.type_.is_empty() {
        rootfs = RootFs::default();
    }
    let layer = if entries.is_empty() {
        None
    } else {
        let (desc, diff_id) = write_layer(store, &entries)?;
        layers.push(desc.clone());
        rootfs.diff_ids.push(diff_id);
        Some(desc)
    };
    config.history.push(serde_json::json!({
        "created": EPOCH,
        "created_by": "wisp build",
        "empty_layer": layer.is_none(),
    }));

    if let Some(ep) = &spec.entrypoint {
        cc.entrypoint = Some(ep.clone());
        // Docker: a new ENTRYPOINT resets an inherited CMD.
        if spec.cmd.is_none() {
            cc.cmd = None;
        }
    }
    if let Some(cmd) = &spec.cmd {
        cc.cmd = Some(cmd.clone());
    }
    if !spec.env.is_empty() {
        let mut env = cc.env.clone().unwrap_or_default();
        for (k, v) in &spec.env {
            let item = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
            {
                Some(slot) => *slot = item,
                None => env.push(item),
            }
        }
        cc.env = Some(env);
    }
    if let Some(u) = &spec.user {
        cc.user = Some(u.clone());
    }
    if !spec.exposed_ports.is_empty() {
        let ports = cc.exposed_ports.get_or_insert_with(BTreeMap::new);
        for p in &spec.exposed_ports {
            ports.insert(format!("{p}/tcp"), serde_json::json!({}));
        }
    }
    if !spec.labels.is_empty() {
        let labels = cc.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    config.config = Some(cc);
    config.rootfs = rootfs;
    config.created = Some(EPOCH.to_string());

    let config_bytes = serde_json::to_vec(&config).map_err(|e| StoreError::Io {
        what: "cannot encode the image config for",
        path: store.root().to_path_buf(),
        source: io::Error::other(e),
    })?;
    let config_digest = store.put_blob(&config_bytes)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Io {
        what: "cannot encode the manifest for",
        path: store.root().to_path_buf(),
        source: io::Error::other(e),
    })?;
    let digest = store.put_blob(&manifest_bytes)?;
    Ok(Built {
        digest,
        manifest,
        config,
        layer,
    })
}

/// The image path (relative, no leading `/`) of `dest`, resolved against `workdir`.
fn image_path(dest: &str, workdir: &str) -> Result<Vec<String>, BuildError> {
    let full = if dest.starts_with('/') {
        PathBuf::from(dest)
    } else {
        Path::new(workdir).join(dest)
    };
    let mut out = Vec::new();
    for c in full.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(BuildError::BadDest {
                    dest: dest.to_string(),
                    problem: "must not contain '..'",
                });
            }
        }
    }
    Ok(out)
}

fn add_parents(parts: &[String], entries: &mut BTreeMap<String, Source>) {
    for i in 1..parts.len() {
        entries
            .entry(parts[..i].join("/"))
            .or_insert(Source::Dir { mode: 0o755 });
    }
}

fn collect(
    copy: &Copy,
    workdir: &str,
    entries: &mut BTreeMap<String, Source>,
) -> Result<(), BuildError> {
    let src_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Source { path, source }
    };
    let meta = fs::metadata(&copy.src).map_err(src_err(&copy.src))?;
    let mut dest = image_path(&copy.dest, workdir)?;
    if meta.is_dir() {
        add_parents(&dest, entries);
        if !dest.is_empty() {
            entries.insert(
                dest.join("/"),
                Source::Dir {
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
        walk(&copy.src, &dest, entries)?;
    } else {
        if copy.dest.ends_with('/') || dest.is_empty() {
            let name = copy.src.file_name().ok_or_else(|| {
                BuildError::BadCopy(format!("{}:{}", copy.src.display(), copy.dest))
            })?;
            dest.push(name.to_string_lossy().into_owned());
        }
        add_parents(&dest, entries);
        entries.insert(
            dest.join("/"),
            Source::File {
                path: copy.src.clone(),
                mode: meta.permissions().mode() & 0o7777,
            },
        );
    }
    Ok(())
}

fn walk(
    dir: &Path,
    prefix: &[String],
    entries: &mut BTreeMap<String, Source>,
) -> Result<(), BuildError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Source { path, source }
    };
    for e in fs::read_dir(dir).map_err(err(dir))? {
        let e = e.map_err(err(dir))?;
        let path = e.path();
        let meta = fs::symlink_metadata(&path).map_err(err(&path))?;
        let mut parts = prefix.to_vec();
        parts.push(e.file_name().to_string_lossy().into_owned());
        let key = parts.join("/");
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(err(&path))?;
            entries.insert(key, Source::Symlink { target });
        } else if meta.is_dir() {
            entries.insert(key, Source::Dir { mode });
            walk(&path, &parts, entries)?;
        } else if meta.is_file() {
            entries.insert(key, Source::File { path, mode });
        }
        // Sockets, fifos and devices are not image content.
    }
    Ok(())
}

/// Writes the layer (tar → diff_id, gzip → blob digest) into the store.
fn write_layer(
    store: &Store,
    entries: &BTreeMap<String, Source>,
) -> Result<(Descriptor, Digest), BuildError> {
    let blob = store.blob_writer(None)?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(blob, flate2::Compression::default());
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    tar.mode(tar::HeaderMode::Deterministic);
    let io_err = |what: &str| {
        let path = PathBuf::from(what);
        move |source| BuildError::Source { path, source }
    };
    for (path, source) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match source {
            Source::Dir { mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(io_err(path))?;
            }
            Source::File { path: src, mode } => {
                let file = fs::File::open(src).map_err(io_err(&src.to_string_lossy()))?;
                let len = file
                    .metadata()
                    .map_err(io_err(&src.to_string_lossy()))?
                    .len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(len);
                tar.append_data(&mut h, path, io::Read::take(file, len))
                    .map_err(io_err(&src.to_string_lossy()))?;
            }
            Source::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, target)
                    .map_err(io_err(path))?;
            }
        }
    }
    let hashing = tar.into_inner().map_err(io_err("the layer"))?;
    let (gz, diff_id, _) = hashing.finish();
    let mut blob = gz.finish().map_err(io_err("the layer"))?;
    blob.flush().map_err(io_err("the layer"))?;
    let size = blob.len();
    let digest = blob.commit()?;
    Ok((
        Descriptor::new(media::OCI_LAYER_GZIP, digest, size),
        diff_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_parsing() {
        assert_eq!(
            Copy::parse("./site:/srv/www").unwrap(),
            Copy {
                src: "./site".into(),
                dest: "/srv/www".into()
            }
        );
        assert_eq!(Copy::parse("C:x:/d").unwrap().src, PathBuf::from("C:x"));
        for bad in ["nocolon", ":/d", "src:"] {
            assert!(Copy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dest_paths() {
        assert_eq!(image_path("/a/b", "/w").unwrap(), vec!["a", "b"]);
        assert_eq!(image_path("b", "/w").unwrap(), vec!["w", "b"]);
        assert_eq!(image_path(".", "/").unwrap(), Vec::<String>::new());
        assert!(image_path("/a/../b", "/").is_err());
    }

    #[test]
    fn deterministic_and_layered() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("site")).unwrap();
        fs::write(src.path().join("site/index.html"), "hello").unwrap();
        fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("index.html", src.path().join("site/home.html")).unwrap();
        let spec = BuildSpec {
            copies: vec![
                Copy {
                    src: src.path().join("site"),
                    dest: "/srv/www".into(),
                },
                Copy {
                    src: src.path().join("run.sh"),
                    dest: "/bin/".into(),
                },
            ],
            entrypoint: Some(vec!["/bin/run.sh".into()]),
            env: vec![("MODE".into(), "prod".into())],
            workdir: Some("/srv/www".into()),
            exposed_ports: vec![8080],
            platform: Platform::parse("linux/amd64"),
            ..Default::default()
        };
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let s1 = Store::open(d1.path()).unwrap();
        let a = build(&s1, &spec).unwrap();
        // Touch the sources: mtimes must not matter.
        fs::write(src.path().join("site/index.html"), "hello").unwrap();
        let b = build(&Store::open(d2.path()).unwrap(), &spec).unwrap();
        assert_eq!(a.digest, b.digest);
        let cc = a.config.container();
        assert_eq!(cc.entrypoint, Some(vec!["/bin/run.sh".to_string()]));
        assert_eq!(cc.env, Some(vec!["MODE=prod".to_string()]));
        assert_eq!(cc.working_dir.as_deref(), Some("/srv/www"));
        assert!(cc.exposed_ports.unwrap().contains_key("8080/tcp"));
        assert_eq!(a.config.rootfs.diff_ids.len(), 1);

        // The image unpacks to what was copied.
        let image = s1
            .image(&a.digest, &Platform::parse("linux/amd64").unwrap())
            .unwrap();
        let layers = s1.unpack_image(&image).unwrap();
        let root = &layers[0].0;
        assert_eq!(
            fs::read_to_string(root.join("srv/www/index.html")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_link(root.join("srv/www/home.html")).unwrap(),
            Path::new("index.html")
        );
        let mode = fs::metadata(root.join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        // A second build on top: base layers kept, Cmd reset by a new entrypoint only.
        let top = BuildSpec {
            base: Some(image),
            cmd: Some(vec!["--flag".into()]),
            env: vec![("MODE".into(), "dev".into()), ("X".into(), "1".into())],
            ..Default::default()
        };
        let c = build(&s1, &top).unwrap();
        assert_eq!(c.manifest.layers, a.manifest.layers);
        let cc = c.config.container();
        assert_eq!(cc.entrypoint, Some(vec!["/bin/run.sh".to_string()]));
        assert_eq!(cc.cmd, Some(vec!["--flag".to_string()]));
        assert_eq!(
            cc.env,
            Some(vec!["MODE=dev".to_string(), "X=1".to_string()])
        );
        assert!(c.layer.is_none());
        assert_eq!(c.config.history.len(), 2);
    }
}
