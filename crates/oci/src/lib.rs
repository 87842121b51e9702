//! OCI images for wisp's container replicas: from a reference to a root file system and a
//! runc runtime spec.
//!
//! Why a crate of its own: images are the one part of running containers that talks to the
//! network (registries) and owns durable state (the blob and layer store), and all of it can
//! be tested without runc. `wisp-runtime`'s OCI backend calls it to get a rootfs and a
//! `config.json`; the CLI calls it for `wisp build`. It must not start processes, know about
//! revisions' lifecycles or read the object store: callers resolve Secrets into a
//! [`Keychain`] and tell it which digests are still in use.
//!
//! The path of an image, by module:
//!
//! 1. [`reference`]: `busybox` → `docker.io/library/busybox:latest`.
//! 2. [`registry`] + [`auth`]: the tag resolved to a digest when the Revision is created
//!    ([`Images::resolve`]); manifests, config and layers fetched, every byte checked
//!    ([`digest`]), into the [`store`].
//! 3. [`manifest`]: the platform's manifest chosen from an index.
//! 4. [`store`] + [`unpack`]: each layer unpacked once per digest (gzip, zstd, whiteouts);
//!    [`rootfs`]: overlayfs over the shared layers per replica, or a shared read-only
//!    flattened copy.
//! 5. [`spec`]: the runtime spec from the image config and the Kubernetes container.
//! 6. [`Store::gc`]: whatever no revision pins is removed.
//!
//! [`build`] makes images from directories for `wisp build`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod build;
pub mod digest;
pub mod manifest;
pub mod pull;
pub mod quantity;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod spec;
pub mod store;
pub mod unpack;

pub use auth::{Credential, Keychain};
pub use build::{BuildSpec, Built};
pub use digest::Digest;
pub use manifest::{ContainerConfig, ImageConfig, Platform};
pub use pull::{Images, PullError};
pub use reference::Reference;
pub use registry::{Client, ClientConfig, RegistryError, RetryPolicy};
pub use rootfs::{Rootfs, RootfsKind};
pub use spec::{SpecError, SpecOptions};
pub use store::{GcReport, Image, Store, StoreError};
pub use unpack::LayerFormat;
