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

/// Writes the board's initramfs (`find . | cpio -o -H newc | gzip -9` of a busybox root) to
/// `path`.
pub fn busybox_initramfs(path: &Path) -> Result<(), String> {
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
    std::fs::write(staging.join("init"), INIT).map_err(io)?;
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
