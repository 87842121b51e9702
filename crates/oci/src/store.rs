//! The local image store: content-addressed blobs, image records, unpacked layers, rootfs.
//!
//! Layout under `{data_dir}/oci/`:
//!
//! ```text
//! blobs/sha256/<hex>     manifests, indexes, configs, layer blobs; named by their digest
//! images/<key>.json      reference → digest records (key: sha256 of the reference text)
//! layers/<hex>/fs        one layer (by blob digest) unpacked; layers/<hex>/layer.json
//! rootfs/<hex>/          an image (by manifest digest) flattened, when overlayfs is not used
//! tmp/                   work in progress; nothing here is ever read as a result
//! ```
//!
//! Guarantees. A blob is written to `tmp/`, checked against its digest, fsynced and only then
//! renamed into `blobs/`; a reader re-checks small blobs (manifests, configs) on every read and
//! layer blobs while unpacking, and removes a blob that no longer matches, so a disk error
//! turns into "pull again", never into a wrong image. A layer is unpacked into a temporary
//! directory, checked against the config's `diff_id`, synced, and renamed into `layers/`
//! whole: a crash or a bad layer leaves nothing half-unpacked that could be used. Concurrent
//! unpacks of one layer race harmlessly (the first rename wins). [`Store::gc`] waits for every
//! [`Lease`] (held by pulls, unpacks, builds) so it never removes what is being written.
//!
//! Methods are synchronous file-system work; async callers run them on the blocking pool.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Digester};
use crate::manifest::{
    Compression, Descriptor, ImageConfig, ImageManifest, Manifest, ManifestError, Platform,
};
use crate::reference::Reference;
use crate::unpack::{self, LayerFormat, UnpackError};

/// Errors of the local store, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "blob {digest} in the local store is corrupt (its content hashes to {actual}); it was removed: pull the image again"
    )]
    Corrupt { digest: Digest, actual: Digest },
    #[error("content does not match its digest: expected {expected}, got {actual} ({size} bytes)")]
    Mismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} has {actual} bytes, but {expected} were expected")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{what} {digest} is not in the local store: pull the image first")]
    Missing { what: &'static str, digest: Digest },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("layer {layer} cannot be unpacked: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {layer} is corrupt: its uncompressed content hashes to {actual}, but the image config says {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("image record {path} is unreadable ({detail}); it was removed")]
    BadRecord { path: PathBuf, detail: String },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A reference's resolved digest, kept so a cached image needs no network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference as written and normalised (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The digest it resolved to (an index or a manifest).
    pub digest: Digest,
    /// Made by `wisp build` here: the store may hold its only copy, so the daemon's
    /// garbage collection keeps it until the tag is built, pulled or resolved again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub built: bool,
}

/// An image whose manifest and config are in the store (layers may still be missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The digest the image was asked by: an index or a manifest. This is what a revision pins.
    pub digest: Digest,
    /// The platform manifest chosen (equal to `digest` for a single-platform image).
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
}

impl Image {
    /// Layers bottom first, each with its uncompressed digest from the config.
    pub fn layers(&self) -> impl Iterator<Item = (&Descriptor, &Digest)> {
        self.manifest
            .layers
            .iter()
            .zip(&self.config.rootfs.diff_ids)
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub records: usize,
    pub blobs: usize,
    pub layers: usize,
    pub rootfs: usize,
    pub bytes: u64,
}

/// Held by anything that writes to the store, so that [`Store::gc`] waits for it.
pub struct Lease {
    _guard: tokio::sync::OwnedRwLockReadGuard<()>,
}

#[derive(Serialize, Deserialize)]
struct LayerMeta {
    format: LayerFormat,
    diff_id: Digest,
}

struct Inner {
    root: PathBuf,
    format: LayerFormat,
    as_root: bool,
    gc_lock: Arc<tokio::sync::RwLock<()>>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .field("format", &self.inner.format)
            .finish()
    }
}

const DIRS: [&str; 5] = ["blobs/sha256", "images", "layers", "rootfs", "tmp"];

impl Store {
    /// Opens (creating) the store under `{data_dir}/oci`, clears leftovers of interrupted work
    /// from `tmp/`, and decides the layer format this process can write.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_inner(data_dir, true)
    }

    /// Opens the store another process (the daemon) owns, to add to it (`wisp build`):
    /// like [`Store::open`], but `tmp/` is left alone, since the owner may be writing there.
    /// Every write is a unique temp file renamed into place, so both can write at once.
    pub fn attach(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_inner(data_dir, false)
    }

    fn open_inner(data_dir: &Path, clear_tmp: bool) -> Result<Store, StoreError> {
        let root = data_dir.join("oci");
        for d in DIRS {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("cannot create", &p))?;
        }
        let tmp = root.join("tmp");
        if clear_tmp {
            clear_dir(&tmp)?;
        }
        let as_root = rustix::process::geteuid().is_root();
        let format = if as_root && overlay_format_works(&tmp) {
            LayerFormat::Overlay
        } else {
            LayerFormat::Markers
        };
        tracing::debug!(root = %root.display(), ?format, "opened OCI store");
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                format,
                as_root,
                gc_lock: Arc::new(tokio::sync::RwLock::new(())),
            }),
        })
    }

    /// Like [`Store::open`] but with a fixed layer format (tests of the fallback paths).
    pub fn open_with_format(data_dir: &Path, format: LayerFormat) -> Result<Store, StoreError> {
        let s = Store::open(data_dir)?;
        Ok(Store {
            inner: Arc::new(Inner {
                root: s.inner.root.clone(),
                format,
                as_root: s.inner.as_root,
                gc_lock: Arc::new(tokio::sync::RwLock::new(())),
            }),
        })
    }

    /// `{data_dir}/oci`.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn layer_format(&self) -> LayerFormat {
        self.inner.format
    }

    /// A lease that keeps [`Store::gc`] away until dropped.
    pub async fn lease(&self) -> Lease {
        Lease {
            _guard: self.inner.gc_lock.clone().read_owned().await,
        }
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    // ---- blobs -------------------------------------------------------------------------

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob; `expected` (digest and size) is checked by
    /// [`BlobWriter::commit`].
    pub fn blob_writer(
        &self,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<BlobWriter, StoreError> {
        let tmp = self.tmp_dir();
        let file = tempfile::NamedTempFile::new_in(&tmp)
            .map_err(io_err("cannot create a file in", &tmp))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(256 * 1024, file),
            digester: Digester::new(),
            expected: expected.map(|(d, s)| (d.clone(), s)),
            blobs: self.inner.root.join("blobs/sha256"),
        })
    }

    /// Stores `bytes` and returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer(Some((&digest, Some(bytes.len() as u64))))?;
        w.write_all(bytes)
            .map_err(io_err("cannot write", &self.tmp_dir()))?;
        w.commit()
    }

    /// Reads a whole blob, checking it against its digest (meant for manifests and configs).
    /// A blob that does not match is removed and reported as [`StoreError::Corrupt`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    what: "blob",
                    digest: digest.clone(),
                });
            }
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            self.remove_corrupt(digest);
            return Err(StoreError::Corrupt {
                digest: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn remove_corrupt(&self, digest: &Digest) {
        let path = self.blob_path(digest);
        tracing::warn!(%digest, path = %path.display(), "removing corrupt blob");
        let _ = fs::remove_file(path);
    }

    // ---- image records -----------------------------------------------------------------

    fn record_path(&self, reference: &Reference) -> PathBuf {
        let key = Digest::of(reference.to_string().as_bytes());
        self.inner
            .root
            .join("images")
            .join(format!("{}.json", key.hex()))
    }

    /// Records that `reference` resolved to `digest`.
    pub fn put_record(&self, reference: &Reference, digest: &Digest) -> Result<(), StoreError> {
        self.write_record(reference, digest, false)
    }

    /// Records that `reference` names the image `digest` built here.
    pub fn put_built_record(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        self.write_record(reference, digest, true)
    }

    fn write_record(
        &self,
        reference: &Reference,
        digest: &Digest,
        built: bool,
    ) -> Result<(), StoreError> {
        let record = ImageRecord {
            reference: reference.to_string(),
            digest: digest.clone(),
            built,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::BadRecord {
            path: self.record_path(reference),
            detail: e.to_string(),
        })?;
        write_atomic(&self.tmp_dir(), &self.record_path(reference), &bytes)
    }

    /// The digest `reference` resolved to when it was last pulled or resolved; for a reference
    /// with a digest, that digest.
    pub fn record(&self, reference: &Reference) -> Result<Option<ImageRecord>, StoreError> {
        if let Some(d) = reference.digest() {
            return Ok(Some(ImageRecord {
                reference: reference.to_string(),
                digest: d.clone(),
                built: false,
            }));
        }
        let path = self.record_path(reference);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<ImageRecord>(&bytes) {
                Ok(r) => Ok(Some(r)),
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    Err(StoreError::BadRecord {
                        path,
                        detail: e.to_string(),
                    })
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    /// All records (unreadable ones are skipped).
    pub fn records(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.inner.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("cannot read", &dir))? {
            let e = e.map_err(io_err("cannot read", &dir))?;
            if let Ok(bytes) = fs::read(e.path())
                && let Ok(r) = serde_json::from_slice::<ImageRecord>(&bytes)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    // ---- images ------------------------------------------------------------------------

    /// The image `digest` names (an index or a manifest), for `platform`, from local blobs
    /// only. Fails with [`StoreError::Missing`] if a manifest or config is not here.
    pub fn image(&self, digest: &Digest, platform: &Platform) -> Result<Image, StoreError> {
        let bytes = self.read_blob(digest)?;
        let (manifest_digest, manifest, from_index) = match Manifest::parse(None, &bytes)? {
            Manifest::Image(m) => (digest.clone(), m, false),
            Manifest::Index(index) => {
                let chosen = index.select(platform)?.digest.clone();
                let bytes = self.read_blob(&chosen)?;
                match Manifest::parse(None, &bytes)? {
                    Manifest::Image(m) => (chosen, m, true),
                    Manifest::Index(_) => {
                        return Err(ManifestError::UnsupportedMediaType(
                            "a nested index".to_string(),
                        )
                        .into());
                    }
                }
            }
        };
        let config = ImageConfig::parse(&self.read_blob(&manifest.config.digest)?)?;
        if !from_index
            && !config.os.is_empty()
            && config.platform().compatibility(platform).is_none()
        {
            return Err(ManifestError::WrongPlatform {
                wanted: platform.to_string(),
                image: config.platform().to_string(),
            }
            .into());
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ManifestError::LayerCountMismatch {
                diff_ids: config.rootfs.diff_ids.len(),
                layers: manifest.layers.len(),
            }
            .into());
        }
        Ok(Image {
            digest: digest.clone(),
            manifest_digest,
            manifest,
            config,
        })
    }

    // ---- layers ------------------------------------------------------------------------

    /// `layers/<hex>`; the files are in its `fs/`.
    pub fn layer_dir(&self, layer: &Digest) -> PathBuf {
        self.inner.root.join("layers").join(layer.hex())
    }

    /// Unpacks a layer (once: an unpacked layer is returned as it is) and returns its `fs/`
    /// directory. The blob is checked against its digest and the tar stream against
    /// `diff_id` while unpacking.
    pub fn unpack_layer(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.layer_dir(&layer.digest);
        if dir.join("layer.json").is_file() {
            return Ok(dir.join("fs"));
        }
        let blob = self.blob_path(&layer.digest);
        let file = match fs::File::open(&blob) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    what: "layer",
                    digest: layer.digest.clone(),
                });
            }
            Err(e) => return Err(io_err("cannot open", &blob)(e)),
        };
        let declared = Compression::of_layer(&layer.media_type)?;
        let work = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.tmp_dir())
            .map_err(io_err("cannot create a directory in", &self.tmp_dir()))?;
        let fs_dir = work.path().join("fs");
        fs::create_dir(&fs_dir).map_err(io_err("cannot create", &fs_dir))?;

        let mut compressed =
            crate::digest::HashingReader::new(BufReader::with_capacity(256 * 1024, file));
        let mut head = [0u8; 4];
        let head_len = peek(&mut compressed, &mut head).map_err(io_err("cannot read", &blob))?;
        // Trust the magic number over the media type (some tools mislabel plain tar layers).
        let compression = Compression::sniff(&head[..head_len]).unwrap_or(match declared {
            Compression::Gzip | Compression::Zstd if head_len > 0 => Compression::None,
            other => other,
        });
        let chained = io::Read::chain(&head[..head_len], &mut compressed);
        let mut tar_stream = crate::digest::HashingReader::new(unpack::decompress(
            compression,
            BufReader::new(chained),
        ));
        let result = unpack::extract(
            &mut tar_stream,
            &fs_dir,
            self.inner.format,
            self.inner.as_root,
        );
        // Whatever happened, finish reading so the digests cover the whole blob.
        let tar_digest = tar_stream.finish();
        let blob_digest = compressed.finish();
        if let Ok((actual, _)) = &blob_digest
            && actual != &layer.digest
        {
            self.remove_corrupt(&layer.digest);
            return Err(StoreError::Corrupt {
                digest: layer.digest.clone(),
                actual: actual.clone(),
            });
        }
        let stats = result.map_err(|source| StoreError::Unpack {
            layer: layer.digest.clone(),
            source,
        })?;
        let (actual_diff, _) = tar_digest.map_err(|source| StoreError::Unpack {
            layer: layer.digest.clone(),
            source: UnpackError::Format {
                compression: unpack::compression_name(compression),
                source,
            },
        })?;
        blob_digest.map_err(io_err("cannot read", &blob))?;
        if &actual_diff != diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.clone(),
                actual: actual_diff,
            });
        }
        let meta = LayerMeta {
            format: self.inner.format,
            diff_id: diff_id.clone(),
        };
        let meta_path = work.path().join("layer.json");
        let meta_bytes = serde_json::to_vec(&meta).unwrap_or_default();
        fs::write(&meta_path, meta_bytes).map_err(io_err("cannot write", &meta_path))?;
        sync_fs(work.path())?;
        let work_path = work.keep();
        match fs::rename(&work_path, &dir) {
            Ok(()) => {}
            Err(_) if dir.join("layer.json").is_file() => {
                // Another unpack of the same layer won the race.
                let _ = fs::remove_dir_all(&work_path);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&work_path);
                return Err(io_err("cannot move unpacked layer to", &dir)(e));
            }
        }
        sync_dir(&self.inner.root.join("layers"));
        tracing::debug!(layer = %layer.digest, entries = stats.entries, whiteouts = stats.whiteouts, "unpacked layer");
        Ok(dir.join("fs"))
    }

    /// Unpacks every layer of `image`; returns their `fs/` directories bottom first, with
    /// the format each is in.
    pub fn unpack_image(&self, image: &Image) -> Result<Vec<(PathBuf, LayerFormat)>, StoreError> {
        image
            .layers()
            .map(|(layer, diff_id)| {
                let fs_dir = self.unpack_layer(layer, diff_id)?;
                Ok((fs_dir, self.layer_meta_format(&layer.digest)))
            })
            .collect()
    }

    fn layer_meta_format(&self, layer: &Digest) -> LayerFormat {
        let path = self.layer_dir(layer).join("layer.json");
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok())
            .map_or(LayerFormat::Markers, |m| m.format)
    }

    /// The image flattened into one directory, `rootfs/<manifest hex>/`, built once and
    /// shared read-only by every replica that cannot use overlayfs. Files are hard links to
    /// the unpacked layers.
    pub fn flatten(&self, image: &Image) -> Result<PathBuf, StoreError> {
        let dest = self
            .inner
            .root
            .join("rootfs")
            .join(image.manifest_digest.hex());
        if dest.is_dir() {
            return Ok(dest);
        }
        let layers = self.unpack_image(image)?;
        let work = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(self.tmp_dir())
            .map_err(io_err("cannot create a directory in", &self.tmp_dir()))?;
        unpack::flatten(&layers, work.path(), self.inner.as_root).map_err(|source| {
            StoreError::Unpack {
                layer: image.manifest_digest.clone(),
                source,
            }
        })?;
        create_mountpoints(work.path())?;
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(work.path(), mode)
            .map_err(io_err("cannot set mode of", work.path()))?;
        sync_fs(work.path())?;
        let work_path = work.keep();
        match fs::rename(&work_path, &dest) {
            Ok(()) => {}
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(&work_path);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&work_path);
                return Err(io_err("cannot move flattened rootfs to", &dest)(e));
            }
        }
        Ok(dest)
    }

    // ---- garbage collection ------------------------------------------------------------

    /// Removes every image, layer, rootfs and blob that none of `keep` (index or manifest
    /// digests, e.g. those pinned by existing revisions) needs, and records pointing
    /// elsewhere. Waits for leases first. Rootfs directories of kept images survive, so
    /// running replicas are not disturbed.
    pub async fn gc(&self, keep: &[Digest]) -> Result<GcReport, StoreError> {
        let _exclusive = self.inner.gc_lock.clone().write_owned().await;
        let store = self.clone();
        let keep = keep.to_vec();
        match tokio::task::spawn_blocking(move || store.gc_blocking(&keep)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io {
                what: "garbage collection panicked in",
                path: self.inner.root.clone(),
                source: io::Error::other(e.to_string()),
            }),
        }
    }

    fn gc_blocking(&self, keep: &[Digest]) -> Result<GcReport, StoreError> {
        let mut live_blobs: HashSet<String> = HashSet::new();
        let mut live_layers: HashSet<String> = HashSet::new();
        let mut live_manifests: HashSet<String> = HashSet::new();
        let mut stack: Vec<Digest> = keep.to_vec();
        while let Some(d) = stack.pop() {
            if !live_blobs.insert(d.hex().to_string()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&d) else {
                continue;
            };
            match Manifest::parse(None, &bytes) {
                Ok(Manifest::Index(i)) => stack.extend(i.manifests.into_iter().map(|m| m.digest)),
                Ok(Manifest::Image(m)) => {
                    live_manifests.insert(d.hex().to_string());
                    live_blobs.insert(m.config.digest.hex().to_string());
                    for l in m.layers {
                        live_blobs.insert(l.digest.hex().to_string());
                        live_layers.insert(l.digest.hex().to_string());
                    }
                }
                Err(_) => {}
            }
        }
        let mut report = GcReport::default();
        let images = self.inner.root.join("images");
        for e in fs::read_dir(&images)
            .map_err(io_err("cannot read", &images))?
            .flatten()
        {
            let keep_it = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok())
                .is_some_and(|r| live_blobs.contains(r.digest.hex()));
            if !keep_it && fs::remove_file(e.path()).is_ok() {
                report.records += 1;
            }
        }
        let sweep = |dir: &Path,
                     live: &HashSet<String>,
                     count: &mut usize,
                     bytes: &mut u64|
         -> Result<(), StoreError> {
            for e in fs::read_dir(dir)
                .map_err(io_err("cannot read", dir))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if live.contains(&name) {
                    continue;
                }
                let path = e.path();
                let size = dir_size(&path);
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => {
                        *count += 1;
                        *bytes += size;
                    }
                    Err(err) => tracing::warn!(path = %path.display(), %err, "gc could not remove"),
                }
            }
            Ok(())
        };
        let root = &self.inner.root;
        sweep(
            &root.join("rootfs"),
            &live_manifests,
            &mut report.rootfs,
            &mut report.bytes,
        )?;
        sweep(
            &root.join("layers"),
            &live_layers,
            &mut report.layers,
            &mut report.bytes,
        )?;
        sweep(
            &root.join("blobs/sha256"),
            &live_blobs,
            &mut report.blobs,
            &mut report.bytes,
        )?;
        // No lease is held, so nothing in tmp/ is in use.
        clear_dir(&self.tmp_dir())?;
        tracing::info!(?report, "OCI store garbage collected");
        Ok(report)
    }
}

/// Writes a blob: hashes as it goes, then [`BlobWriter::commit`] checks, syncs and renames.
/// Dropping it without committing leaves nothing behind.
pub struct BlobWriter {
    file: BufWriter<tempfile::NamedTempFile>,
    digester: Digester,
    expected: Option<(Digest, Option<u64>)>,
    blobs: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// Checks digest and size, fsyncs, and moves the blob into place. Returns its digest.
    pub fn commit(self) -> Result<Digest, StoreError> {
        let size = self.digester.len();
        let actual = self.digester.finish();
        if let Some((expected, expected_size)) = &self.expected {
            if &actual != expected {
                return Err(StoreError::Mismatch {
                    expected: expected.clone(),
                    actual,
                    size,
                });
            }
            if let Some(es) = expected_size
                && *es != size
            {
                return Err(StoreError::SizeMismatch {
                    digest: expected.clone(),
                    expected: *es,
                    actual: size,
                });
            }
        }
        let file = self
            .file
            .into_inner()
            .map_err(|e| io_err("cannot write", &self.blobs)(e.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(io_err("cannot sync", file.path()))?;
        let dest = self.blobs.join(actual.hex());
        file.persist(&dest)
            .map_err(|e| io_err("cannot move blob to", &dest)(e.error))?;
        sync_dir(&self.blobs);
        Ok(actual)
    }
}

fn peek(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f =
        tempfile::NamedTempFile::new_in(tmp).map_err(io_err("cannot create a file in", tmp))?;
    f.write_all(bytes)
        .map_err(io_err("cannot write", f.path()))?;
    f.as_file()
        .sync_all()
        .map_err(io_err("cannot sync", dest))?;
    f.persist(dest)
        .map_err(|e| io_err("cannot write", dest)(e.error))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Flushes the file system holding `path` (one `syncfs` instead of an fsync per file of an
/// unpacked layer).
fn sync_fs(path: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(path).map_err(io_err("cannot open", path))?;
    rustix::fs::syncfs(&f).map_err(|e| io_err("cannot sync", path)(e.into()))
}

fn clear_dir(dir: &Path) -> Result<(), StoreError> {
    for e in fs::read_dir(dir)
        .map_err(io_err("cannot read", dir))?
        .flatten()
    {
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if let Err(err) = r {
            tracing::warn!(path = %p.display(), %err, "cannot remove leftover");
        }
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        // Hard-linked files are counted where their last link goes.
        return if m.nlink() <= 1 { m.len() } else { 0 };
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Mount points runc needs, created ahead so that a shared read-only rootfs is never written
/// by a container start.
fn create_mountpoints(root: &Path) -> Result<(), StoreError> {
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        let p = root.join(d);
        if fs::symlink_metadata(&p).is_err() {
            fs::create_dir(&p).map_err(io_err("cannot create", &p))?;
        }
    }
    let etc = root.join("etc");
    if fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        for f in ["resolv.conf", "hosts", "hostname"] {
            let p = etc.join(f);
            if fs::symlink_metadata(&p).is_err() {
                fs::write(&p, b"").map_err(io_err("cannot create", &p))?;
            }
        }
    }
    Ok(())
}

/// Whether this process can write overlay-format whiteouts here (a 0/0 character device and
/// a `trusted.` xattr).
fn overlay_format_works(tmp: &Path) -> bool {
    let Ok(probe) = tempfile::Builder::new().prefix("probe-").tempdir_in(tmp) else {
        return false;
    };
    let dev = probe.path().join("wh");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &dev,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .is_ok();
    made && rustix::fs::lsetxattr(
        probe.path(),
        unpack::OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok()
}
