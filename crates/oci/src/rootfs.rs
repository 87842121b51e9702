//! A replica's root file system: overlayfs over the shared layers, or a shared flattened copy.
//!
//! Preferred: the image's unpacked layers (read-only, shared by every replica of every image
//! that has them) as overlayfs lower directories, with an upper and work directory of the
//! replica's own, mounted at `{replica_dir}/rootfs`. Starting a replica copies nothing, and
//! what it writes goes to its upper directory, thrown away with it.
//!
//! Fallback, when overlayfs cannot be used (not root, layers in marker format, the data
//! directory on a file system overlayfs refuses as upper, an option string too long for
//! the kernel): the image flattened once into `rootfs/<manifest hex>/` and shared *read-only*
//! by all its replicas ([`Rootfs::shared_read_only`] tells the spec builder to make the root
//! read-only and give `/tmp` a tmpfs).

use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::store::{Image, Store, StoreError, io_err};
use crate::unpack::LayerFormat;

/// How the root file system of a replica was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsKind {
    /// An overlayfs mount owned by this replica.
    Overlay { upper: PathBuf, work: PathBuf },
    /// The image's flattened directory, shared read-only.
    Shared,
}

/// A replica's root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// What to give runc as `root.path`.
    pub path: PathBuf,
    pub kind: RootfsKind,
}

impl Rootfs {
    /// True when replicas share this directory and the container must not write to it.
    pub fn shared_read_only(&self) -> bool {
        self.kind == RootfsKind::Shared
    }

    /// The overlay a replica with `replica_dir` would have had: for sweeping what a crashed
    /// daemon left mounted (`Rootfs::of_replica_dir(dir).release()`).
    pub fn of_replica_dir(replica_dir: &Path) -> Rootfs {
        Rootfs {
            path: replica_dir.join("rootfs"),
            kind: RootfsKind::Overlay {
                upper: replica_dir.join("upper"),
                work: replica_dir.join("work"),
            },
        }
    }

    /// Unmounts (overlay) and removes the replica's own directories. Idempotent.
    pub fn release(&self) -> Result<(), StoreError> {
        if let RootfsKind::Overlay { upper, work } = &self.kind {
            match rustix::mount::unmount(&self.path, UnmountFlags::DETACH) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(io_err("cannot unmount", &self.path)(e.into())),
            }
            for d in [upper, work, &self.path] {
                if d.exists() {
                    fs::remove_dir_all(d).map_err(io_err("cannot remove", d))?;
                }
            }
        }
        Ok(())
    }
}

/// Longest overlay option string the kernel takes in one page, with a margin.
const MAX_OVERLAY_OPTIONS: usize = 4000;

impl Store {
    /// Unpacks `image` if needed and gives the replica whose private directory is
    /// `replica_dir` a root file system (see the module docs). Call [`Rootfs::release`] when
    /// the replica is gone.
    pub fn mount_rootfs(&self, image: &Image, replica_dir: &Path) -> Result<Rootfs, StoreError> {
        let layers = self.unpack_image(image)?;
        if !layers.is_empty() && layers.iter().all(|(_, f)| *f == LayerFormat::Overlay) {
            match self.mount_overlay(&layers, replica_dir) {
                Ok(r) => return Ok(r),
                Err(e) => tracing::warn!(
                    error = %e,
                    "overlayfs mount failed; using a shared read-only flattened rootfs"
                ),
            }
        }
        Ok(Rootfs {
            path: self.flatten(image)?,
            kind: RootfsKind::Shared,
        })
    }

    fn mount_overlay(
        &self,
        layers: &[(PathBuf, LayerFormat)],
        replica_dir: &Path,
    ) -> Result<Rootfs, StoreError> {
        let upper = replica_dir.join("upper");
        let work = replica_dir.join("work");
        let target = replica_dir.join("rootfs");
        let rootfs = Rootfs::of_replica_dir(replica_dir);
        // Leftovers of an earlier replica with this directory.
        rootfs.release()?;
        for d in [&upper, &work, &target] {
            fs::create_dir_all(d).map_err(io_err("cannot create", d))?;
        }
        // overlayfs lists the top layer first.
        let mut lower = Vec::new();
        for (dir, _) in layers.iter().rev() {
            let s = dir.to_string_lossy();
            if s.contains([':', ',', '\\']) {
                return Err(io_err("cannot use as an overlay layer", dir)(
                    std::io::Error::other("the path contains ':', ',' or '\\'"),
                ));
            }
            lower.push(s.into_owned());
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        if options.len() > MAX_OVERLAY_OPTIONS {
            let _ = rootfs.release();
            return Err(io_err("too many layers to mount at", &target)(
                std::io::Error::other("the overlay option string exceeds one page"),
            ));
        }
        let data = std::ffi::CString::new(options)
            .map_err(|e| io_err("cannot mount overlayfs at", &target)(std::io::Error::other(e)))?;
        if let Err(e) = rustix::mount::mount(
            "overlay",
            &target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        ) {
            let _ = rootfs.release();
            return Err(io_err("cannot mount overlayfs at", &target)(e.into()));
        }
        Ok(rootfs)
    }
}
