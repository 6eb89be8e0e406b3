//! Where the lab lives and which loopback ports it uses.
//!
//! Everything is under `target/lab/` of the workspace, so `cargo clean` removes it and
//! nothing is written elsewhere; every process the lab starts names that directory on its
//! command line, which is how `lab down` finds them all.

use std::path::{Path, PathBuf};

/// The master's HTTP port (web UI, REST, XML-RPC).
pub const HTTP_PORT: u16 = 18080;
/// The master's control socket (LAVA's 5556).
pub const CONTROL_PORT: u16 = 18556;
/// The master's log socket (LAVA's 5555).
pub const LOG_PORT: u16 = 18555;
/// The HTTP server the jobs download kernel and initramfs from.
pub const IMAGES_PORT: u16 = 18090;
/// ser2net's telnet port for board B's console.
pub const CONSOLE_PORT: u16 = 18001;
/// ser2net's telnet port for board C's console.
pub const CONSOLE_PORT_C: u16 = 18002;
/// ser2net's telnet port for board G's console.
pub const CONSOLE_PORT_G: u16 = 18003;
/// pdudaemon's HTTP listener.
pub const PDU_PORT: u16 = 18421;
/// The worker (slave) name.
pub const WORKER: &str = "lab-worker";
/// Board A: x86_64 qemu, booted by the boot-qemu plugin.
pub const BOARD_A: &str = "qemu-01";
/// Board B: qemu running u-boot, console over ser2net, power through pdudaemon.
pub const BOARD_B: &str = "uboot-01";
/// Board B's outlet on the lab PDU.
pub const BOARD_B_OUTLET: u32 = 1;
/// Board C: an x86 PC booting over the network with its NIC's iPXE firmware (qemu's own iPXE
/// ROM, Debian's ipxe-qemu), console over ser2net, power through pdudaemon.
pub const BOARD_C: &str = "ipxe-01";
/// Board C's outlet on the lab PDU.
pub const BOARD_C_OUTLET: u32 = 2;

/// Board D: a simulated Chromebook (`simboard --bootloader depthcharge`) whose depthcharge
/// fetches the FIT image and command line the job made from the worker's TFTP server, over
/// TFTP; power through pdudaemon.
pub const BOARD_D: &str = "depthcharge-01";
/// Board D's outlet on the lab PDU.
pub const BOARD_D_OUTLET: u32 = 3;
/// Board E: a simulated BeagleBone Black with barebox (`simboard --bootloader barebox`), whose
/// `bootm` reads kernel and dtb from /mnt/tftp, the worker's TFTP server; power through
/// pdudaemon.
pub const BOARD_E: &str = "barebox-01";
/// Board E's outlet on the lab PDU.
pub const BOARD_E_OUTLET: u32 = 4;

/// A board the lab simulates (`simboard`), behind the lab's PDU and TFTP server.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedBoard {
    /// Its device name.
    pub name: &'static str,
    /// Its device type.
    pub device_type: &'static str,
    /// simboard's `--bootloader`.
    pub bootloader: &'static str,
    /// Its outlet on the lab PDU.
    pub outlet: u32,
}

/// Boards D and E.
pub const SIMULATED_BOARDS: [SimulatedBoard; 2] = [
    SimulatedBoard {
        name: BOARD_D,
        device_type: "rk3288-veyron-jaq",
        bootloader: "depthcharge",
        outlet: BOARD_D_OUTLET,
    },
    SimulatedBoard {
        name: BOARD_E,
        device_type: "beaglebone-black-barebox",
        bootloader: "barebox",
        outlet: BOARD_E_OUTLET,
    },
];

/// Board F: a simulated HiKey flashed and booted with Debian's fastboot client over TCP
/// (`simfastboot`), its console `simboard`; power through pdudaemon.
pub const BOARD_F: &str = "fastboot-01";
/// Board F's outlet on the lab PDU.
pub const BOARD_F_OUTLET: u32 = 5;
/// Board F's fastboot port (`fastboot -s tcp:127.0.0.1:PORT`).
pub const FASTBOOT_PORT: u16 = 18554;

/// The worker's TFTP server (tftpd-hpa) on the TFTP root, for boards D and E.
pub const TFTP_PORT: u16 = 18069;

/// A board behind the lab's serial cables, console server and PDU.
#[derive(Debug, Clone, Copy)]
pub struct SerialBoard {
    /// Its device name.
    pub name: &'static str,
    /// ser2net's telnet port for its console.
    pub console_port: u16,
}

/// Boards B, C and G.
pub const SERIAL_BOARDS: [SerialBoard; 3] = [
    SerialBoard {
        name: BOARD_B,
        console_port: CONSOLE_PORT,
    },
    SerialBoard {
        name: BOARD_C,
        console_port: CONSOLE_PORT_C,
    },
    SerialBoard {
        name: BOARD_G,
        console_port: CONSOLE_PORT_G,
    },
];

/// Board G: an x86 PC whose NIC's iPXE ROM network-boots Debian's GRUB (a PXE image made
/// with grub-mkimage, in the worker's TFTP root), console over ser2net on its second UART,
/// power through pdudaemon.
pub const BOARD_G: &str = "grub-01";
/// Board G's outlet on the lab PDU.
pub const BOARD_G_OUTLET: u32 = 6;
/// Where board G's GRUB lives in the TFTP root (its `core.0` and `grub.cfg`).
pub const GRUB_DIR: &str = "lab-grub";

/// Every board of the lab.
pub const BOARDS: [&str; 7] = [
    BOARD_A, BOARD_B, BOARD_C, BOARD_D, BOARD_E, BOARD_F, BOARD_G,
];

/// The lab's directories and files.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The workspace.
    pub root: PathBuf,
    /// `target/lab`.
    pub dir: PathBuf,
}

impl Layout {
    /// The lab of the workspace at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dir: root.join("target/lab"),
        }
    }

    /// Built binaries and plugins.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("target/debug")
    }

    /// `basalt`.
    pub fn basalt(&self) -> PathBuf {
        self.bin_dir().join("basalt")
    }

    /// Kernel and initramfs, served over HTTP to the jobs.
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// The master's data directory.
    pub fn master_data(&self) -> PathBuf {
        self.dir.join("master")
    }

    /// The slave's state directory.
    pub fn slave_state(&self) -> PathBuf {
        self.dir.join("slave")
    }

    /// The worker's TFTP root: tftp deploys put files here, board B's qemu serves it.
    pub fn tftp_root(&self) -> PathBuf {
        self.dir.join("tftp")
    }

    /// A serial board's files: qemu pid and log, the serial cable's two ends.
    pub fn board(&self, name: &str) -> PathBuf {
        self.dir.join("boards").join(name)
    }

    /// The NFS export directory: nfs deploys extract root file systems below it.
    pub fn nfs_root(&self) -> PathBuf {
        self.dir.join("nfs")
    }

    /// A simulated board's state (its power file, its console lock).
    pub fn simulator_state(&self, board: &str) -> PathBuf {
        self.board(board).join("state")
    }

    /// The end of a board's serial cable that ser2net opens.
    pub fn serial_host_end(&self, board: &str) -> PathBuf {
        self.board(board).join("ttyS0-host")
    }

    /// The end of a board's serial cable that its qemu opens.
    pub fn serial_board_end(&self, board: &str) -> PathBuf {
        self.board(board).join("ttyS0-board")
    }

    /// Daemon logs.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Generated configuration (ser2net, pdudaemon, dictionaries).
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// The master's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{HTTP_PORT}")
    }
}
