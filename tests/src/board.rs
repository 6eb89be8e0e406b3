//! The software of a real x86 test board, shared by the lab (`cargo xtask lab`) and the tests
//! that boot one under qemu: Debian's installed kernel and a busybox initramfs built here.
//!
//! The initramfs's `/init` mounts the usual filesystems and starts a login shell on the
//! console with the prompt `root@basalt-lab:~# `; a job's test shell types its scripts into
//! it, so nothing else is needed on the board.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The prompt the board's shell shows.
pub const PROMPT: &str = "root@basalt-lab:~# ";

const INIT: &str = r#"#!/bin/busybox sh
# The lab board's init: filesystems, then a root shell on the console.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp
mount -t devpts devpts /dev/pts
hostname basalt-lab
echo "basalt lab board: userland up"
exec setsid cttyhack sh -l
"#;

const PROFILE: &str =
    "export PS1='root@basalt-lab:~# '\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n";

/// The newest Debian kernel installed under /boot.
pub fn newest_kernel() -> Result<PathBuf, String> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map_err(|e| format!("cannot read /boot: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels
        .pop()
        .ok_or_else(|| "no /boot/vmlinuz-*: install linux-image-amd64".to_owned())
}

/// The disk drivers a board with disks loads (IDE through PIIX, virtio), and ext4 (which
/// mounts ext2 too) with the crc32c it asks the crypto API for, and what they depend on.
const DISK_MODULES: &[&str] = &[
    "sd_mod",
    "ata_piix",
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
];

/// What udev does on a distribution's root file system, for what a LAVA job relies on: each
/// disk with an ext file system named in `/dev/disk/by-uuid/` (the UUID read from its
/// superblock: bytes 1128..1144, after the magic 53 ef at 1080).
const DISK_INIT: &str = r#"
for module in MODULES; do modprobe $module; done
mkdir -p /dev/disk/by-uuid
for disk in /dev/sd? /dev/vd?; do
    [ -b "$disk" ] || continue
    [ "$(od -An -tx1 -j1080 -N2 "$disk" | tr -d ' ')" = 53ef ] || continue
    id=$(od -An -tx1 -j1128 -N16 "$disk" | tr -d ' 
')
    uuid=$(echo "$id" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
    ln -sf "../../${disk#/dev/}" "/dev/disk/by-uuid/$uuid"
done
"#;

/// Writes the board's initramfs (`find . | cpio -o -H newc | gzip -9` of a busybox root) to
/// `path`.
pub fn busybox_initramfs(path: &Path) -> Result<(), String> {
    build_initramfs(path, false)
}

/// [`busybox_initramfs`] for a board with disks: the kernel's disk and ext4 modules are in
/// it, loaded at start, and each disk's file system is linked by UUID as udev links it, so
/// a job can mount a disk qemu attaches (LAVA's guest disk).
pub fn busybox_initramfs_with_disks(path: &Path) -> Result<(), String> {
    build_initramfs(path, true)
}

/// Copies `modules` and everything they need (by the kernel's `modules.dep`) below
/// `staging`, with a `modules.dep` of its own for busybox's modprobe.
fn copy_modules(staging: &Path, modules: &[&str]) -> Result<(), String> {
    let kernel = newest_kernel()?;
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("the kernel's file name has no release")?
        .to_owned();
    let source = Path::new("/lib/modules").join(&release);
    let dep = std::fs::read_to_string(source.join("modules.dep"))
        .map_err(|e| format!("{}/modules.dep: {e}", source.display()))?;
    let deps: std::collections::HashMap<&str, Vec<&str>> = dep
        .lines()
        .filter_map(|line| {
            let (module, needs) = line.split_once(':')?;
            Some((module, needs.split_whitespace().collect()))
        })
        .collect();
    let mut wanted: Vec<&str> = Vec::new();
    let mut queue: Vec<&str> = modules
        .iter()
        .filter_map(|name| {
            deps.keys().copied().find(|path| {
                Path::new(path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.split('.').next() == Some(name))
            })
        })
        .collect();
    while let Some(module) = queue.pop() {
        if wanted.contains(&module) {
            continue;
        }
        wanted.push(module);
        queue.extend(deps.get(module).into_iter().flatten().copied());
    }
    let target = staging.join("lib/modules").join(&release);
    let mut own_dep = String::new();
    for module in &wanted {
        let to = target.join(module);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::copy(source.join(module), &to)
            .map_err(|e| format!("{}: {e}", source.join(module).display()))?;
        let needs = deps.get(module).map(|d| d.join(" ")).unwrap_or_default();
        own_dep.push_str(&format!("{module}: {needs}\n"));
    }
    std::fs::write(target.join("modules.dep"), own_dep)
        .map_err(|e| format!("{}: {e}", target.display()))
}

fn build_initramfs(path: &Path, disks: bool) -> Result<(), String> {
    let staging = path.with_extension("root");
    let _ = std::fs::remove_dir_all(&staging);
    let io = |e: std::io::Error| format!("{}: {e}", staging.display());
    for sub in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin",
    ] {
        std::fs::create_dir_all(staging.join(sub)).map_err(io)?;
    }
    std::fs::copy("/bin/busybox", staging.join("bin/busybox"))
        .map_err(|e| format!("cannot copy /bin/busybox ({e}): install busybox-static"))?;
    let init = match disks {
        false => INIT.to_owned(),
        true => {
            copy_modules(&staging, DISK_MODULES)?;
            let setup = DISK_INIT.replace("MODULES", &DISK_MODULES.join(" "));
            INIT.replace(
                "hostname basalt-lab\n",
                &format!("{setup}hostname basalt-lab\n"),
            )
        }
    };
    std::fs::write(staging.join("init"), init).map_err(io)?;
    std::fs::write(staging.join("etc/profile"), PROFILE).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(staging.join("init"), std::fs::Permissions::from_mode(0o755))
        .map_err(io)?;
    let archive = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let status = Command::new("sh")
        .args(["-c", "find . | cpio -o -H newc --quiet | gzip -9"])
        .current_dir(&staging)
        .stdout(archive)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run cpio: {e}"))?;
    let _ = std::fs::remove_dir_all(&staging);
    if !status.success() {
        let _ = std::fs::remove_file(path);
        return Err(format!("building the initramfs failed ({status})"));
    }
    Ok(())
}
