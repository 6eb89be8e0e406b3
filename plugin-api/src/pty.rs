//! A command on a pseudo-terminal, as a console: what connection drivers that run a command
//! (`telnet` to ser2net, `conmux-console`) and boot drivers that run the board themselves
//! (qemu) both need. The command runs with `/bin/sh -c` in its own session on a raw pty;
//! closing the console ends the whole session.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fd::{read_with_timeout, FdRead};
use crate::{Console, PluginError};
use nix::pty::openpty;
use nix::sys::signal::{killpg, Signal};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::unistd::Pid;

/// How long a closed command gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// The console of a command on a pty.
pub struct PtyConsole {
    master: File,
    child: Option<Child>,
    command: String,
}

fn io_error(command: &str, what: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::infrastructure(format!("console command {command:?}: {what}: {e}"))
}

impl PtyConsole {
    /// Starts `command` on a new raw-mode pty in its own session.
    pub fn spawn(command: &str) -> Result<Self, PluginError> {
        let pty = openpty(None, None).map_err(|e| io_error(command, "cannot open a pty", e))?;
        let mut termios =
            tcgetattr(&pty.slave).map_err(|e| io_error(command, "cannot read pty modes", e))?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios)
            .map_err(|e| io_error(command, "cannot set pty to raw mode", e))?;
        let stdio = |fd: &OwnedFd| -> Result<Stdio, PluginError> {
            fd.try_clone()
                .map(Stdio::from)
                .map_err(|e| io_error(command, "cannot duplicate the pty", e))
        };
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(command)
            .stdin(stdio(&pty.slave)?)
            .stdout(stdio(&pty.slave)?)
            .stderr(stdio(&pty.slave)?);
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            shell.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = shell
            .spawn()
            .map_err(|e| io_error(command, "cannot start", e))?;
        drop(shell);
        drop(pty.slave);
        Ok(Self {
            master: File::from(pty.master),
            child: Some(child),
            command: command.to_owned(),
        })
    }

    /// The process id of the command (its session and process group id too).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn closed_error(&mut self) -> PluginError {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        PluginError::connection_closed(format!(
            "console command {:?} closed the console{status}",
            self.command
        ))
    }
}

impl Console for PtyConsole {
    fn read(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, PluginError> {
        if self.child.is_none() {
            return Err(self.closed_error());
        }
        match read_with_timeout(&mut self.master, max, timeout) {
            Ok(FdRead::Data(data)) => Ok(data),
            Ok(FdRead::TimedOut) => Ok(Vec::new()),
            Ok(FdRead::Closed) => Err(self.closed_error()),
            Err(e) => Err(io_error(&self.command, "read failed", e)),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), PluginError> {
        if self.child.is_none() {
            return Err(self.closed_error());
        }
        match self.master.write_all(data) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Err(self.closed_error()),
            Err(e) => Err(io_error(&self.command, "write failed", e)),
        }
    }

    fn close(&mut self) -> Result<(), PluginError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
        Ok(())
    }
}

impl Drop for PtyConsole {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
