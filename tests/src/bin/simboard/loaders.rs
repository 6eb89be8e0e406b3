//! The bootloaders the simulated board can show: each one's banner, the prompt that offers
//! to stop autoboot and the key that does, its command prompt, and what its commands do.
//!
//! They are written from what each real bootloader prints where LAVA's device types look
//! (`constants` of base.jinja2 and each type's `bootloader_prompt`), so a boot method that
//! waits for the wrong text or sends the wrong key fails here as it would on a board.

use std::path::PathBuf;

use crate::tftp::{check_fit, Files};

/// Which bootloader the board runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    UBoot,
    Grub,
    /// UEFI firmware whose boot menu has an entry that starts GRUB over the network.
    GrubEfi,
    /// A HiKey left in fastboot mode by a flash: any key sends it on to GRUB, which boots the
    /// installed system by itself (LAVA's grub sequence).
    FastbootGrub,
    Ipxe,
    Barebox,
    Depthcharge,
}

/// The UEFI boot menu's entries, as `[N] label` lines.
pub const UEFI_MENU: &[&str] = &[
    "Linux from SATA",
    "LAVA PXE Grub",
    "Shell",
    "Boot Manager",
    "Reboot",
    "Shutdown",
];

/// The UEFI entry that starts GRUB.
pub const UEFI_GRUB_ENTRY: &str = "LAVA PXE Grub";

/// What a command did.
pub enum Outcome {
    /// Printed this and returned to the prompt.
    Prompt(String),
    /// Handed over to the kernel, after printing this.
    Boot(String),
    /// Waits for the host without a word until the power changes (u-boot's `fastboot`).
    Hold,
}

/// What the commands so far set up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// A kernel was loaded (`linux`, `kernel`, `tftpboot`).
    pub kernel: bool,
    /// The NFS root the kernel command line names.
    pub nfsroot: Option<PathBuf>,
}

impl Loader {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "u-boot" => Self::UBoot,
            "grub" => Self::Grub,
            "grub-efi" => Self::GrubEfi,
            "fastboot-grub" => Self::FastbootGrub,
            "ipxe" => Self::Ipxe,
            "barebox" => Self::Barebox,
            "depthcharge" => Self::Depthcharge,
            _ => return None,
        })
    }

    /// What the board prints at power-on, before the interrupt prompt.
    pub fn banner(self) -> &'static str {
        match self {
            Self::UBoot => "\nU-Boot SPL 2024.01 (simulated)\nU-Boot 2024.01 (simboard)\nDRAM:  512 MiB\n",
            Self::Grub => "\nSeaBIOS (version simulated)\nBooting from Hard Disk...\n\n                             GNU GRUB  version 2.06\n\n",
            Self::GrubEfi => "\nEFI stub: Booting from UEFI (simulated)\nX-Gene Mustang Board\nBoot firmware (version 1.1.0 built at 12:00:00 on Jan  1 2017)\n",
            Self::FastbootGrub => "\nUEFI firmware (simulated HiKey)\n",
            Self::Ipxe => "\niPXE 1.21.1 -- Open Source Network Boot Firmware -- http://ipxe.org\nFeatures: DNS HTTP iSCSI TFTP AoE ELF MBOOT PXE bzImage Menu PXEXT\n\n",
            Self::Barebox => "\nbarebox 2023.01.0 #1 (simulated)\n\nBoard: TI AM335x BeagleBone Black\nnetfs: eth0: link up\n",
            Self::Depthcharge => "\ncoreboot-4.0 (simulated) bootblock starting...\n\nStarting depthcharge on Jaq...\n",
        }
    }

    /// The line that offers to stop autoboot (`None`: the bootloader stops by itself).
    pub fn interrupt_prompt(self) -> Option<&'static str> {
        match self {
            Self::UBoot => Some("Hit any key to stop autoboot"),
            Self::Grub => Some("Use the ^ and v keys to select which entry is highlighted.\n      Press enter to boot the selected OS, `e' to edit the commands\n      before booting or `c' for a command-line."),
            Self::GrubEfi => Some("The default boot selection will start in   5 seconds"),
            Self::FastbootGrub => Some("Android Fastboot mode"),
            Self::Ipxe => Some("Press Ctrl-B for the iPXE command line..."),
            Self::Barebox => Some("Hit m for menu or any other key to stop autoboot"),
            Self::Depthcharge => None,
        }
    }

    /// Whether `byte` stops autoboot.
    pub fn stops(self, byte: u8) -> bool {
        match self {
            Self::UBoot | Self::Barebox | Self::GrubEfi | Self::FastbootGrub => true,
            Self::Grub => byte == b'c',
            Self::Ipxe => byte == 0x02,
            Self::Depthcharge => false,
        }
    }

    /// The command prompt.
    pub fn prompt(self) -> &'static str {
        match self {
            Self::UBoot => "=> ",
            Self::Grub => "grub> ",
            Self::GrubEfi => "Start: ",
            Self::FastbootGrub => "",
            Self::Ipxe => "iPXE> ",
            Self::Barebox => "barebox@TI AM335x BeagleBone black:/ ",
            Self::Depthcharge => "dpch: ",
        }
    }

    /// What the board prints when it stops at its prompt by itself (depthcharge's start
    /// message, which LAVA waits for).
    pub fn start_message(self) -> &'static str {
        match self {
            Self::Depthcharge => "Starting netboot on veyron_jaq...\n",
            _ => "",
        }
    }

    /// Runs one command line.
    pub fn command(self, line: &str, loaded: &mut Loaded, files: Option<&Files>) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        let name = words.first().copied().unwrap_or("");
        if name.is_empty() {
            return Outcome::Prompt(String::new());
        }
        if let Some(root) = nfs_root_of(line) {
            loaded.nfsroot = Some(root);
        }
        match self {
            Self::UBoot => match name {
                "setenv" | "saveenv" => Outcome::Prompt(String::new()),
                "printenv" => Outcome::Prompt("bootdelay=3\nbaudrate=115200\n".into()),
                "dhcp" => Outcome::Prompt(
                    "BOOTP broadcast 1\nDHCP client bound to address 10.0.2.15 (2 ms)\n".into(),
                ),
                "tftp" | "tftpboot" => Outcome::Prompt(
                    "Using ethernet@0 device\nTFTP from server 10.0.2.2\nBytes transferred = 4194304 (400000 hex)\n".into(),
                ),
                "boot" | "bootz" | "booti" | "bootm" => Outcome::Boot(String::new()),
                // `fastboot <usb controller>`: fastboot mode until the board is reset.
                "fastboot" => Outcome::Hold,
                // The environment's boot scripts (mmcboot, bootcmd) boot what is installed.
                "run" if words.get(1).is_some_and(|s| s.ends_with("boot") || *s == "bootcmd") => {
                    Outcome::Boot(String::new())
                }
                "run" => Outcome::Prompt(String::new()),
                other => Outcome::Prompt(format!("Unknown command '{other}' - try 'help'\n")),
            },
            Self::Grub | Self::GrubEfi | Self::FastbootGrub => match name {
                "linux" => {
                    loaded.kernel = true;
                    Outcome::Prompt(String::new())
                }
                "net_bootp" => Outcome::Prompt("efinet0 10.0.2.15\n".into()),
                "initrd" | "devicetree" | "insmod" | "set" | "ls" | "sleep" | "chainloader"
                | "search" => Outcome::Prompt(String::new()),
                "boot" if loaded.kernel => Outcome::Boot(String::new()),
                "boot" => Outcome::Prompt("error: you need to load the kernel first.\n".into()),
                other => Outcome::Prompt(format!("error: can't find command `{other}'.\n")),
            },
            Self::Ipxe => match name {
                "dhcp" => Outcome::Prompt(
                    "Configuring (net0 52:54:00:12:34:56)...... ok\n".into(),
                ),
                "set" | "initrd" | "imgargs" => Outcome::Prompt(String::new()),
                "kernel" => {
                    loaded.kernel = true;
                    Outcome::Prompt(format!("{} ... ok\n", words.get(1).unwrap_or(&"")))
                }
                "boot" if loaded.kernel => Outcome::Boot(String::new()),
                "boot" => Outcome::Prompt("No such file or directory (http://ipxe.org/2d0c613b)\n".into()),
                "chain" => self.chain(words.get(1).copied().unwrap_or(""), loaded, files),
                other => Outcome::Prompt(format!("{other}: command not found\n")),
            },
            Self::Barebox => match name {
                "global" | "dhcp" | "tftp" => Outcome::Prompt(String::new()),
                "bootm" => barebox_bootm(&words, files),
                "boot" => Outcome::Boot("Booting entry 'net'\n".into()),
                other => Outcome::Prompt(format!("{other}: No such file or directory\n")),
            },
            Self::Depthcharge => match name {
                "tftpboot" => depthcharge_tftpboot(&words, loaded, files),
                other => Outcome::Prompt(format!("The command \"{other}\" is not recognized.\n")),
            },
        }
    }

    /// iPXE's `chain tftp://SERVER/PATH`: the boot script from the TFTP root, run line by line.
    fn chain(self, url: &str, loaded: &mut Loaded, files: Option<&Files>) -> Outcome {
        let Some(path) = url
            .strip_prefix("tftp://")
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, path)| path)
        else {
            return Outcome::Prompt(format!(
                "Could not start download: {url}: Invalid argument\n"
            ));
        };
        let script = files
            .and_then(|files| files.fetch(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let Some(script) = script.filter(|s| s.starts_with("#!ipxe\n")) else {
            return Outcome::Prompt(format!(
                "Could not start download: No such file or directory ({url})\n"
            ));
        };
        let mut output = format!("{url}... ok\n");
        for line in script.lines().skip(1) {
            match self.command(line, loaded, files) {
                Outcome::Prompt(text) => output.push_str(&text),
                Outcome::Boot(text) => {
                    output.push_str(&text);
                    return Outcome::Boot(output);
                }
                Outcome::Hold => return Outcome::Hold,
            }
        }
        Outcome::Prompt(output)
    }
}

/// Depthcharge's `tftpboot SERVER KERNEL CMDLINE [RAMDISK]`: loads the kernel (a FIT image
/// when it starts with the flattened-device-tree magic, then checked as one) and the
/// command-line file, and fails as depthcharge does ("Tftp failed.") when one is missing or the
/// FIT image is not one.
fn depthcharge_tftpboot(words: &[&str], loaded: &mut Loaded, files: Option<&Files>) -> Outcome {
    let (Some(kernel), Some(cmdline)) = (words.get(2), words.get(3)) else {
        return Outcome::Prompt("Usage: tftpboot <server> <kernel> <cmdline> [<ramdisk>]\n".into());
    };
    let Some(files) = files else {
        loaded.kernel = true;
        return Outcome::Boot(String::new());
    };
    let (image, args) = match (files.fetch(kernel), files.fetch(cmdline)) {
        (Ok(image), Ok(args)) => (image, String::from_utf8_lossy(&args).into_owned()),
        (Err(e), _) | (_, Err(e)) => return Outcome::Prompt(format!("{e}\nTftp failed.\n")),
    };
    let fit = image.starts_with(&[0xd0, 0x0d, 0xfe, 0xed]);
    let mut report = format!("Bytes transferred = {}\n", image.len());
    if fit || kernel.ends_with(".itb") {
        match check_fit(&image) {
            Ok(nodes) => report.push_str(&format!("FIT image with {}\n", nodes.join(", "))),
            Err(e) => return Outcome::Prompt(format!("Bad FIT image: {e}\nTftp failed.\n")),
        }
    }
    if let Some(root) = nfs_root_of(&args) {
        loaded.nfsroot = Some(root);
    }
    loaded.kernel = true;
    report.push_str(&format!(
        "Command line: {args}\nExiting depthcharge with code 4 at timestamp: 4242424\n"
    ));
    Outcome::Boot(report)
}

/// barebox's `bootm [-r RAMDISK] [-o DTB] KERNEL`: each `/mnt/tftp/…` file is read from the
/// TFTP server barebox mounts there; a missing one is barebox's `ERROR:`.
fn barebox_bootm(words: &[&str], files: Option<&Files>) -> Outcome {
    let Some(kernel) = words.last().filter(|w| !w.starts_with('-')) else {
        return Outcome::Prompt("bootm: no image given\n".into());
    };
    if let Some(files) = files {
        for word in &words[1..] {
            if let Some(path) = word.strip_prefix("/mnt/tftp/") {
                if let Err(e) = files.fetch(path) {
                    return Outcome::Prompt(format!("ERROR: could not open {word}: {e}\n"));
                }
            }
        }
    }
    Outcome::Boot(format!("Loading ARM Linux zImage '{kernel}'\n"))
}

/// The export of `nfsroot=HOST:PATH[,options]` in a command line.
pub fn nfs_root_of(line: &str) -> Option<PathBuf> {
    let start = line.find("nfsroot=")? + "nfsroot=".len();
    let value = line[start..].split([' ', '\'', '"']).next()?;
    let path = value.split_once(':').map_or(value, |(_, path)| path);
    Some(PathBuf::from(path.split(',').next()?))
}
