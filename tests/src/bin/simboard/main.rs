//! A simulated board on a console, for end-to-end tests of jobs.
//!
//! Run it as a device's `connection_command`: its stdin/stdout are the board's serial line.
//! Power is a file: the device's power commands write `on <token>` (a new token per power-on or
//! reset) or `off` to `<state>/power`; the board boots whenever a new token appears and goes
//! silent when it is off. A boot is: a bootloader's banner with an autoboot countdown (u-boot
//! by default; `--bootloader grub|grub-efi|ipxe|barebox|depthcharge` shows another; `grub-efi` is UEFI
//! firmware whose boot menu's "LAVA PXE Grub" entry starts GRUB, `fastboot-grub` a board left
//! in fastboot mode that a key sends on to GRUB, see `loaders.rs`),
//! whose interrupt key stops it at its prompt, where it takes that bootloader's commands; a
//! kernel-like boot log, a login prompt, and then a real `sh -i` as root's shell, so test
//! scripts really run. Every command (non-empty line) typed at the bootloader is appended to
//! `<state>/bootloader.log`. `--tftp-root DIR` is the worker's TFTP root, where iPXE's `chain`,
//! depthcharge's `tftpboot` and barebox's `bootm` read their files; `--tftp-server HOST:PORT`
//! fetches them from a TFTP server instead, over TFTP. A file `<state>/prompt` replaces the shell's
//! prompt (a file, since prompts like `/ # ` cannot pass through a YAML `connect:` line), and
//! a file `<state>/autologin` makes the shell start without a login prompt, as a ramdisk's
//! console does.
//! `--never-boot` makes the kernel panic before the login prompt; `--kernel-warning` makes
//! it print a WARNING (a `cut here` block) on its way to it, then a userspace `WARNING:`
//! line that no kernel end marker follows.
//!
//! Usage: simboard --state DIR [--never-boot] [--kernel-warning] [--hostname NAME]
//!        [--countdown N]
//!                 [--bootloader NAME] [--tftp-root DIR | --tftp-server HOST:PORT]

mod loaders;
mod tftp;

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::termios::{self, InputFlags, LocalFlags, OutputFlags, SetArg};
use nix::unistd::Pid;

use loaders::{Loaded, Loader, Outcome};
use tftp::Files;

struct Board {
    state: PathBuf,
    never_boot: bool,
    kernel_warning: bool,
    hostname: String,
    countdown: u32,
    loader: Loader,
    files: Option<Files>,
    prompt: Option<String>,
}

/// What ended a boot.
enum Interrupted {
    /// Power was switched off or cycled.
    Power,
    /// The console went away.
    Hangup,
}

fn power_token(state: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state.join("power")).unwrap_or_default();
    let text = text.trim();
    text.starts_with("on").then(|| text.to_owned())
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn set_raw(raw: bool) {
    let fd = stdin_fd();
    let Ok(mut modes) = termios::tcgetattr(fd) else {
        return;
    };
    if raw {
        termios::cfmakeraw(&mut modes);
    } else {
        modes.local_flags |=
            LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ISIG;
        modes.input_flags |= InputFlags::ICRNL;
        modes.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
    }
    let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &modes);
}

/// Makes simboard's own process group the terminal's foreground group again.
fn take_terminal() {
    // SAFETY: plain system calls on fd 0; SIGTTOU is ignored (see main).
    unsafe {
        libc::tcsetpgrp(0, libc::getpgrp());
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(text.replace('\n', "\r\n").as_bytes());
    let _ = out.flush();
}

impl Board {
    fn powered(&self, token: &str) -> bool {
        power_token(&self.state).as_deref() == Some(token)
    }

    /// Waits up to `timeout` for a byte on the console, watching the power.
    fn read_byte(&self, token: &str, timeout: Duration) -> Result<Option<u8>, Interrupted> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.powered(token) {
                return Err(Interrupted::Power);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let slice = left.min(Duration::from_millis(50));
            let fd = stdin_fd();
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::try_from(slice.as_millis() as i32).unwrap_or(PollTimeout::ZERO),
            )
            .unwrap_or(0);
            if ready > 0 {
                // Unbuffered: std's stdin would read ahead and hide bytes from poll().
                let mut byte = [0u8; 1];
                // SAFETY: reading one byte into a one-byte buffer from fd 0.
                let n = unsafe { libc::read(0, byte.as_mut_ptr().cast(), 1) };
                return if n == 1 {
                    Ok(Some(byte[0]))
                } else {
                    Err(Interrupted::Hangup)
                };
            }
        }
    }

    /// Reads a line, echoing it as a bootloader does.
    fn read_line(&self, token: &str) -> Result<String, Interrupted> {
        let mut line = Vec::new();
        loop {
            match self.read_byte(token, Duration::from_secs(3600))? {
                Some(b'\r' | b'\n') => {
                    say("\n");
                    return Ok(String::from_utf8_lossy(&line).into_owned());
                }
                Some(byte) => {
                    line.push(byte);
                    let _ = std::io::stdout().write_all(&[byte]);
                    let _ = std::io::stdout().flush();
                }
                None => {}
            }
        }
    }

    fn pause(&self, token: &str, time: Duration) -> Result<(), Interrupted> {
        let deadline = Instant::now() + time;
        while Instant::now() < deadline {
            if !self.powered(token) {
                return Err(Interrupted::Power);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn boot(&self, token: &str) -> Result<(), Interrupted> {
        set_raw(true);
        say(self.loader.banner());
        let mut loader = self.loader;
        if loader == Loader::GrubEfi {
            let offer = loader.interrupt_prompt().unwrap_or_default();
            if !self.countdown(token, loader, offer)? || !self.uefi_menu(token)? {
                say("Loaded: LinuxImage\n");
                return self.kernel(token);
            }
            loader = Loader::Grub;
            say(loader.banner());
        }
        if loader == Loader::FastbootGrub {
            // Fastboot mode waits for the host as long as it takes; a key leaves it, and GRUB
            // boots the installed system without being asked.
            say(&format!(
                "{}\n",
                loader.interrupt_prompt().unwrap_or_default()
            ));
            while self.read_byte(token, Duration::from_secs(3600))?.is_none() {}
            self.record("(fastboot mode left)");
            say(Loader::Grub.banner());
            say("Booting `Debian GNU/Linux'\n\n");
            return self.kernel(token);
        }
        let interrupted = match loader.interrupt_prompt() {
            Some(offer) => self.countdown(token, loader, offer)?,
            None => {
                say(loader.start_message());
                true
            }
        };
        say("\n");
        let mut loaded = Loaded::default();
        if interrupted {
            self.bootloader_shell(token, loader, &mut loaded)?;
        }
        if let Some(root) = &loaded.nfsroot {
            self.mount_nfs_root(root);
        }
        self.kernel(token)
    }

    /// The UEFI boot menu: its entries and `Start:`, until one is picked by its number.
    /// Whether GRUB's entry was (any other boots the installed kernel).
    fn uefi_menu(&self, token: &str) -> Result<bool, Interrupted> {
        loop {
            say("\n");
            for (n, label) in loaders::UEFI_MENU.iter().enumerate() {
                say(&format!("[{}] {label}\n", n + 1));
            }
            say(Loader::GrubEfi.prompt());
            let line = self.read_line(token)?;
            if line.is_empty() {
                continue;
            }
            self.record(&line);
            match line
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
            {
                Some(n) if n < loaders::UEFI_MENU.len() => {
                    return Ok(loaders::UEFI_MENU[n] == loaders::UEFI_GRUB_ENTRY)
                }
                _ => say("Invalid selection\n"),
            }
        }
    }

    /// Offers to stop autoboot for `countdown` steps; whether the bootloader's key came.
    fn countdown(&self, token: &str, loader: Loader, offer: &str) -> Result<bool, Interrupted> {
        if loader == Loader::UBoot {
            for left in (0..=self.countdown).rev() {
                say(&format!("\r{offer}: {left:2} "));
                if left == 0 {
                    break;
                }
                if self.read_byte(token, Duration::from_millis(400))?.is_some() {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        say(&format!("{offer}\n"));
        let deadline = Instant::now() + Duration::from_millis(400) * self.countdown;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(byte) = self.read_byte(token, left)? {
                if loader.stops(byte) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The bootloader's prompt and commands, until one boots the kernel.
    fn bootloader_shell(
        &self,
        token: &str,
        loader: Loader,
        loaded: &mut Loaded,
    ) -> Result<(), Interrupted> {
        loop {
            say(loader.prompt());
            let line = self.read_line(token)?;
            if !line.is_empty() {
                self.record(&line);
            }
            match loader.command(&line, loaded, self.files.as_ref()) {
                Outcome::Prompt(text) => say(&text),
                Outcome::Boot(text) => {
                    say(&text);
                    return Ok(());
                }
                Outcome::Hold => loop {
                    self.pause(token, Duration::from_secs(3600))?;
                },
            }
        }
    }

    /// Appends a line typed at the bootloader to `<state>/bootloader.log`.
    fn record(&self, line: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.join("bootloader.log"));
        if let Ok(mut log) = log {
            let _ = writeln!(log, "{line}");
        }
    }

    fn kernel(&self, token: &str) -> Result<(), Interrupted> {
        for line in [
            "Starting kernel ...",
            "",
            "[    0.000000] Booting Linux on physical CPU 0x0",
            "[    0.000000] Linux version 6.1.0-simboard (builder@basalt) #1 SMP",
            "[    0.412345] Serial: 8250/16550 driver, 4 ports",
            "[    1.023456] Freeing unused kernel memory: 1024K",
        ] {
            say(&format!("{line}\n"));
            self.pause(token, Duration::from_millis(30))?;
        }
        if self.kernel_warning {
            for line in [
                "[    0.812345] ------------[ cut here ]------------",
                "[    0.812346] WARNING: CPU: 0 PID: 1 at drivers/simboard/sim.c:42 sim_probe+0x10/0x20",
                "[    0.812347] Modules linked in:",
                "[    0.812348] ---[ end trace 0000000000000000 ]---",
                "WARNING: a userspace line that no marker closes",
            ] {
                say(&format!("{line}\n"));
            }
        }
        if self.never_boot {
            say("[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n");
            say("[    1.234600] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n");
            loop {
                self.pause(token, Duration::from_secs(3600))?;
            }
        }
        say("[    1.500000] Run /sbin/init as init process\n\nWelcome to Simboard Linux\n\n");
        let autologin = self.state.join("autologin").exists();
        loop {
            set_raw(true);
            if !autologin {
                say(&format!("{} login: ", self.hostname));
                let _user = self.read_line(token)?;
            }
            self.shell(token)?;
        }
    }

    /// "Mounts" the NFS root the kernel command line names: this board's shell runs on the
    /// machine's own file system, so what a deploy put into the export below the lab's
    /// directory (the LAVA overlay) is copied to the same place, where the shell sees it.
    fn mount_nfs_root(&self, export: &Path) {
        let Some(lab) = self.state.parent() else {
            return;
        };
        let Ok(relative) = lab.strip_prefix("/") else {
            return;
        };
        let from = export.join(relative);
        if from.is_dir() {
            let _ = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(lab)
                .status();
        }
    }

    /// A real shell on the console until it exits or the power changes.
    fn shell(&self, token: &str) -> Result<(), Interrupted> {
        set_raw(false);
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-i")
            .env(
                "PS1",
                self.prompt
                    .clone()
                    .unwrap_or_else(|| format!("root@{}:~# ", self.hostname)),
            )
            .env("HOME", std::env::temp_dir())
            .env_remove("ENV");
        // The shell gets its own process group (so a power cut kills everything it started)
        // and becomes the terminal's foreground group, as a login shell would.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            shell.pre_exec(|| {
                libc::setpgid(0, 0);
                libc::tcsetpgrp(0, libc::getpid());
                Ok(())
            });
        }
        let Ok(mut child) = shell.spawn() else {
            say("login: cannot start a shell\n");
            return Ok(());
        };
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                take_terminal();
                return Ok(());
            }
            if !self.powered(token) {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.wait();
                take_terminal();
                return Err(Interrupted::Power);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Takes the board's serial line (`<state>/console.lock`), or says who holds it.
fn take_line(state: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = state.join("console.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on an fd this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(format!(
            "port already in use (by process {})",
            holder.trim()
        ));
    }
    use std::io::{Seek, Write};
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

fn main() -> ExitCode {
    // Handing the terminal back and forth between process groups raises SIGTTOU otherwise.
    // SAFETY: setting a signal disposition to ignore has no preconditions.
    unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
    }
    let mut args = std::env::args().skip(1);
    let mut board = Board {
        state: PathBuf::new(),
        never_boot: false,
        kernel_warning: false,
        hostname: "simboard".into(),
        countdown: 2,
        loader: Loader::UBoot,
        files: None,
        prompt: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state" => board.state = args.next().map(PathBuf::from).unwrap_or_default(),
            "--never-boot" => board.never_boot = true,
            "--kernel-warning" => board.kernel_warning = true,
            "--hostname" => board.hostname = args.next().unwrap_or_default(),
            "--countdown" => {
                board.countdown = args.next().and_then(|n| n.parse().ok()).unwrap_or(2)
            }
            "--bootloader" => match args.next().as_deref().and_then(Loader::parse) {
                Some(loader) => board.loader = loader,
                None => {
                    eprintln!("simboard: --bootloader takes u-boot, grub, grub-efi, fastboot-grub, ipxe, barebox or depthcharge");
                    return ExitCode::from(2);
                }
            },
            "--tftp-root" => board.files = args.next().map(|dir| Files::Dir(PathBuf::from(dir))),
            "--tftp-server" => match args.next().and_then(|a| a.parse().ok()) {
                Some(server) => board.files = Some(Files::Tftp(server)),
                None => {
                    eprintln!("simboard: --tftp-server takes HOST:PORT");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("simboard: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    board.prompt = std::fs::read_to_string(board.state.join("prompt")).ok();
    if board.state.as_os_str().is_empty() {
        eprintln!(
            "usage: simboard --state DIR [--never-boot] [--kernel-warning] [--hostname NAME] \
             [--countdown N]"
        );
        return ExitCode::from(2);
    }
    // One connection at a time, as ser2net and most console servers allow: a connection
    // left over from an earlier job keeps the next one out. The lock lives as long as this
    // process (the file is close-on-exec, so the board's shell does not inherit it).
    let _line = match take_line(&board.state) {
        Ok(file) => file,
        Err(e) => {
            say(&format!("simboard: {e}\n"));
            return ExitCode::from(3);
        }
    };
    loop {
        // Powered off: silent until a power-on token appears.
        let token = loop {
            if let Some(token) = power_token(&board.state) {
                break token;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        match board.boot(&token) {
            Ok(()) | Err(Interrupted::Power) => continue,
            Err(Interrupted::Hangup) => return ExitCode::SUCCESS,
        }
    }
}
