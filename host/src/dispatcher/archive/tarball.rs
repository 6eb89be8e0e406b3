//! Tarballs (`nfsrootfs`, `modules`, overlays with `format: tar`), compressed in any way
//! LAVA's `untar_file` reads (recognised by their first bytes), unpacked into a directory or
//! appended to a cpio archive. Nothing in a tarball can reach outside where it goes: `..`
//! and absolute names are refused when appended and, when unpacked, tar-rs keeps every entry
//! (links included) inside the directory and writes through no symlink.

use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path};

use super::compression::Compression;
use super::cpio::{self, Header};

/// Why a tarball could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The tarball.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An entry could not be read, unpacked or appended.
    #[error("{path}: {what}")]
    Entry {
        /// The tarball.
        path: String,
        /// What went wrong, naming the entry where there is one.
        what: String,
    },
}

/// Opens `path` as a tar stream, decompressing what its first bytes say it is.
fn open(path: &Path) -> Result<tar::Archive<Box<dyn Read>>, TarError> {
    let open_error = |source| TarError::Open {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_error)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let compression = Compression::sniff(reader.fill_buf().map_err(open_error)?);
    if compression == Compression::Zip {
        return Err(TarError::Entry {
            path: path.display().to_string(),
            what: "a zip archive, not a tarball".into(),
        });
    }
    let decoder = compression.decoder(reader).map_err(open_error)?;
    Ok(tar::Archive::new(decoder))
}

/// Whether this process may set owners and make device nodes (LAVA's workers run as root).
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Unpacks the tarball at `path` into `dest` (created if missing), keeping modes, times and,
/// as root, owners. Returns the number of entries.
pub fn unpack(path: &Path, dest: &Path) -> Result<u64, TarError> {
    let entry_error = |what: String| TarError::Entry {
        path: path.display().to_string(),
        what,
    };
    std::fs::create_dir_all(dest)
        .map_err(|e| entry_error(format!("cannot create {}: {e}", dest.display())))?;
    let mut archive = open(path)?;
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(is_root());
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut count = 0;
    // Directories get their own modes at the end, deepest first, so that a read-only one
    // can still be filled (as tar does).
    let mut directories = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| entry_error(format!("not a tarball: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| entry_error(format!("corrupt or truncated: {e}")))?;
        let name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&name).into_owned();
        // Refused outright rather than skipped as tar-rs would: a tarball that tries to
        // leave its directory is not one to boot.
        let relative = relative_name(&name).map_err(entry_error)?;
        entry
            .unpack_in(dest)
            .map_err(|e| entry_error(format!("cannot unpack {name:?}: {}", chain(&e))))?;
        if entry.header().entry_type() == tar::EntryType::Directory {
            let mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
            let path = dest.join(&relative);
            set_mode(&path, mode | 0o700).map_err(&entry_error)?;
            directories.push((path, mode));
        }
        count += 1;
    }
    for (path, mode) in directories.into_iter().rev() {
        set_mode(&path, mode).map_err(&entry_error)?;
    }
    Ok(count)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// An error with its causes (tar-rs puts the reason in the source).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `name` as a relative path without `.` parts, or why it cannot be one; "" for the top
/// directory itself.
fn relative_name(name: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("entry {name:?} has an absolute name"));
            }
            Component::ParentDir => {
                return Err(format!("entry {name:?} climbs out with '..'"));
            }
        }
    }
    Ok(parts.join("/"))
}

/// Appends every entry of the tarball at `path` to `archive`, under `under` (a relative
/// directory such as `lib` or "" for the top; the caller checked it). Returns the number of
/// entries added.
pub fn append_to_cpio<W: std::io::Write>(
    path: &Path,
    under: &str,
    archive: &mut cpio::Writer<W>,
) -> Result<u64, TarError> {
    let entry_error = |what: String| TarError::Entry {
        path: path.display().to_string(),
        what,
    };
    let mut tarball = open(path)?;
    let entries = tarball
        .entries()
        .map_err(|e| entry_error(format!("not a tarball: {e}")))?;
    let mut count = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| entry_error(format!("corrupt or truncated: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let relative = relative_name(&raw).map_err(entry_error)?;
        let name = match (under.is_empty(), relative.is_empty()) {
            (_, true) if under.is_empty() => continue,
            (true, _) => relative,
            (false, true) => under.to_owned(),
            (false, false) => format!("{under}/{relative}"),
        };
        let header = entry.header();
        let kind = header.entry_type();
        let permissions = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        let size = entry.size();
        let file_type = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => cpio::S_IFREG,
            tar::EntryType::Directory => cpio::S_IFDIR,
            tar::EntryType::Symlink => cpio::S_IFLNK,
            tar::EntryType::Char => cpio::S_IFCHR,
            tar::EntryType::Block => cpio::S_IFBLK,
            tar::EntryType::Fifo => cpio::S_IFIFO,
            tar::EntryType::Link => {
                return Err(entry_error(format!(
                    "entry {raw:?} is a hard link, which cannot be added to a ramdisk"
                )));
            }
            // Metadata entries (pax, GNU long names) are read by tar-rs itself.
            _ => continue,
        };
        let mut cpio_header = Header::new(&name, file_type | permissions, 0, mtime);
        cpio_header.uid = header.uid().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        cpio_header.gid = header.gid().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            cpio_header.rdev = (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            );
        }
        let added = if file_type == cpio::S_IFLNK {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            cpio_header.filesize = target.len() as u32;
            archive.add(cpio_header, &mut &target[..])
        } else if file_type == cpio::S_IFREG {
            cpio_header.filesize = u32::try_from(size).map_err(|_| {
                entry_error(format!(
                    "entry {raw:?} is larger than a cpio archive holds (4 GiB)"
                ))
            })?;
            archive.add(cpio_header, &mut entry)
        } else {
            archive.add(cpio_header, &mut std::io::empty())
        };
        added.map_err(|e| entry_error(format!("entry {raw:?}: {e}")))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A tarball of `entries` (name, contents; a name ending in `/` is a directory, `->` in
    /// the contents makes a symlink), written raw so that bad names stay bad.
    pub(crate) fn tarball(entries: &[(&str, &str)], compression: Compression) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, contents) in entries {
            let mut header = tar::Header::new_gnu();
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            if let Some(target) = contents.strip_prefix("->") {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                header.set_size(0);
                header.set_mode(0o777);
            } else if name.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
            } else {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(contents.len() as u64);
                header.set_mode(0o644);
            }
            header.set_cksum();
            let data: &[u8] = match header.entry_type() {
                tar::EntryType::Regular => contents.as_bytes(),
                _ => b"",
            };
            builder.append(&header, data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        encoder.write_all(&tar).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_compressed_tarball_unpacks_with_its_links() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [
            Compression::None,
            Compression::Gz,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let path = dir.path().join("rootfs.tar");
            std::fs::write(
                &path,
                tarball(
                    &[
                        ("./etc/", ""),
                        ("./etc/hostname", "board\n"),
                        ("./bin", "->usr/bin"),
                    ],
                    compression,
                ),
            )
            .unwrap();
            let dest = dir.path().join(format!("root-{compression:?}"));
            assert_eq!(unpack(&path, &dest).unwrap(), 3);
            assert_eq!(
                std::fs::read_to_string(dest.join("etc/hostname")).unwrap(),
                "board\n"
            );
            assert_eq!(
                std::fs::read_link(dest.join("bin")).unwrap(),
                Path::new("usr/bin")
            );
        }
    }

    /// `..`, absolute names and writing through a symlink never leave the directory.
    #[test]
    fn entries_that_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let cases: [(&[(&str, &str)], &str); 3] = [
            (&[("../outside/evil", "x")], "climbs out"),
            (&[("/outside/evil", "x")], "absolute"),
            (
                &[
                    ("link", &format!("->{}", outside.display())),
                    ("link/evil", "x"),
                ],
                "cannot unpack",
            ),
        ];
        for (entries, expected) in cases {
            let path = dir.path().join("evil.tar");
            std::fs::write(&path, tarball(entries, Compression::None)).unwrap();
            let error = unpack(&path, &dir.path().join("dest")).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!outside.join("evil").exists(), "{entries:?}");
        }
    }

    #[test]
    fn a_truncated_tarball_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let whole = tarball(&[("big", &"x".repeat(100_000))], Compression::Gz);
        let path = dir.path().join("modules.tar.gz");
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let error = unpack(&path, &dir.path().join("dest")).unwrap_err();
        assert!(error.to_string().contains("modules.tar.gz"), "{error}");
    }

    #[test]
    fn appended_entries_land_under_their_directory_with_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modules.tar");
        std::fs::write(
            &path,
            tarball(
                &[("./lib/modules/6.1/", ""), ("./lib/modules/6.1/a.ko", "ko")],
                Compression::Xz,
            ),
        )
        .unwrap();
        let mut writer = cpio::Writer::new(Vec::new());
        assert_eq!(append_to_cpio(&path, "usr", &mut writer).unwrap(), 2);
        let bytes = writer.finish().unwrap();
        let mut reader = cpio::Reader::new(std::io::BufReader::new(&bytes[..]));
        let mut names = Vec::new();
        while let Some(header) = reader.next_entry().unwrap() {
            names.push(String::from_utf8(header.name).unwrap());
        }
        assert_eq!(
            names,
            [
                "usr",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/6.1",
                "usr/lib/modules/6.1/a.ko"
            ]
        );
        std::fs::write(&path, tarball(&[("../x", "x")], Compression::None)).unwrap();
        let error = append_to_cpio(&path, "", &mut cpio::Writer::new(Vec::new())).unwrap_err();
        assert!(error.to_string().contains("climbs out"), "{error}");
    }
}
