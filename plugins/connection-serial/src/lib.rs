//! Connection driver `serial`: a serial line attached to the worker itself.
//!
//! Opens the device without making it the controlling terminal, takes an exclusive `flock`
//! on it (so two jobs, or a job and an admin's `screen`, never share a console unnoticed),
//! and sets it to raw 8N1 at the configured speed with no flow control.
//!
//! Device configuration:
//!
//! ```yaml
//! connection:
//!   driver: serial
//!   device: /dev/serial/by-id/usb-FTDI_FT232R_A50285BI-if00-port0
//!   baud: 115200        # optional, default 115200
//! ```
#![deny(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use basalt_plugin_api::fd::{read_with_timeout, FdRead};
use basalt_plugin_api::{export_plugin, parse_config, ConnectionDriver, Console, Log, PluginError};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::termios::{
    cfmakeraw, cfsetspeed, tcflush, tcgetattr, tcsetattr, BaudRate, ControlFlags, FlushArg,
    InputFlags, SetArg,
};

/// The driver's configuration.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The serial device node.
    pub device: String,
    /// Line speed in bits per second.
    #[serde(default = "default_baud")]
    pub baud: u32,
}

fn default_baud() -> u32 {
    115_200
}

/// Maps a speed in bits per second onto termios' constants.
fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        500_000 => BaudRate::B500000,
        576_000 => BaudRate::B576000,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        1_500_000 => BaudRate::B1500000,
        2_000_000 => BaudRate::B2000000,
        3_000_000 => BaudRate::B3000000,
        _ => return None,
    })
}

/// The driver.
pub struct SerialConnection {
    device: String,
    baud: BaudRate,
    bits_per_second: u32,
    log: Log,
}

/// Builds the driver from its `connection:` mapping (JSON text).
pub fn new_serial_connection(config: &str, log: Log) -> Result<SerialConnection, PluginError> {
    let config: SerialConfig = parse_config("connection serial", config)?;
    let baud = baud_rate(config.baud).ok_or_else(|| {
        PluginError::invalid_config(format!(
            "connection serial: baud {} is not a standard line speed (e.g. 9600, 115200, \
             1500000)",
            config.baud
        ))
    })?;
    Ok(SerialConnection {
        device: config.device,
        baud,
        bits_per_second: config.baud,
        log,
    })
}

/// An open serial line, locked for this console.
pub struct SerialConsole {
    port: Option<Flock<File>>,
    device: String,
}

impl SerialConnection {
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> PluginError {
        PluginError::infrastructure(format!("connection serial {}: {what}: {e}", self.device))
    }

    fn configure(&self, port: &File) -> Result<(), PluginError> {
        let mut modes = tcgetattr(port).map_err(|e| self.fail("not a serial line", e))?;
        cfmakeraw(&mut modes);
        cfsetspeed(&mut modes, self.baud).map_err(|e| self.fail("cannot set speed", e))?;
        // 8 data bits, no parity, one stop bit, no hardware or software flow control,
        // ignore modem control lines, enable the receiver.
        modes.control_flags &= !(ControlFlags::PARENB
            | ControlFlags::CSTOPB
            | ControlFlags::CSIZE
            | ControlFlags::CRTSCTS);
        modes.control_flags |= ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD;
        modes.input_flags &= !(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
        tcsetattr(port, SetArg::TCSANOW, &modes)
            .map_err(|e| self.fail("cannot set line modes", e))?;
        // Stale bytes from before this job belong to nobody.
        let _ = tcflush(port, FlushArg::TCIOFLUSH);
        Ok(())
    }
}

impl ConnectionDriver for SerialConnection {
    type Console = SerialConsole;

    fn connect(&self, _timeout: Duration) -> Result<SerialConsole, PluginError> {
        self.log.info(&format!(
            "connection serial: opening {} at {} 8N1",
            self.device, self.bits_per_second
        ));
        let port = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&self.device)
            .map_err(|e| self.fail("cannot open", e))?;
        let port = Flock::lock(port, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            self.fail(
                "already in use (another process holds its lock; find it with `fuser`)",
                e,
            )
        })?;
        self.configure(&port)?;
        Ok(SerialConsole {
            port: Some(port),
            device: self.device.clone(),
        })
    }
}

impl SerialConsole {
    fn port(&mut self) -> Result<&mut File, PluginError> {
        let device = &self.device;
        self.port.as_deref_mut().ok_or_else(|| {
            PluginError::connection_closed(format!("connection serial {device}: closed"))
        })
    }
}

impl Console for SerialConsole {
    fn read(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, PluginError> {
        let device = self.device.clone();
        match read_with_timeout(self.port()?, max, timeout) {
            Ok(FdRead::Data(data)) => Ok(data),
            Ok(FdRead::TimedOut) => Ok(Vec::new()),
            Ok(FdRead::Closed) => Err(PluginError::connection_closed(format!(
                "connection serial {device}: the line hung up"
            ))),
            Err(e) => Err(PluginError::infrastructure(format!(
                "connection serial {device}: read failed: {e}"
            ))),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), PluginError> {
        let device = self.device.clone();
        self.port()?.write_all(data).map_err(|e| {
            PluginError::infrastructure(format!("connection serial {device}: write failed: {e}"))
        })
    }

    fn close(&mut self) -> Result<(), PluginError> {
        // Dropping the Flock releases the lock and closes the descriptor.
        self.port = None;
        Ok(())
    }
}

export_plugin! {
    name: "connection-serial",
    drivers: [
        connection "serial": "Opens a local serial line (raw 8N1 at the configured baud rate)" => new_serial_connection,
    ],
}
