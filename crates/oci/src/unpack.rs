//! Layer extraction and flattening: tar streams to directories, whiteouts applied.
//!
//! Each layer is extracted on its own into a directory (`layers/<hex>/fs`) so that replicas
//! of every image built on it share it. Whiteouts are kept in one of two forms, chosen once
//! per store:
//!
//! - [`LayerFormat::Overlay`] (root with `CAP_MKNOD` and `CAP_SYS_ADMIN`): the kernel's own
//!   form, so layer directories are overlayfs lower directories as they are. `.wh.name`
//!   becomes a 0/0 character device `name`; `.wh..wh..opq` becomes the
//!   `trusted.overlay.opaque=y` xattr on its directory.
//! - [`LayerFormat::Markers`] (anything else): the tar form, `.wh.` files kept as empty files.
//!   Such layers can only be used flattened.
//!
//! [`flatten`] applies layer directories of either form, bottom to top, onto one directory;
//! files are hard links to the layers' (copy-free, the inode is shared) and a copy only
//! across file systems.
//!
//! Safety: an entry's path is refused if it has a `..` component, and no entry is ever
//! written through a symlink (every parent on the way is checked to be a real directory), so
//! a hostile layer cannot write outside its directory. Symlink *targets* are stored as they
//! are: they are only ever resolved inside the container.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, XattrFlags};
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use serde::{Deserialize, Serialize};

use crate::manifest::Compression;

pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How whiteouts are kept in unpacked layer directories (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerFormat {
    Overlay,
    Markers,
}

/// Why a layer could not be extracted or applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the layer has an entry {path:?} that climbs out of the image with '..'")]
    Traversal { path: String },
    #[error("the layer writes {path:?} through a symlink, which could escape the image")]
    ThroughSymlink { path: String },
    #[error(
        "the layer hard-links {path:?} to {target:?}, which is not an earlier file of the same layer"
    )]
    BadHardLink { path: String, target: String },
    #[error("the layer's data is not a valid {compression} tar stream: {source}")]
    Format {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A reader of the uncompressed tar stream of a layer blob.
pub(crate) fn decompress<'a, R: BufRead + 'a>(
    compression: Compression,
    reader: R,
) -> Box<dyn Read + 'a> {
    match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ZstdFrames {
            src: reader,
            dec: FrameDecoder::new(),
            in_frame: false,
        }),
    }
}

pub(crate) fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// A zstd stream of any number of frames, skippable frames skipped (ruzstd's
/// `StreamingDecoder` reads one frame).
struct ZstdFrames<R> {
    src: R,
    dec: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                if self.dec.can_collect() > 0 {
                    return self.dec.read(buf);
                }
                if self.dec.is_finished() {
                    self.in_frame = false;
                    continue;
                }
                self.dec
                    .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                continue;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.src).take(length.into()), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "truncated zstd skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
    }
}

/// Counts of what extraction did, for logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExtractStats {
    pub entries: u64,
    pub whiteouts: u64,
    /// Device nodes left out because this process may not create them.
    pub skipped_devices: u64,
}

/// The components of a tar path, with `.` and leading `/` dropped; `..` refused.
fn clean_components(raw: &Path) -> Result<Vec<OsString>, UnpackError> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(UnpackError::Traversal {
                    path: raw.display().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Makes sure every directory on the way to `root/components[..n]` exists and is a real
/// directory (never a symlink); creates missing ones.
fn ensure_parents(
    root: &Path,
    parents: &[OsString],
    shown: &Path,
    as_root: bool,
) -> Result<PathBuf, UnpackError> {
    let mut dir = root.to_path_buf();
    for c in parents {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    path: shown.display().to_string(),
                });
            }
            Ok(_) => {
                // A file where a directory must be: the later entry wins, as in Docker.
                fs::remove_file(&dir).map_err(io_err("cannot replace", &dir))?;
                make_dir(&dir, as_root)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&dir, as_root)?,
            Err(e) => return Err(io_err("cannot inspect", &dir)(e)),
        }
    }
    Ok(dir)
}

fn make_dir(dir: &Path, as_root: bool) -> Result<(), UnpackError> {
    fs::create_dir(dir).map_err(io_err("cannot create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err("cannot set mode of", dir))?;
    if as_root {
        std::os::unix::fs::lchown(dir, Some(0), Some(0)).map_err(io_err("cannot chown", dir))?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("cannot remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("cannot remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot inspect", path)(e)),
    }
}

fn mknod(path: &Path, kind: FileType, mode: u32, dev: u64) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        Mode::from_raw_mode(mode & 0o7777),
        dev,
    )
    .map_err(io::Error::from)
}

/// Extracts one layer's tar stream into `root` (an empty directory), in `format`.
/// `as_root` says whether ownership and device nodes can be restored.
pub(crate) fn extract(
    tar_stream: impl Read,
    root: &Path,
    format: LayerFormat,
    as_root: bool,
) -> Result<ExtractStats, UnpackError> {
    let mut archive = tar::Archive::new(tar_stream);
    archive.set_preserve_permissions(true);
    // Ownership is restored here, not by the tar crate, which refuses empty numeric fields
    // that Go's archive/tar (and so Docker) reads as 0.
    archive.set_preserve_ownerships(false);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut stats = ExtractStats::default();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let format_err = |source| UnpackError::Format {
        compression: "tar",
        source,
    };
    for entry in archive.entries().map_err(format_err)? {
        let mut entry = entry.map_err(format_err)?;
        stats.entries += 1;
        let raw = entry.path().map_err(format_err)?.into_owned();
        let comps = clean_components(&raw)?;
        let Some((name, parents)) = comps.split_last() else {
            continue; // the archive's root, "./"
        };
        let name_str = name.to_string_lossy();
        // Whiteouts.
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            let dir = ensure_parents(root, parents, &raw, as_root)?;
            stats.whiteouts += 1;
            if name_str == OPAQUE_MARKER {
                match format {
                    LayerFormat::Overlay => {
                        rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                            .map_err(|e| io_err("cannot mark opaque", &dir)(e.into()))?;
                    }
                    LayerFormat::Markers => {
                        let p = dir.join(OPAQUE_MARKER);
                        fs::write(&p, b"").map_err(io_err("cannot write", &p))?;
                    }
                }
            } else if hidden.starts_with(WHITEOUT_PREFIX) {
                // `.wh..wh.*`: aufs bookkeeping, meaningless here.
            } else {
                match format {
                    LayerFormat::Overlay => {
                        let p = dir.join(hidden);
                        remove_any(&p)?;
                        mknod(&p, FileType::CharacterDevice, 0, 0)
                            .map_err(io_err("cannot create whiteout", &p))?;
                    }
                    LayerFormat::Markers => {
                        let p = dir.join(name);
                        remove_any(&p)?;
                        fs::write(&p, b"").map_err(io_err("cannot write", &p))?;
                    }
                }
            }
            continue;
        }
        let parent = ensure_parents(root, parents, &raw, as_root)?;
        let dest = parent.join(name);
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let existing = fs::symlink_metadata(&dest).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove_any(&dest)?;
                    make_dir(&dest, false)?;
                }
                None => make_dir(&dest, false)?,
            }
            if as_root {
                let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
                std::os::unix::fs::lchown(&dest, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err("cannot chown", &dest))?;
            }
            dir_modes.push((dest, mode));
            continue;
        }
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            remove_any(&dest)?;
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(format_err)?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let bad = || UnpackError::BadHardLink {
                path: raw.display().to_string(),
                target: link.display().to_string(),
            };
            let target_comps = clean_components(&link)?;
            let Some((t_name, t_parents)) = target_comps.split_last() else {
                return Err(bad());
            };
            let mut target = root.to_path_buf();
            for c in t_parents {
                target.push(c);
                if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                    return Err(bad());
                }
            }
            target.push(t_name);
            if !fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                return Err(bad());
            }
            if existing.is_some() {
                remove_any(&dest)?;
            }
            fs::hard_link(&target, &dest).map_err(io_err("cannot hard-link", &dest))?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            if existing.is_some() {
                remove_any(&dest)?;
            }
            let (file_type, dev) = if kind.is_fifo() {
                (FileType::Fifo, 0)
            } else {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let t = if kind.is_character_special() {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                (t, rustix::fs::makedev(major, minor))
            };
            if !kind.is_fifo() && !as_root {
                stats.skipped_devices += 1;
                continue;
            }
            mknod(&dest, file_type, mode, dev).map_err(io_err("cannot create device", &dest))?;
            if as_root {
                let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
                std::os::unix::fs::lchown(&dest, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err("cannot chown", &dest))?;
            }
        } else if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        } else {
            // Regular files (and unknown types, which POSIX says are files) and symlinks.
            entry.unpack(&dest).map_err(|e| UnpackError::Format {
                compression: "tar",
                source: io::Error::new(e.kind(), format!("{}: {e}", raw.display())),
            })?;
            if as_root {
                let header = entry.header();
                let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
                std::os::unix::fs::lchown(&dest, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err("cannot chown", &dest))?;
                if !kind.is_symlink() {
                    // chown clears set-id bits: put the mode back.
                    fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o7777))
                        .map_err(io_err("cannot set mode of", &dest))?;
                }
            }
        }
    }
    // Directory modes last, deepest first, so a read-only directory does not stop its own
    // contents from being written.
    for (dir, mode) in dir_modes.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err("cannot set mode of", dir))?;
    }
    Ok(stats)
}

/// Applies layer directories (bottom first) onto `dest`, as overlayfs would show them merged.
pub(crate) fn flatten(
    layers: &[(PathBuf, LayerFormat)],
    dest: &Path,
    as_root: bool,
) -> Result<(), UnpackError> {
    for (layer, format) in layers {
        apply_dir(layer, dest, *format, as_root)?;
    }
    Ok(())
}

fn is_opaque(dir: &Path, format: LayerFormat) -> bool {
    match format {
        LayerFormat::Markers => dir.join(OPAQUE_MARKER).exists(),
        LayerFormat::Overlay => {
            let mut buf = [0u8; 8];
            matches!(
                rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf[..]),
                Ok(n) if &buf[..n] == b"y"
            )
        }
    }
}

fn apply_dir(
    src: &Path,
    dest: &Path,
    format: LayerFormat,
    as_root: bool,
) -> Result<(), UnpackError> {
    let entries = fs::read_dir(src).map_err(io_err("cannot read", src))?;
    for entry in entries {
        let entry = entry.map_err(io_err("cannot read", src))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let from = entry.path();
        let to = dest.join(&name);
        let meta = fs::symlink_metadata(&from).map_err(io_err("cannot inspect", &from))?;
        let ft = meta.file_type();
        if format == LayerFormat::Markers && name_str.starts_with(WHITEOUT_PREFIX) {
            if name_str != OPAQUE_MARKER
                && !name_str[WHITEOUT_PREFIX.len()..].starts_with(WHITEOUT_PREFIX)
            {
                remove_any(&dest.join(&name_str[WHITEOUT_PREFIX.len()..]))?;
            }
            continue;
        }
        if format == LayerFormat::Overlay && ft.is_char_device() && meta.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if ft.is_dir() {
            let existing = fs::symlink_metadata(&to).ok();
            let keep = existing.as_ref().is_some_and(|m| m.is_dir()) && !is_opaque(&from, format);
            if !keep {
                remove_any(&to)?;
                fs::create_dir(&to).map_err(io_err("cannot create directory", &to))?;
            }
            if as_root {
                std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
                    .map_err(io_err("cannot chown", &to))?;
            }
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755))
                .map_err(io_err("cannot set mode of", &to))?;
            apply_dir(&from, &to, format, as_root)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err("cannot set mode of", &to))?;
            continue;
        }
        remove_any(&to)?;
        if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("cannot read link", &from))?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(io_err("cannot create symlink", &to))?;
            if as_root {
                std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
                    .map_err(io_err("cannot chown", &to))?;
            }
        } else if ft.is_file() {
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).map_err(io_err("cannot copy", &to))?;
                if as_root {
                    std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
                        .map_err(io_err("cannot chown", &to))?;
                }
            }
        } else if as_root || ft.is_fifo() {
            let kind = if ft.is_fifo() {
                FileType::Fifo
            } else if ft.is_char_device() {
                FileType::CharacterDevice
            } else if ft.is_block_device() {
                FileType::BlockDevice
            } else {
                continue; // sockets: nothing to carry over
            };
            mknod(&to, kind, meta.mode(), meta.rdev())
                .map_err(io_err("cannot create device", &to))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_size(data.len() as u64);
            h.set_mtime(0);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // Bypass the builder's own path checks, so hostile paths can be written.
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType as E;

    #[test]
    fn refuses_traversal_and_symlink_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("a/../../etc/passwd", E::Regular, b"x", None)]);
        let e = extract(&t[..], dir.path(), LayerFormat::Markers, false).unwrap_err();
        assert!(matches!(e, UnpackError::Traversal { .. }), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("evil", E::Symlink, b"", Some("/tmp")),
            ("evil/owned", E::Regular, b"x", None),
        ]);
        let e = extract(&t[..], dir.path(), LayerFormat::Markers, false).unwrap_err();
        assert!(matches!(e, UnpackError::ThroughSymlink { .. }), "{e}");
        assert!(e.to_string().contains("evil/owned"));

        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("link", E::Link, b"", Some("../outside"))]);
        let e = extract(&t[..], dir.path(), LayerFormat::Markers, false).unwrap_err();
        assert!(matches!(e, UnpackError::Traversal { .. }), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("link", E::Link, b"", Some("missing"))]);
        let e = extract(&t[..], dir.path(), LayerFormat::Markers, false).unwrap_err();
        assert!(matches!(e, UnpackError::BadHardLink { .. }), "{e}");
    }

    #[test]
    fn extracts_files_links_and_markers_then_flattens() {
        let base = tempfile::tempdir().unwrap();
        let l1 = base.path().join("l1");
        let l2 = base.path().join("l2");
        let out = base.path().join("out");
        for d in [&l1, &l2, &out] {
            fs::create_dir(d).unwrap();
        }
        let t1 = tar_of(&[
            ("./", E::Directory, b"", None),
            ("etc/", E::Directory, b"", None),
            ("etc/keep", E::Regular, b"keep", None),
            ("etc/gone", E::Regular, b"gone", None),
            ("dir/old", E::Regular, b"old", None),
            ("bin/tool", E::Regular, b"#!", None),
            ("bin/alias", E::Symlink, b"", Some("tool")),
            ("bin/hard", E::Link, b"", Some("bin/tool")),
            ("abs", E::Symlink, b"", Some("/etc/keep")),
        ]);
        let s = extract(&t1[..], &l1, LayerFormat::Markers, false).unwrap();
        assert_eq!(s.entries, 9);
        assert_eq!(fs::read(l1.join("bin/hard")).unwrap(), b"#!");
        assert_eq!(
            fs::read_link(l1.join("abs")).unwrap(),
            Path::new("/etc/keep")
        );
        let t2 = tar_of(&[
            ("etc/.wh.gone", E::Regular, b"", None),
            ("dir/.wh..wh..opq", E::Regular, b"", None),
            ("dir/new", E::Regular, b"new", None),
            ("abs", E::Regular, b"now a file", None),
        ]);
        let s = extract(&t2[..], &l2, LayerFormat::Markers, false).unwrap();
        assert_eq!(s.whiteouts, 2);
        assert!(l2.join("etc/.wh.gone").exists());
        flatten(
            &[
                (l1.clone(), LayerFormat::Markers),
                (l2.clone(), LayerFormat::Markers),
            ],
            &out,
            false,
        )
        .unwrap();
        assert_eq!(fs::read(out.join("etc/keep")).unwrap(), b"keep");
        assert!(!out.join("etc/gone").exists());
        assert!(!out.join("etc/.wh.gone").exists());
        assert!(!out.join("dir/old").exists());
        assert!(!out.join("dir/.wh..wh..opq").exists());
        assert_eq!(fs::read(out.join("dir/new")).unwrap(), b"new");
        assert_eq!(fs::read(out.join("abs")).unwrap(), b"now a file");
        assert_eq!(
            fs::read_link(out.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        // Files are shared with the layer, not copied.
        let a = fs::metadata(out.join("etc/keep")).unwrap();
        let b = fs::metadata(l1.join("etc/keep")).unwrap();
        assert_eq!(a.ino(), b.ino());
    }

    #[test]
    fn zstd_multi_frame_and_skippable() {
        let one = ruzstd::encoding::compress_to_vec(
            &b"hello "[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let two = ruzstd::encoding::compress_to_vec(
            &b"world"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut stream = one;
        // A skippable frame: magic 0x184D2A50, length 3, payload.
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        stream.extend_from_slice(&two);
        let mut out = String::new();
        decompress(Compression::Zstd, &stream[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
        let mut out = Vec::new();
        let e =
            decompress(Compression::Zstd, &b"\x28\xb5\x2f\xfdgarbage"[..]).read_to_end(&mut out);
        assert!(e.is_err());
    }
}
