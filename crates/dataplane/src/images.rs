//! Tag-to-digest resolution, as Knative's revision reconciler does it: an image named by tag
//! is resolved once, when its revision is first run, and the digest is written to the
//! Revision's `status.containerStatuses[].imageDigest`; from then on (daemon restarts
//! included) the revision runs those bytes, whatever the tag points at later.

use std::collections::HashMap;

use wisp_api::serving::Revision;
use wisp_oci::auth::Keychain;
use wisp_oci::digest::Digest;
use wisp_oci::pull::Images;
use wisp_oci::reference::Reference;
use wisp_oci::store::{GcReport, ImageRecord};

/// Resolves image references against registries, falling back to the local store for
/// images built with `wisp build` and never pushed.
pub struct ImageResolver {
    images: Images,
    keychain: Keychain,
}

impl ImageResolver {
    pub fn new(images: Images, keychain: Keychain) -> Self {
        ImageResolver { images, keychain }
    }

    /// The daemon's credentials with `extra` (a revision's pull secrets) taking precedence.
    fn keychain(&self, extra: &Keychain) -> std::borrow::Cow<'_, Keychain> {
        if extra.is_empty() {
            return std::borrow::Cow::Borrowed(&self.keychain);
        }
        let mut k = self.keychain.clone();
        k.extend(extra.clone());
        std::borrow::Cow::Owned(k)
    }

    /// The image pinned to a digest (`registry/repo@sha256:...`), or why it cannot be.
    pub async fn resolve(&self, image: &str, extra: &Keychain) -> Result<String, String> {
        let reference = Reference::parse(image).map_err(|e| e.to_string())?;
        if reference.digest().is_some() {
            return Ok(reference.to_string());
        }
        match self.images.resolve(&reference, &self.keychain(extra)).await {
            Ok(digest) => Ok(reference.pinned(digest).to_string()),
            Err(e) => match self.images.store().record(&reference) {
                // Built locally (or resolved before): the store knows the digest.
                Ok(Some(record)) => Ok(reference.pinned(record.digest).to_string()),
                _ => Err(e.to_string()),
            },
        }
    }
}

impl ImageResolver {
    /// `(bytes done, bytes in all)` of a pull of the pinned `image` in flight, by anyone (the
    /// runtime pulls for replicas through the same store).
    pub fn progress(&self, image: &str) -> Option<(u64, u64)> {
        let reference = Reference::parse(image).ok()?;
        self.images.progress(reference.digest()?)
    }

    /// Pulls `image` into the store with the revision's pull secrets, so that the runtime,
    /// which knows only the daemon's credentials, finds it there.
    pub async fn pull(&self, image: &str, extra: &Keychain) -> Result<(), String> {
        let reference = Reference::parse(image).map_err(|e| e.to_string())?;
        let (images, keychain) = (self.images.clone(), self.keychain(extra).into_owned());
        // Not awaited here: `Images::pull`'s future is not provably `Send` (see the OCI
        // backend's pull), so it runs on a blocking thread driven by this runtime's handle.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(images.pull(&reference, &keychain)))
            .await
            .map_err(|e| e.to_string())?
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The images garbage collection must keep: those revisions use (the digest in their status,
/// a digest written in their spec, or, before either, the digest their tag last resolved to,
/// which covers a revision between its pull and its status write) and those built here and
/// never pushed or re-resolved, whose only copy may be the store's.
pub fn images_in_use(revisions: &[Revision], records: &[ImageRecord]) -> Vec<Digest> {
    let by_reference: HashMap<&str, &Digest> = records
        .iter()
        .map(|r| (r.reference.as_str(), &r.digest))
        .collect();
    let mut keep: Vec<Digest> = records
        .iter()
        .filter(|r| r.built)
        .map(|r| r.digest.clone())
        .collect();
    for rev in revisions {
        for c in &rev.spec.containers {
            let Ok(reference) = Reference::parse(&c.image) else {
                continue;
            };
            let pinned = rev
                .status
                .container_statuses
                .iter()
                .find(|s| s.name == c.name && !s.image_digest.is_empty())
                .and_then(|s| Reference::parse(&s.image_digest).ok())
                .and_then(|r| r.digest().cloned());
            let digest = pinned.or_else(|| reference.digest().cloned()).or_else(|| {
                by_reference
                    .get(reference.to_string().as_str())
                    .map(|d| (*d).clone())
            });
            keep.extend(digest);
        }
    }
    keep.sort_by_key(|d| d.to_string());
    keep.dedup();
    keep
}

/// One garbage collection of the image store: everything no revision of `store` uses goes.
pub async fn collect_garbage(
    store: &dyn wisp_store::Store,
    images: &Images,
) -> Result<GcReport, String> {
    let key = wisp_api::kinds::storage_key(&wisp_api::kinds::REVISIONS);
    let list = store.list(&key, None).await.map_err(|e| e.to_string())?;
    // A revision that cannot be read might use anything: then nothing is collected.
    let revisions = list
        .items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<Revision>, _>>()
        .map_err(|e| format!("cannot read a revision, collecting nothing: {e}"))?;
    let records = images.store().records().map_err(|e| e.to_string())?;
    let keep = images_in_use(&revisions, &records);
    images.store().gc(&keep).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::Container;
    use wisp_api::serving::ContainerStatus;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn revision(image: &str, pinned: Option<&Digest>) -> Revision {
        let mut rev = Revision::default();
        rev.spec.containers.push(Container {
            name: "user-container".into(),
            image: image.into(),
            ..Default::default()
        });
        if let Some(d) = pinned {
            rev.status.container_statuses.push(ContainerStatus {
                name: "user-container".into(),
                image_digest: format!("{image}@{d}"),
            });
        }
        rev
    }

    fn record(reference: &str, d: &Digest, built: bool) -> ImageRecord {
        ImageRecord {
            reference: Reference::parse(reference).unwrap().to_string(),
            digest: d.clone(),
            built,
        }
    }

    #[test]
    fn keeps_what_revisions_pin_resolve_or_name_and_what_was_built_here() {
        let (pinned, moved, resolved, named, built, pulled) = (
            digest(1),
            digest(2),
            digest(3),
            digest(4),
            digest(5),
            digest(6),
        );
        let revisions = [
            // Pinned in status; its tag has moved on since.
            revision("127.0.0.1:5000/a:v1", Some(&pinned)),
            // Not pinned yet: the digest its tag resolved to.
            revision("127.0.0.1:5000/b:v1", None),
            // A digest in the spec.
            revision(&format!("127.0.0.1:5000/c@{named}"), None),
            // A host process: no image.
            revision("", None),
        ];
        let records = [
            record("127.0.0.1:5000/a:v1", &moved, false),
            record("127.0.0.1:5000/b:v1", &resolved, false),
            record("127.0.0.1:5000/local:v1", &built, true),
            record("127.0.0.1:5000/old:v1", &pulled, false),
        ];
        let keep = images_in_use(&revisions, &records);
        for d in [&pinned, &resolved, &named, &built] {
            assert!(keep.contains(d), "{d} kept");
        }
        for d in [&moved, &pulled] {
            assert!(!keep.contains(d), "{d} collected");
        }
    }
}
