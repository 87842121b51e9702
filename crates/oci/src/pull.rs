//! Images for replicas: resolve, pull, unpack, mount; push what `wisp build` made.
//!
//! [`Images`] joins the registry [`Client`] and the [`Store`] into the few calls the daemon
//! makes: [`Images::resolve`] when a Revision is created (a tag becomes a digest, so the
//! revision always runs the same bytes), [`Images::pull`] before its first replica starts (no
//! network at all when the store already has the image), [`Images::mount_rootfs`] for each
//! replica, [`Images::push`] after a build, and [`Store::gc`] for what no revision uses.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use crate::auth::Keychain;
use crate::digest::Digest;
use crate::manifest::{Manifest, ManifestError, Platform};
use crate::reference::Reference;
use crate::registry::{Client, RegistryError};
use crate::rootfs::Rootfs;
use crate::store::{Image, Store, StoreError};
use crate::unpack::LayerFormat;

/// Layers fetched at once.
const PARALLEL_LAYERS: usize = 3;

/// Errors of [`Images`] calls.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("image {reference}: {source}")]
    Store {
        reference: String,
        #[source]
        source: StoreError,
    },
    #[error("image {reference}: {source}")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error("{what} stopped unexpectedly: {detail}")]
    Task { what: &'static str, detail: String },
}

impl PullError {
    fn store(reference: &Reference, source: StoreError) -> Self {
        PullError::Store {
            reference: reference.to_string(),
            source,
        }
    }
}

/// How far a pull has come, in bytes of blobs (compressed, as they come from the registry).
#[derive(Debug, Default)]
pub struct PullProgress {
    pub total: u64,
    pub done: AtomicU64,
}

/// Pulls in flight, by the digest they were asked by (shared by clones of [`Images`]).
type Pulls = Arc<Mutex<HashMap<Digest, Arc<PullProgress>>>>;

/// The image service: a registry client, a store and the platform to pull for.
#[derive(Clone, Debug)]
pub struct Images {
    client: Arc<Client>,
    store: Store,
    platform: Platform,
    pulls: Pulls,
}

/// Removes a pull from the table of pulls in flight when it ends, however it ends.
struct PullEntry(Pulls, Digest);

impl Drop for PullEntry {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Images {
    /// For this host's platform.
    pub fn new(client: Arc<Client>, store: Store) -> Self {
        Images {
            client,
            store,
            platform: Platform::host(),
            pulls: Arc::default(),
        }
    }

    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `(bytes done, bytes in all)` of the pull of `digest` in flight, if there is one (known
    /// once its manifest is): for a "pulling 3.1 of 11 MB" message while a replica waits.
    pub fn progress(&self, digest: &Digest) -> Option<(u64, u64)> {
        let pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        pulls
            .get(digest)
            .map(|p| (p.done.load(Ordering::Relaxed).min(p.total), p.total))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Resolves `reference` to the digest it names now (asking the registry unless the
    /// reference has a digest), and records it so a later pull of the tag needs no network.
    /// Knative does this when a Revision is created.
    pub async fn resolve(
        &self,
        reference: &Reference,
        keychain: &Keychain,
    ) -> Result<Digest, PullError> {
        if let Some(d) = reference.digest() {
            return Ok(d.clone());
        }
        let digest = self.client.resolve(reference, keychain).await?;
        self.store
            .put_record(reference, &digest)
            .map_err(|e| PullError::store(reference, e))?;
        Ok(digest)
    }

    /// Makes sure the store has `reference`'s manifest, config and layer blobs for this
    /// platform, and returns the image. A reference with a digest, or a tag resolved before,
    /// is served from the store without network when everything is there.
    pub async fn pull(
        &self,
        reference: &Reference,
        keychain: &Keychain,
    ) -> Result<Image, PullError> {
        let _lease = self.store.lease().await;
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => match self.store.record(reference) {
                Ok(Some(r)) => r.digest,
                Ok(None) | Err(StoreError::BadRecord { .. }) => {
                    self.resolve(reference, keychain).await?
                }
                Err(e) => return Err(PullError::store(reference, e)),
            },
        };
        match self.store.image(&digest, &self.platform) {
            Ok(image) if image.layers().all(|(l, _)| self.store.has_blob(&l.digest)) => {
                tracing::debug!(%reference, %digest, "image is in the store");
                return Ok(image);
            }
            Ok(_) | Err(StoreError::Missing { .. }) | Err(StoreError::Corrupt { .. }) => {}
            Err(e) => return Err(PullError::store(reference, e)),
        }
        let started = tokio::time::Instant::now();
        let top = self
            .client
            .pull_manifest(reference, &digest, keychain, &self.store)
            .await?;
        let manifest = match top {
            Manifest::Image(m) => m,
            Manifest::Index(index) => {
                let chosen = index
                    .select(&self.platform)
                    .map_err(|source| PullError::Manifest {
                        reference: reference.to_string(),
                        source,
                    })?
                    .digest
                    .clone();
                match self
                    .client
                    .pull_manifest(reference, &chosen, keychain, &self.store)
                    .await?
                {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => {
                        return Err(PullError::Manifest {
                            reference: reference.to_string(),
                            source: ManifestError::UnsupportedMediaType(
                                "a nested index".to_string(),
                            ),
                        });
                    }
                }
            }
        };
        let sizes = std::iter::once(&manifest.config).chain(&manifest.layers);
        let progress = Arc::new(PullProgress {
            total: sizes.clone().map(|d| d.size).sum(),
            done: AtomicU64::new(
                sizes
                    .filter(|d| self.store.has_blob(&d.digest))
                    .map(|d| d.size)
                    .sum(),
            ),
        });
        self.pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), progress.clone());
        let _entry = PullEntry(self.pulls.clone(), digest.clone());
        self.client
            .pull_blob(
                reference,
                &manifest.config,
                keychain,
                &self.store,
                Some(&progress.done),
            )
            .await?;
        // The config says which platform a single-manifest image is for: check it before
        // fetching layers for nothing.
        let image = self
            .store
            .image(&digest, &self.platform)
            .map_err(|e| PullError::store(reference, e))?;
        futures_util::stream::iter(manifest.layers.iter())
            .map(|layer| {
                self.client.pull_blob(
                    reference,
                    layer,
                    keychain,
                    &self.store,
                    Some(&progress.done),
                )
            })
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect::<()>()
            .await?;
        if reference.digest().is_none() {
            self.store
                .put_record(reference, &digest)
                .map_err(|e| PullError::store(reference, e))?;
        }
        tracing::info!(%reference, %digest, layers = manifest.layers.len(), elapsed_ms = started.elapsed().as_millis() as u64, "pulled image");
        Ok(image)
    }

    /// Unpacks the image's layers (each once per digest); returns their directories bottom
    /// first.
    pub async fn unpack(
        &self,
        image: &Image,
    ) -> Result<Vec<(std::path::PathBuf, LayerFormat)>, PullError> {
        let _lease = self.store.lease().await;
        let store = self.store.clone();
        let img = image.clone();
        let r = tokio::task::spawn_blocking(move || store.unpack_image(&img))
            .await
            .map_err(|e| PullError::Task {
                what: "unpacking",
                detail: e.to_string(),
            })?;
        r.map_err(|source| PullError::Store {
            reference: image.digest.to_string(),
            source,
        })
    }

    /// A root file system for one replica (see [`crate::rootfs`]).
    pub async fn mount_rootfs(
        &self,
        image: &Image,
        replica_dir: &Path,
    ) -> Result<Rootfs, PullError> {
        let _lease = self.store.lease().await;
        let store = self.store.clone();
        let img = image.clone();
        let dir = replica_dir.to_path_buf();
        let r = tokio::task::spawn_blocking(move || store.mount_rootfs(&img, &dir))
            .await
            .map_err(|e| PullError::Task {
                what: "preparing the root file system",
                detail: e.to_string(),
            })?;
        r.map_err(|source| PullError::Store {
            reference: image.digest.to_string(),
            source,
        })
    }

    /// Pushes the image `digest` (a manifest or an index, with everything it references) from
    /// the store to `target`'s repository, under its tag (or digest). Returns the digest.
    pub async fn push(
        &self,
        digest: &Digest,
        target: &Reference,
        keychain: &Keychain,
    ) -> Result<Digest, PullError> {
        let _lease = self.store.lease().await;
        let read = |d: &Digest| {
            self.store
                .read_blob(d)
                .map_err(|e| PullError::store(target, e))
        };
        let top = read(digest)?;
        let parse = |bytes: &[u8]| {
            Manifest::parse(None, bytes).map_err(|source| PullError::Manifest {
                reference: target.to_string(),
                source,
            })
        };
        let manifests = match parse(&top)? {
            Manifest::Image(m) => vec![(digest.clone(), m)],
            Manifest::Index(index) => {
                let mut v = Vec::new();
                for d in index.manifests {
                    if let Manifest::Image(m) = parse(&read(&d.digest)?)? {
                        v.push((d.digest, m));
                    }
                }
                v
            }
        };
        let single = matches!(parse(&top)?, Manifest::Image(_));
        for (manifest_digest, m) in &manifests {
            self.client
                .push_blob(target, &m.config.digest, keychain, &self.store)
                .await?;
            for layer in &m.layers {
                self.client
                    .push_blob(target, &layer.digest, keychain, &self.store)
                    .await?;
            }
            if !single {
                let bytes = Bytes::from(read(manifest_digest)?);
                let media_type = m
                    .media_type
                    .clone()
                    .unwrap_or_else(|| crate::manifest::media::OCI_MANIFEST.to_string());
                self.client
                    .push_manifest(
                        &target.pinned(manifest_digest.clone()),
                        &media_type,
                        bytes,
                        keychain,
                    )
                    .await?;
            }
        }
        let media_type = parse(&top)?.media_type().to_string();
        let pushed = self
            .client
            .push_manifest(target, &media_type, Bytes::from(top), keychain)
            .await?;
        if target.digest().is_none() {
            self.store
                .put_record(target, &pushed)
                .map_err(|e| PullError::store(target, e))?;
        }
        Ok(pushed)
    }
}
