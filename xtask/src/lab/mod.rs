//! `cargo xtask lab up|down|status|run`: a real lab on this machine, from Debian's packages,
//! all on 127.0.0.1.
//!
//! Board A is an x86_64 qemu guest booted by the `boot-qemu` plugin (deploy tmpfs, boot
//! qemu). Board B is wired as a board in a LAVA lab is: a qemu PC running Debian's u-boot
//! from its firmware, its serial port on a "cable" (a pty pair kept open by socat) exported
//! by ser2net as telnet, its power an outlet of pdudaemon (localcmdline driver running the
//! lab's outlet script), its kernel and initramfs loaded by u-boot over TFTP from the
//! worker's TFTP root (deploy tftp, boot u-boot, commands ramdisk). Board C is wired the same
//! way and boots from its NIC's firmware: qemu's own iPXE ROM (Debian's ipxe-qemu), which the
//! ipxe boot method interrupts with Ctrl-B and tells to load kernel and initramfs from the
//! worker's TFTP root (device type x86, boot ipxe). Board D is simulated (`simboard`): a
//! Chromebook whose depthcharge fetches the FIT image and command line the job made from the
//! worker's TFTP server (tftpd-hpa) over TFTP and checks them before it boots (device type
//! rk3288-veyron-jaq, deploy tftp with an nfsrootfs, boot depthcharge). Board E is simulated
//! the same way: a BeagleBone Black with barebox, whose `bootm` reads kernel and dtb from
//! /mnt/tftp, the worker's TFTP server (device type beaglebone-black-barebox). Board F is a
//! simulated HiKey in fastboot mode on TCP (`simfastboot`): Debian's fastboot client flashes
//! its partitions and boots it (device type hi6220-hikey, deploy and boot fastboot). A master with its
//! embedded store and a slave run them all; the boards' device types have health checks, so `lab up` ends with
//! every device checked.

mod config;
mod images;
mod layout;
mod processes;
mod run;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use layout::*;

const USAGE: &str = "usage: cargo xtask lab up|down|status|run [--kill-slave-during-boot]";

/// Runs a lab command.
pub fn main(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let lab = Layout::new(root);
    match args.first().map(String::as_str) {
        Some("up") => up(&lab),
        Some("down") => down(&lab),
        Some("status") => status(&lab),
        Some("run") => run::run(&lab, args.iter().any(|a| a == "--kill-slave-during-boot")),
        _ => bail!("{USAGE}"),
    }
}

/// `basalt` commands against the lab's master, with its admin token.
pub struct Cli<'a> {
    lab: &'a Layout,
}

impl<'a> Cli<'a> {
    fn new(lab: &'a Layout) -> Self {
        Self { lab }
    }

    fn command(&self, args: &[&str]) -> Command {
        let token = std::fs::read_to_string(self.lab.master_data().join("admin-token"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut command = Command::new(self.lab.basalt());
        command
            .args(args)
            .env("BASALT_URL", self.lab.url())
            .env("BASALT_TOKEN", token);
        command
    }

    /// Runs and returns stdout; fails with stderr.
    pub fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("cannot run {}", self.lab.basalt().display()))?;
        if !out.status.success() {
            bail!(
                "basalt {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the command succeeds (for "does it exist" checks).
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.command(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn wait_for_port(port: u16, what: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{what} did not open port {port} within {}s",
        within.as_secs()
    )
}

/// Starts the slave (also used to restart it after killing it).
pub fn start_slave(lab: &Layout) -> anyhow::Result<u32> {
    processes::spawn(
        &lab.dir,
        &path(&lab.basalt()),
        &[
            "slave".into(),
            "--config".into(),
            path(&lab.etc().join("slave.toml")),
        ],
        &lab.logs().join("slave.log"),
    )
}

fn up(lab: &Layout) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::packages::ensure(crate::packages::LAB, "the lab")?;
    let running = processes::find(&lab.dir);
    if !running.is_empty() {
        // Up only if it works: the master answers and both boards passed their checks.
        let healthy = BOARDS.iter().all(|board| {
            Cli::new(lab)
                .output(&["devices", "show", board, "--format", "json"])
                .is_ok_and(|text| text.contains("\"health\": \"good\""))
        });
        if !healthy {
            bail!(
                "the lab is half up ({} processes, but not every board good): run `cargo xtask \
                 lab down`, then `cargo xtask lab up` again (logs in {})",
                running.len(),
                lab.logs().display()
            );
        }
        println!("lab: already up; `cargo xtask lab down` first to restart it");
        return status(lab);
    }
    check_ports_free()?;
    crate::cargo(&lab.root, &["build", "--workspace"])?;
    for board in SIMULATED_BOARDS.iter().map(|b| b.name).chain([BOARD_F]) {
        std::fs::create_dir_all(lab.simulator_state(board))?;
    }
    for dir in [
        lab.logs(),
        lab.etc(),
        lab.board(BOARD_B),
        lab.board(BOARD_C),
        lab.board(BOARD_G),
        lab.tftp_root(),
        lab.nfs_root(),
        lab.master_data(),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!("lab: kernel and initramfs in {}", lab.images().display());
    images::build(&lab.images())?;
    images::grub(&lab.tftp_root().join(GRUB_DIR))?;
    config::ser2net(lab)?;
    config::pdudaemon(lab)?;
    config::power_script(lab)?;
    config::certificates(lab)?;
    config::slave(lab)?;
    config::dispatcher(lab)?;
    let logs = lab.logs();

    println!("lab: images over HTTP on 127.0.0.1:{IMAGES_PORT}");
    processes::spawn(
        &lab.dir,
        "busybox",
        &[
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            format!("127.0.0.1:{IMAGES_PORT}"),
            "-h".into(),
            path(&lab.images()),
        ],
        &logs.join("images-httpd.log"),
    )?;
    for board in SERIAL_BOARDS {
        serial_cable(lab, board)?;
    }
    processes::spawn(
        &lab.dir,
        "ser2net",
        &[
            "-n".into(),
            "-c".into(),
            path(&lab.etc().join("ser2net.yaml")),
            "-P".into(),
            path(&lab.dir.join("ser2net.pid")),
        ],
        &logs.join("ser2net.log"),
    )?;
    println!("lab: the worker's TFTP server on 127.0.0.1:{TFTP_PORT} (tftpd-hpa)");
    processes::spawn(
        &lab.dir,
        "in.tftpd",
        &[
            "--foreground".into(),
            "--address".into(),
            format!("127.0.0.1:{TFTP_PORT}"),
            "--secure".into(),
            path(&lab.tftp_root()),
        ],
        &logs.join("tftpd.log"),
    )?;
    println!("lab: board {BOARD_F}'s fastboot mode on tcp:127.0.0.1:{FASTBOOT_PORT}");
    processes::spawn(
        &lab.dir,
        &path(&lab.bin_dir().join("simfastboot")),
        &[
            "--dir".into(),
            path(&lab.board(BOARD_F).join("fastboot")),
            "--port".into(),
            FASTBOOT_PORT.to_string(),
            "--power".into(),
            path(&lab.simulator_state(BOARD_F).join("power")),
        ],
        &logs.join("simfastboot.log"),
    )?;
    println!(
        "lab: pdudaemon on 127.0.0.1:{PDU_PORT} (outlet {BOARD_B_OUTLET}: {BOARD_B}, outlet \
         {BOARD_C_OUTLET}: {BOARD_C}, outlets {BOARD_D_OUTLET} and {BOARD_E_OUTLET}: the simulated \
         {BOARD_D} and {BOARD_E}, outlet {BOARD_F_OUTLET}: the simulated {BOARD_F}, outlet \
         {BOARD_G_OUTLET}: {BOARD_G})"
    );
    processes::spawn(
        &lab.dir,
        "pdudaemon",
        &[
            "--conf".into(),
            path(&lab.etc().join("pdudaemon.conf")),
            "--logfile".into(),
            path(&logs.join("pdudaemon.log")),
        ],
        &logs.join("pdudaemon.out"),
    )?;
    println!(
        "lab: basalt master on {} (data in {})",
        lab.url(),
        lab.master_data().display()
    );
    processes::spawn(
        &lab.dir,
        &path(&lab.basalt()),
        &[
            "master".into(),
            "--data-dir".into(),
            path(&lab.master_data()),
            "--listen".into(),
            "127.0.0.1".into(),
            "--http-port".into(),
            HTTP_PORT.to_string(),
            "--control-port".into(),
            CONTROL_PORT.to_string(),
            "--log-port".into(),
            LOG_PORT.to_string(),
            "--encrypt".into(),
            "--master-cert".into(),
            path(&config::certs_dir(lab).join("master/master.key_secret")),
            "--slaves-certs".into(),
            path(&config::certs_dir(lab).join("slaves")),
        ],
        &logs.join("master.log"),
    )?;
    wait_for_port(HTTP_PORT, "the master", Duration::from_secs(30))?;
    wait_for_port(IMAGES_PORT, "the images server", Duration::from_secs(10))?;
    for board in SERIAL_BOARDS {
        wait_for_port(board.console_port, "ser2net", Duration::from_secs(10))?;
    }
    wait_for_port(PDU_PORT, "pdudaemon", Duration::from_secs(30))?;
    register(lab)?;

    println!("lab: basalt slave {WORKER}");
    start_slave(lab)?;
    let cli = Cli::new(lab);
    wait_until("the slave to come online", Duration::from_secs(60), || {
        Ok(cli
            .output(&["workers", "show", WORKER, "--format", "json"])?
            .contains("\"online\""))
    })?;
    println!("lab: health checks of every board (a new device is checked before it takes jobs)");
    for board in BOARDS {
        run::wait_healthy(lab, board, Duration::from_secs(600))?;
    }
    println!("lab: up in {:.0}s", started.elapsed().as_secs_f64());
    status(lab)
}

/// A board's serial cable: a pty pair. The board end is held open so the cable survives the
/// board's qemu closing it at power-off, as a real serial line survives a board switched off.
fn serial_cable(lab: &Layout, board: SerialBoard) -> anyhow::Result<()> {
    let logs = lab.logs();
    let log = logs.join(format!("serial-cable-{}.log", board.name));
    println!(
        "lab: board {}'s serial cable, console on telnet 127.0.0.1:{}",
        board.name, board.console_port
    );
    let (host_end, board_end) = (
        lab.serial_host_end(board.name),
        lab.serial_board_end(board.name),
    );
    processes::spawn(
        &lab.dir,
        "socat",
        &[
            format!("pty,link={},raw,echo=0", host_end.display()),
            format!("pty,link={},raw,echo=0", board_end.display()),
        ],
        &log,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(host_end.exists() && board_end.exists()) {
        if Instant::now() > deadline {
            bail!("socat made no serial cable (see {})", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    processes::spawn(
        &lab.dir,
        "sh",
        &[
            "-c".into(),
            "exec 3<>\"$0\"; while :; do sleep 3600; done".into(),
            path(&board_end),
        ],
        &log,
    )?;
    Ok(())
}

/// Fails, naming the port and its use, if another program already listens on one of the
/// lab's ports (a lab from another checkout, a system pdudaemon on the same port, ...).
fn check_ports_free() -> anyhow::Result<()> {
    if std::net::UdpSocket::bind(("127.0.0.1", TFTP_PORT)).is_err() {
        bail!(
            "UDP port {TFTP_PORT} (the worker's TFTP server) is in use on 127.0.0.1: another \
             lab or another program holds it"
        );
    }
    for (port, what) in [
        (HTTP_PORT, "the master's HTTP"),
        (CONTROL_PORT, "the master's control socket"),
        (LOG_PORT, "the master's log socket"),
        (IMAGES_PORT, "the images server"),
        (CONSOLE_PORT, "board B's console (ser2net)"),
        (CONSOLE_PORT_C, "board C's console (ser2net)"),
        (CONSOLE_PORT_G, "board G's console (ser2net)"),
        (FASTBOOT_PORT, "board F's fastboot device"),
        (PDU_PORT, "pdudaemon"),
    ] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!(
                "port {port} ({what}) is in use on 127.0.0.1: another lab (another checkout's \
                 `cargo xtask lab down`) or another program holds it"
            );
        }
    }
    Ok(())
}

/// Polls `check` every second until it says yes.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if check().unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", within.as_secs());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Registers the worker, the device types, the boards and the health checks (what is
/// already registered is left alone, so `lab up` after `lab down` keeps the history).
fn register(lab: &Layout) -> anyhow::Result<()> {
    let cli = Cli::new(lab);
    let checks = lab.master_data().join("health-checks");
    std::fs::create_dir_all(&checks)?;
    for entry in std::fs::read_dir(lab.root.join("examples/health-checks"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), checks.join(entry.file_name()))?;
    }
    if !cli.succeeds(&["workers", "show", WORKER]) {
        cli.output(&[
            "workers",
            "add",
            WORKER,
            "--description",
            "this machine's lab",
        ])?;
    }
    let device_types = ["qemu", "qemu-x86-uboot", "x86", "hi6220-hikey", "d2500cc"]
        .into_iter()
        .chain(SIMULATED_BOARDS.iter().map(|b| b.device_type));
    for device_type in device_types {
        let known = cli.output(&["device-types", "list", "--format", "json"])?;
        if !known.contains(&format!("\"{device_type}\"")) {
            cli.output(&["device-types", "add", device_type])?;
        }
    }
    let mut boards = vec![
        (BOARD_A, "qemu", config::board_a_dictionary(lab)?),
        (BOARD_B, "qemu-x86-uboot", config::board_b_dictionary(lab)?),
        (BOARD_C, "x86", config::board_c_dictionary(lab)?),
    ];
    for board in &SIMULATED_BOARDS {
        boards.push((
            board.name,
            board.device_type,
            config::simulated_dictionary(lab, board)?,
        ));
    }
    boards.push((BOARD_F, "hi6220-hikey", config::board_f_dictionary(lab)?));
    boards.push((BOARD_G, "d2500cc", config::board_g_dictionary(lab)?));
    for (name, device_type, dictionary) in boards {
        let dictionary = path(&dictionary);
        if cli.succeeds(&["devices", "show", name]) {
            cli.output(&["devices", "dict", "set", name, &dictionary])?;
        } else {
            cli.output(&[
                "devices",
                "add",
                name,
                "--type",
                device_type,
                "--worker",
                WORKER,
                "--dict",
                &dictionary,
            ])?;
        }
    }
    Ok(())
}

fn down(lab: &Layout) -> anyhow::Result<()> {
    let found = processes::find(&lab.dir);
    if found.is_empty() {
        println!("lab: nothing running");
        return Ok(());
    }
    // Everything the lab started, job processes included (they outlive slaves by design).
    println!("lab: stopping {} processes", found.len());
    let stopped = processes::stop(&found, Duration::from_secs(15));
    // Board B's qemu is the outlet script's child in its own session; it names the lab too,
    // but may have been started after the scan: look again.
    let left = processes::find(&lab.dir);
    let stopped = stopped && (left.is_empty() || processes::stop(&left, Duration::from_secs(5)));
    let left = processes::find(&lab.dir);
    if !stopped || !left.is_empty() {
        for process in &left {
            eprintln!("  still running: {} {}", process.pid, process.command);
        }
        bail!("{} lab processes would not stop", left.len());
    }
    for board in SERIAL_BOARDS {
        let _ = std::fs::remove_file(lab.board(board.name).join("qemu.pid"));
    }
    println!("lab: down, no process left");
    Ok(())
}

fn status(lab: &Layout) -> anyhow::Result<()> {
    let found = processes::find(&lab.dir);
    if found.is_empty() {
        println!("lab: down");
        return Ok(());
    }
    println!("lab: {} processes", found.len());
    for process in &found {
        let short: String = process.command.chars().take(150).collect();
        println!("  {:>7}  {short}", process.pid);
    }
    let cli = Cli::new(lab);
    if let Ok(devices) = cli.output(&["devices", "list"]) {
        println!("\n{devices}");
    }
    println!(
        "web UI {}/ · consoles: {BOARD_B} telnet 127.0.0.1 {CONSOLE_PORT}, {BOARD_C} telnet \
         127.0.0.1 {CONSOLE_PORT_C}, {BOARD_G} telnet 127.0.0.1 {CONSOLE_PORT_G} · logs in {}",
        lab.url(),
        lab.logs().display()
    );
    Ok(())
}
