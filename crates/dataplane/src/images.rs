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

    /// The image pinned to a digest (`registry/repo@sha256:...`), or why it cannot be.
    pub async fn resolve(&self, image: &str) -> Result<String, String> {
        let reference = Reference::parse(image).map_err(|e| e.to_string())?;
        if reference.digest().is_some() {
            return Ok(reference.to_string());
        }
        match self.images.resolve(&reference, &self.keychain).await {
            Ok(digest) => Ok(reference.pinned(digest).to_string()),
            Err(e) => match self.images.store().record(&reference) {
                // Built locally (or resolved before): the store knows the digest.
                Ok(Some(record)) => Ok(reference.pinned(record.digest).to_string()),
                _ => Err(e.to_string()),
            },
        }
    }
}
