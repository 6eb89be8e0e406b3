//! The injection against real e2fsprogs: images made with mke2fs, read back with debugfs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// `debugfs -R REQUEST` on the file system, what it printed on stdout.
fn ask(spec: &str, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request, spec])
        .output()
        .expect("debugfs runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tarball: directories, files with modes and owners, a symlink and a hard link.
fn tarball(path: &Path, gz: bool) {
    let file = std::fs::File::create(path).unwrap();
    let writer: Box<dyn std::io::Write> = match gz {
        true => Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        )),
        false => Box::new(file),
    };
    let mut builder = tar::Builder::new(writer);
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(1000);
        header.set_gid(100);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        builder.append_data(&mut header, name, data).unwrap();
    };
    add("lava-7/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "lava-7/bin/lava-test-case",
        tar::EntryType::Regular,
        0o755,
        b"#!/bin/sh\necho case\n",
        None,
    );
    add(
        "lava-7/environment",
        tar::EntryType::Regular,
        0o644,
        b"export A=1\n",
        None,
    );
    add(
        "lava-7/bin/lava-test-set",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("lava-test-case"),
    );
    add(
        "lava-7/bin/again",
        tar::EntryType::Link,
        0o755,
        b"",
        Some("lava-7/bin/lava-test-case"),
    );
    add(
        "lib/modules/6.1/extra.ko",
        tar::EntryType::Regular,
        0o644,
        b"module",
        None,
    );
    builder.into_inner().unwrap().flush().unwrap();
}

use std::io::Write;

fn ext4(dir: &Path, name: &str, mb: u64) -> std::path::PathBuf {
    let image = dir.join(name);
    create(&image, mb, "ext4", "rootfs").unwrap();
    image
}

#[test]
fn a_tarball_lands_in_an_ext4_image_through_the_images_own_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let image = ext4(dir.path(), "rootfs.ext4", 8);
    // A merged-/usr root: /lib is a symlink to usr/lib, which the tarball's lib/ must follow.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("setup"),
        "mkdir /usr\nmkdir /usr/lib\nsymlink /lib usr/lib\nwrite /dev/null /old\n",
    )
    .unwrap();
    let spec = image.to_str().unwrap().to_owned();
    Command::new("debugfs")
        .args(["-w", "-f", "setup", &spec])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    let tar = dir.path().join("overlay.tar.gz");
    tarball(&tar, true);
    let fs = FileSystem {
        image: image.clone(),
        offset: 0,
    };
    let injected = inject_tar(
        &fs,
        &TarInjection {
            tarball: &tar,
            under: "/",
            strip: None,
        },
        scratch.path(),
        deadline(),
    )
    .unwrap();
    assert_eq!(injected.files, 4);
    assert_eq!(
        ask(&spec, "cat /lava-7/bin/lava-test-case"),
        "#!/bin/sh\necho case\n"
    );
    assert_eq!(
        ask(&spec, "cat /lava-7/bin/again"),
        "#!/bin/sh\necho case\n"
    );
    assert_eq!(ask(&spec, "cat /usr/lib/modules/6.1/extra.ko"), "module");
    let stat = ask(&spec, "stat /lava-7/bin/lava-test-case");
    assert!(
        stat.contains("Mode:  0755") && stat.contains("User:  1000"),
        "{stat}"
    );
    assert!(
        ask(&spec, "stat /lava-7/bin/lava-test-set").contains("Fast link dest: \"lava-test-case\"")
    );
    // What was there stays.
    assert!(ask(&spec, "ls /").contains("old"));
    // A second injection writes over the first (LAVA removes before writing).
    inject_tar(
        &fs,
        &TarInjection {
            tarball: &tar,
            under: "/",
            strip: None,
        },
        scratch.path(),
        deadline(),
    )
    .unwrap();
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn the_guest_disk_holds_what_the_overlay_has_below_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("guest.raw");
    let uuid = create(&image, 4, "ext2", "LAVA").unwrap();
    let blkid = Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&image)
        .output();
    if let Ok(out) = blkid {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), uuid);
        }
    }
    let tar = dir.path().join("overlay.tar");
    tarball(&tar, false);
    let scratch = tempfile::tempdir().unwrap();
    let fs = FileSystem {
        image: image.clone(),
        offset: 0,
    };
    inject_tar(
        &fs,
        &TarInjection {
            tarball: &tar,
            under: "/",
            strip: Some("lava-7"),
        },
        scratch.path(),
        deadline(),
    )
    .unwrap();
    let spec = image.to_str().unwrap();
    assert_eq!(ask(spec, "cat /environment"), "export A=1\n");
    let root = ask(spec, "ls /");
    assert!(
        root.contains("bin") && !root.contains("lib") && !root.contains("lava-7"),
        "{root}"
    );
}

#[test]
fn a_partition_of_a_disk_image_is_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let part = ext4(dir.path(), "part.ext4", 4);
    let disk = dir.path().join("disk.img");
    // One MBR partition at 1 MiB holding the file system.
    let mut bytes = vec![0u8; 1 << 20];
    bytes[446 + 4] = 0x83;
    bytes[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    bytes[446 + 12..446 + 16].copy_from_slice(&8192u32.to_le_bytes());
    bytes[510] = 0x55;
    bytes[511] = 0xAA;
    bytes.extend(std::fs::read(&part).unwrap());
    std::fs::write(&disk, &bytes).unwrap();
    let found = partition::find(&disk, 0).unwrap();
    assert_eq!(found.start, 1 << 20);
    let tar = dir.path().join("overlay.tar");
    tarball(&tar, false);
    let scratch = tempfile::tempdir().unwrap();
    let fs = FileSystem {
        image: disk.clone(),
        offset: found.start,
    };
    inject_tar(
        &fs,
        &TarInjection {
            tarball: &tar,
            under: "/",
            strip: None,
        },
        scratch.path(),
        deadline(),
    )
    .unwrap();
    let spec = format!("{}?offset={}", disk.display(), 1 << 20);
    assert_eq!(ask(&spec, "cat /lava-7/environment"), "export A=1\n");
    assert_eq!(std::fs::read(&disk).unwrap()[..1 << 20], bytes[..1 << 20]);
}

#[test]
fn bad_images_and_full_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("overlay.tar");
    tarball(&tar, false);
    let scratch = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.img");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let what = TarInjection {
        tarball: &tar,
        under: "/",
        strip: None,
    };
    let error = inject_tar(
        &FileSystem {
            image: garbage,
            offset: 0,
        },
        &what,
        scratch.path(),
        deadline(),
    )
    .unwrap_err();
    assert!(matches!(error, FsImageError::NotExt { .. }), "{error}");
    assert!(error.is_job_error());
    // A file system too small for what goes in.
    let small = dir.path().join("small.ext2");
    create(&small, 1, "ext2", "small").unwrap();
    let big = dir.path().join("big.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&big).unwrap());
    let data = vec![1u8; 2 << 20];
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "big.bin", data.as_slice())
        .unwrap();
    builder.finish().unwrap();
    let error = inject_tar(
        &FileSystem {
            image: small,
            offset: 0,
        },
        &TarInjection {
            tarball: &big,
            under: "/",
            strip: None,
        },
        scratch.path(),
        deadline(),
    )
    .unwrap_err();
    assert!(matches!(error, FsImageError::NoSpace { .. }), "{error}");
    assert!(error.to_string().contains("no space left"), "{error}");
}

#[test]
fn names_debugfs_cannot_carry_are_refused() {
    for name in ["a\"b", "a\nb", "../up", "a/../../b"] {
        assert!(
            matches!(debugfs::components(name), Err(FsImageError::BadName(_))),
            "{name:?}"
        );
    }
}
