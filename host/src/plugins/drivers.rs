//! Safe handles on built drivers: `Result`s instead of `RResult`s, errors that name the driver.

use std::time::Duration;

use abi_stable::std_types::{RResult, RSlice, RStr};
use basalt_plugin_api::{
    to_millis, BootDriverBox, BootHost, BootSession, ConnectionDriverBox, ConsoleBox, DriverKind,
    JobLogBox, Log, PluginError, PowerDriverBox, PowerState,
};

use super::registry::DriverInfo;
use crate::failure::FailureClass;

/// A driver could not be found, or a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No loaded plugin provides this driver.
    #[error(
        "no {kind} driver named '{name}' is loaded (loaded {kind} drivers: {}); check \
         `basalt plugins list` and the plugin directories",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    Unknown {
        /// The kind asked for.
        kind: DriverKind,
        /// The name asked for.
        name: String,
        /// What is loaded for that kind.
        available: Vec<String>,
    },
    /// The driver reported an error.
    #[error("{kind} driver '{name}' ({operation}): {error}")]
    Plugin {
        /// The driver's kind.
        kind: DriverKind,
        /// The driver's name.
        name: String,
        /// What the host asked for (`on`, `connect`, ...).
        operation: &'static str,
        /// What the driver said.
        error: PluginError,
    },
}

impl DriverError {
    /// Which LAVA failure class a job that hit this error ends with.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Unknown { .. } => FailureClass::Configuration,
            Self::Plugin { error, .. } => FailureClass::of_plugin_error(error.kind),
        }
    }
}

/// The name and kind of a built driver, for error messages.
#[derive(Clone, Debug)]
struct Named {
    kind: DriverKind,
    name: String,
}

impl Named {
    fn of(info: &DriverInfo) -> Self {
        Self {
            kind: info.kind,
            name: info.name.clone(),
        }
    }

    fn check<T>(
        &self,
        operation: &'static str,
        result: RResult<T, PluginError>,
    ) -> Result<T, DriverError> {
        result.into_result().map_err(|error| DriverError::Plugin {
            kind: self.kind,
            name: self.name.clone(),
            operation,
            error,
        })
    }
}

type Constructor<T> = extern "C" fn(RStr<'_>, JobLogBox) -> RResult<T, PluginError>;

/// Calls a driver's constructor with its JSON configuration and a job log.
fn construct<T>(
    info: &DriverInfo,
    build: Constructor<T>,
    config: &str,
    log: Log,
) -> Result<(Named, T), DriverError> {
    let id = Named::of(info);
    let inner = id.check("configure", build(RStr::from_str(config), log.into_abi()))?;
    Ok((id, inner))
}

/// A built power driver.
pub struct PowerDriver {
    id: Named,
    inner: PowerDriverBox,
}

impl PowerDriver {
    pub(super) fn build(
        info: &DriverInfo,
        build: Constructor<PowerDriverBox>,
        config: &str,
        log: Log,
    ) -> Result<Self, DriverError> {
        let (id, inner) = construct(info, build, config, log)?;
        Ok(Self { id, inner })
    }

    /// Switches the board on.
    pub fn on(&self, timeout: Duration) -> Result<(), DriverError> {
        self.id.check("on", self.inner.on(to_millis(timeout)))
    }

    /// Switches the board off.
    pub fn off(&self, timeout: Duration) -> Result<(), DriverError> {
        self.id.check("off", self.inner.off(to_millis(timeout)))
    }

    /// Power-cycles the board.
    pub fn reboot(&self, timeout: Duration) -> Result<(), DriverError> {
        self.id
            .check("reboot", self.inner.reboot(to_millis(timeout)))
    }

    /// Reads the power state back, if the driver can.
    pub fn state(&self, timeout: Duration) -> Result<PowerState, DriverError> {
        self.id.check("state", self.inner.state(to_millis(timeout)))
    }
}

/// A built connection driver.
pub struct Connection {
    id: Named,
    inner: ConnectionDriverBox,
}

impl Connection {
    pub(super) fn build(
        info: &DriverInfo,
        build: Constructor<ConnectionDriverBox>,
        config: &str,
        log: Log,
    ) -> Result<Self, DriverError> {
        let (id, inner) = construct(info, build, config, log)?;
        Ok(Self { id, inner })
    }

    /// Opens the console.
    pub fn connect(&self, timeout: Duration) -> Result<ConsoleStream, DriverError> {
        let inner = self
            .id
            .check("connect", self.inner.connect(to_millis(timeout)))?;
        Ok(ConsoleStream {
            id: self.id.clone(),
            inner,
            closed: false,
        })
    }
}

/// An open console; closed when dropped.
pub struct ConsoleStream {
    id: Named,
    inner: ConsoleBox,
    closed: bool,
}

impl ConsoleStream {
    /// Wraps a console built in this process (benchmarks and tests drive the expect engine
    /// with one); `name` stands for the connection driver in messages.
    pub fn in_process(name: &str, inner: ConsoleBox) -> Self {
        Self {
            id: Named {
                kind: DriverKind::Connection,
                name: name.to_owned(),
            },
            inner,
            closed: false,
        }
    }

    /// Reads what arrives within `timeout` (empty when nothing did).
    pub fn read(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, DriverError> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        let data = self
            .id
            .check("read", self.inner.read(max, to_millis(timeout)))?;
        Ok(data.into_vec())
    }

    /// Writes all of `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.id
            .check("write", self.inner.write(RSlice::from_slice(data)))
    }

    /// Closes the console.
    pub fn close(&mut self) -> Result<(), DriverError> {
        self.closed = true;
        self.id.check("close", self.inner.close())
    }
}

impl Drop for ConsoleStream {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.inner.close();
        }
    }
}

/// A built boot driver.
pub struct BootDriver {
    id: Named,
    inner: BootDriverBox,
}

impl BootDriver {
    pub(super) fn build(
        info: &DriverInfo,
        build: Constructor<BootDriverBox>,
        config: &str,
        log: Log,
    ) -> Result<Self, DriverError> {
        let (id, inner) = construct(info, build, config, log)?;
        Ok(Self { id, inner })
    }

    /// Runs one boot action (its parameters as JSON) against `host`.
    pub fn boot(
        &self,
        host: &mut impl BootHost,
        action: &str,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let session = BootSession::abi(host);
        self.id.check(
            "boot",
            self.inner
                .boot(session, RStr::from_str(action), to_millis(timeout)),
        )
    }
}
