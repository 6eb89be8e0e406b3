//! The boards' software: Debian's kernel and a busybox initramfs (`basalt_e2e::board`, which
//! the tests that boot a qemu board share), a modules tarball (`modules.tar.xz`, what kernel
//! CI jobs add to their ramdisks) whose `lib/modules/basalt-lab/modules.order` the u-boot
//! board's test looks for, and the simulated boards' images.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Writes `modules.tar.xz` into `dir` (kept if already there), with tar and xz as a kernel
/// build's `modules_install` output is packed.
fn modules(dir: &Path) -> anyhow::Result<()> {
    let tarball = dir.join("modules.tar.xz");
    if tarball.is_file() {
        return Ok(());
    }
    let staging = dir.join("modules-root");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("lib/modules/basalt-lab"))?;
    std::fs::write(
        staging.join("lib/modules/basalt-lab/modules.order"),
        "kernel/drivers/misc/basalt-lab.ko\n",
    )?;
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "-cJf"])
        .arg(&tarball)
        .args(["-C"])
        .arg(&staging)
        .arg("lib")
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tarball);
        bail!("building the modules tarball failed ({status})");
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

/// Writes `rootfs.tar.gz` into `dir` (kept if already there): the NFS root board D's jobs
/// deploy (a marker file; board D's shell is this machine's, which sees the export's copy).
fn rootfs(dir: &Path) -> anyhow::Result<()> {
    let tarball = dir.join("rootfs.tar.gz");
    if tarball.is_file() {
        return Ok(());
    }
    let staging = dir.join("rootfs-root");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("etc"))?;
    std::fs::write(
        staging.join("etc/basalt-lab-rootfs"),
        "the lab's NFS root\n",
    )?;
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "-czf"])
        .arg(&tarball)
        .args(["-C"])
        .arg(&staging)
        .arg(".")
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tarball);
        bail!("building the root file system tarball failed ({status})");
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

/// GRUB's first words on board G's serial cable, before it has read `grub.cfg`.
const GRUB_EMBEDDED: &str =
    "serial --unit=1 --speed=115200\nterminal_input serial\nterminal_output serial\n";

/// Board G's menu: one entry that does not boot, so a job must interrupt GRUB for its command
/// line, as LAVA's grub method does.
const GRUB_CFG: &str = r#"# Board G's GRUB menu (cargo xtask lab). Jobs press `c` at "for a command-line" and type
# their commands; left alone, the entry below only says so.
serial --unit=1 --speed=115200
terminal_input serial
terminal_output serial
set timeout=30
menuentry 'Basalt lab board: nothing installed, boot from the network' {
    echo 'Nothing is installed: interrupt GRUB and load a kernel over TFTP.'
    sleep 5
}
"#;

/// The modules board G's GRUB carries in its image (it loads none over the network): PXE
/// networking and TFTP, Linux loading and what LAVA's GRUB command sets call.
const GRUB_MODULES: &[&str] = &[
    "pxe",
    "net",
    "tftp",
    "linux",
    "gzio",
    "normal",
    "serial",
    "terminal",
    "echo",
    "test",
    "boot",
    "configfile",
    "sleep",
    "ls",
    "part_gpt",
    "part_msdos",
    "ext2",
    "chain",
];

/// Writes board G's GRUB into `dir` of the TFTP root: a PXE image (`core.0`, made by Debian's
/// grub-mkimage as grub-mknetdir makes one) and its menu, both rewritten at every `lab up`.
pub fn grub(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let embedded = dir.join("embedded.cfg");
    std::fs::write(&embedded, GRUB_EMBEDDED)?;
    std::fs::write(dir.join("grub.cfg"), GRUB_CFG)?;
    let image = dir.join("core.0");
    let status = Command::new("grub-mkimage")
        .args([
            "-O",
            "i386-pc-pxe",
            "-p",
            &format!("(tftp)/{}", super::layout::GRUB_DIR),
        ])
        .arg("-c")
        .arg(&embedded)
        .arg("-o")
        .arg(&image)
        .args(GRUB_MODULES)
        .status()
        .context("cannot run grub-mkimage: install grub-pc-bin")?;
    if !status.success() {
        let _ = std::fs::remove_file(&image);
        bail!("grub-mkimage failed ({status})");
    }
    Ok(())
}

/// Writes `vmlinuz`, `modules.tar.xz`, `rootfs.tar.gz`, `am335x-boneblack.dtb` and
/// `initramfs.cpio.gz` into `dir` (kept if already there).
pub fn build(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let vmlinuz = dir.join("vmlinuz");
    if !vmlinuz.is_file() {
        let kernel = basalt_e2e::board::newest_kernel().map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::copy(kernel, &vmlinuz).context("cannot copy the kernel")?;
    }
    modules(dir)?;
    rootfs(dir)?;
    // Board F's Android images: the fastboot client checks the boot image's magic.
    let boot = dir.join("boot.img");
    if !boot.is_file() {
        let mut image = b"ANDROID!".to_vec();
        image.extend((0..8192u32).map(|i| (i % 251) as u8));
        std::fs::write(&boot, image)?;
    }
    let system = dir.join("system.img");
    if !system.is_file() {
        std::fs::write(
            &system,
            "the simulated HiKey's system partition\n".repeat(512),
        )?;
    }
    // Board E's bootm loads a device tree; the simulated board checks only that it came.
    let dtb = dir.join("am335x-boneblack.dtb");
    if !dtb.is_file() {
        std::fs::write(&dtb, "the simulated BeagleBone's device tree\n")?;
    }
    // With the disk drivers: board A's health check is a plain qemu job, whose overlay
    // comes on LAVA's guest disk, mounted by UUID.
    let initramfs = dir.join("initramfs.cpio.gz");
    if !initramfs.is_file() {
        basalt_e2e::board::busybox_initramfs_with_disks(&initramfs)
            .map_err(|e| anyhow::anyhow!("building the initramfs: {e}"))?;
    }
    Ok(())
}
