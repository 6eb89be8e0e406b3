//! The Debian packages Basalt builds and its lab runs on, installed when missing (as root;
//! otherwise the error says which command to run).

use std::process::Command;

use anyhow::{bail, Context};

/// What every build links: libzmq with CURVE (see `.cargo/config.toml`).
pub const BUILD: &[(&str, &str)] = &[(
    "libzmq3-dev",
    "libzmq built with libsodium, so the master-slave link can be encrypted",
)];

/// Tools the tests compare Basalt's formats against, and what for.
pub const TEST: &[(&str, &str)] = &[
    (
        "fastboot",
        "the fastboot client the fastboot deploy and boot drive, against the simulated board",
    ),
    (
        "u-boot-tools",
        "mkimage, whose u-boot header the deploy's is compared with",
    ),
    (
        "cpio",
        "GNU cpio, which must read the ramdisks Basalt writes",
    ),
    (
        "wget",
        "the simulated board's download_command when transfer_overlay fetches the overlay",
    ),
];

/// Package, and what the lab uses it for.
pub const LAB: &[(&str, &str)] = &[
    ("qemu-system-x86", "the boards' machines"),
    ("linux-image-amd64", "the boards' kernel"),
    (
        "busybox-static",
        "the boards' userland (initramfs) and the images HTTP server",
    ),
    ("cpio", "packing the initramfs"),
    ("u-boot-qemu", "board B's firmware (qemu-x86/u-boot.rom)"),
    ("ipxe-qemu", "boards C's and G's NIC firmware (iPXE ROM)"),
    (
        "grub-pc-bin",
        "board G's GRUB (grub-mkimage makes its PXE image)",
    ),
    (
        "tftpd-hpa",
        "the worker's TFTP server (board D fetches over TFTP)",
    ),
    ("u-boot-tools", "mkimage, which builds board D's FIT images"),
    (
        "fastboot",
        "the fastboot client that flashes and boots board F",
    ),
    ("ser2net", "boards B's, C's and G's console server"),
    ("telnet", "the console client (connection_command)"),
    ("socat", "boards B's, C's and G's serial cables (pty pairs)"),
    (
        "pdudaemon",
        "boards B's and C's PDU daemon (localcmdline driver)",
    ),
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", package])
        .output()
        .map(|out| out.status.success() && out.stdout.starts_with(b"ii"))
        .unwrap_or(false)
}

/// The packages of `wanted` not installed yet.
pub fn missing(wanted: &[(&'static str, &str)]) -> Vec<&'static str> {
    wanted
        .iter()
        .map(|(package, _)| *package)
        .filter(|p| !installed(p))
        .collect()
}

/// Installs what is missing of `wanted`; `who` names what needs them.
pub fn ensure(wanted: &[(&'static str, &str)], who: &str) -> anyhow::Result<()> {
    let missing = missing(wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        bail!("{who} needs Debian packages that are missing; as root, run: {command}");
    }
    println!("{who}: installing {}", missing.join(", "));
    let update = Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let status = Command::new("sh")
        .args(["-c", &command])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("`{command}` failed ({status})");
    }
    // pdudaemon's package starts its own service where systemd runs; the lab runs its own
    // instance on its own port, so a system one does not matter.
    Ok(())
}
