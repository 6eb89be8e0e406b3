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
        "adb",
        "Debian's adb client and server, which reboot the simulated phone into fastboot mode",
    ),
    (
        "u-boot-tools",
        "mkimage, whose u-boot header the deploy's is compared with",
    ),
    (
        "android-sdk-libsparse-utils",
        "simg2img/img2simg, through which fastboot's apply-overlay changes sparse images",
    ),
    (
        "qemu-utils",
        "qemu-img, which makes the qemu guest disk that carries the overlay",
    ),
    (
        "e2fsprogs",
        "debugfs and mke2fs, which put the overlay into ext4 images and the guest disk",
    ),
    (
        "cpio",
        "GNU cpio, which must read the ramdisks Basalt writes",
    ),
    (
        "wget",
        "the simulated board's download_command when transfer_overlay fetches the overlay",
    ),
    (
        "qemu-system-x86",
        "the qemu board Basalt and lava-run run the same job on",
    ),
    ("linux-image-amd64", "that board's kernel"),
    ("busybox-static", "that board's userland (initramfs)"),
    (
        "docker.io",
        "the docker daemon a test starts of its own, for fastboot inside docker (docker:)",
    ),
];

/// Debian's LAVA dispatcher (`lava-run` 2023.01), which the side-by-side test runs.
pub const LAVA_DISPATCHER: &str = "lava-dispatcher";

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

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `apt-get update`, once per run of xtask however many installs follow it.
fn apt_update() -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let update = apt_get(&["update", "-q"])?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let _ = DONE.set(());
    Ok(())
}

fn apt_get(args: &[&str]) -> anyhow::Result<std::process::ExitStatus> {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")
}

/// Installs what is missing of `wanted`; `who` names what needs them. One install can take
/// away another wanted package (bookworm's qemu-system-x86 removes a backported qemu-utils,
/// which breaks its qemu-system-common), so what is missing after it is installed again.
pub fn ensure(wanted: &[(&'static str, &str)], who: &str) -> anyhow::Result<()> {
    install_missing(wanted, who)?;
    install_missing(wanted, who)
}

fn install_missing(wanted: &[(&'static str, &str)], who: &str) -> anyhow::Result<()> {
    let missing = missing(wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!("{who} needs Debian packages that are missing; as root, run: {command}");
    }
    println!("{who}: installing {}", missing.join(", "));
    apt_update()?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    let status = apt_get(&args)?;
    if !status.success() {
        bail!("`{command}` failed ({status})");
    }
    // pdudaemon's package starts its own service where systemd runs; the lab runs its own
    // instance on its own port, so a system one does not matter.
    Ok(())
}

/// Installs Debian's lava-dispatcher where it is missing and this is root (elsewhere the test
/// that needs it says how). Machines with a backported qemu-utils (10.x) cannot take it as
/// it is ("Breaks qemu-system-common (< 1:8.0+dfsg-5~)"): then qemu-utils goes back to
/// bookworm's 7.2, the version the rest of qemu is.
pub fn ensure_lava_dispatcher() -> anyhow::Result<()> {
    if installed(LAVA_DISPATCHER) || !is_root() {
        return Ok(());
    }
    println!("the tests: installing {LAVA_DISPATCHER} (lava-run, for the side-by-side test)");
    apt_update()?;
    // A plain install next to a newer qemu-utils would make apt choose what to remove; the
    // version decides beforehand.
    let qemu_utils = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "qemu-utils"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if qemu_utils.is_empty() || qemu_utils.starts_with("1:7.") {
        let status = apt_get(&["install", "-y", "--no-install-recommends", LAVA_DISPATCHER])?;
        if !status.success() {
            bail!("installing {LAVA_DISPATCHER} failed ({status})");
        }
        return Ok(());
    }
    let madison = Command::new("apt-cache")
        .args(["madison", "qemu-utils"])
        .output()
        .context("cannot run apt-cache")?;
    let versions = String::from_utf8_lossy(&madison.stdout).into_owned();
    let Some(bookworm) = versions
        .lines()
        .filter_map(|line| line.split('|').nth(1).map(str::trim))
        .find(|version| version.starts_with("1:7.2"))
    else {
        bail!(
            "{LAVA_DISPATCHER} does not install, and no qemu-utils 7.2 is available:\n{versions}"
        );
    };
    let pin = format!("qemu-utils={bookworm}");
    let status = apt_get(&[
        "install",
        "-y",
        "--no-install-recommends",
        "--allow-downgrades",
        LAVA_DISPATCHER,
        &pin,
    ])?;
    if !status.success() {
        bail!("installing {LAVA_DISPATCHER} with {pin} failed ({status})");
    }
    Ok(())
}
