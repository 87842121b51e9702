//! Tag-to-digest resolution, as Knative's revision reconciler does it: an image named by tag
//! is resolved once, when its revision is first run, and the digest is written to the
//! Revision's `status.containerStatuses[].imageDigest`; from then on (daemon restarts
//! included) the revision runs those bytes, whatever the tag points at later.

use wisp_oci::auth::Keychain;
use wisp_oci::pull::Images;
use wisp_oci::reference::Reference;

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
