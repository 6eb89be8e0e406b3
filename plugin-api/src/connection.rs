//! Connection drivers: a byte stream to a board's console (serial line, ser2net, ssh).

use std::time::Duration;

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult, RSlice, RVec},
};

use crate::guard::{guard, millis};
use crate::PluginError;

/// What a plugin author implements for a connection driver: a factory of console streams.
///
/// The driver is built once per device from the device configuration; `connect` may be called
/// again after a stream closed (LAVA reconnects after a reboot).
pub trait ConnectionDriver: Send + Sync + 'static {
    /// The console type `connect` returns.
    type Console: Console;
    /// Opens the console, giving up after `timeout`.
    fn connect(&self, timeout: Duration) -> Result<Self::Console, PluginError>;
}

/// An open console: a bidirectional byte stream.
pub trait Console: Send + 'static {
    /// Reads whatever arrives within `timeout`, at most `max` bytes. An empty vector means
    /// nothing arrived in time; a closed stream is a `CONNECTION_CLOSED` error.
    fn read(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, PluginError>;
    /// Writes all of `data`.
    fn write(&mut self, data: &[u8]) -> Result<(), PluginError>;
    /// Closes the stream and releases everything behind it (child processes, file
    /// descriptors). Closing twice is harmless.
    fn close(&mut self) -> Result<(), PluginError>;
}

/// The ABI form of [`ConnectionDriver`].
#[sabi_trait]
pub trait ConnectionDriverAbi: Send + Sync {
    /// See [`ConnectionDriver::connect`]; the timeout is in milliseconds.
    #[sabi(last_prefix_field)]
    fn connect(&self, timeout_ms: u64) -> RResult<ConsoleBox, PluginError>;
}

/// The ABI form of [`Console`].
#[sabi_trait]
pub trait ConsoleAbi: Send {
    /// See [`Console::read`].
    fn read(&mut self, max: u64, timeout_ms: u64) -> RResult<RVec<u8>, PluginError>;
    /// See [`Console::write`].
    fn write(&mut self, data: RSlice<'_, u8>) -> RResult<(), PluginError>;
    /// See [`Console::close`].
    #[sabi(last_prefix_field)]
    fn close(&mut self) -> RResult<(), PluginError>;
}

/// An owned connection driver as it crosses the boundary.
pub type ConnectionDriverBox = ConnectionDriverAbi_TO<'static, RBox<()>>;
/// An owned open console as it crosses the boundary.
pub type ConsoleBox = ConsoleAbi_TO<'static, RBox<()>>;

struct ConnectionAdapter<T>(T);

impl<T: ConnectionDriver> ConnectionDriverAbi for ConnectionAdapter<T> {
    fn connect(&self, timeout_ms: u64) -> RResult<ConsoleBox, PluginError> {
        guard(|| self.0.connect(millis(timeout_ms)).map(console_box))
    }
}

struct ConsoleAdapter<T>(T);

impl<T: Console> ConsoleAbi for ConsoleAdapter<T> {
    fn read(&mut self, max: u64, timeout_ms: u64) -> RResult<RVec<u8>, PluginError> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        guard(|| self.0.read(max, millis(timeout_ms)).map(RVec::from))
    }
    fn write(&mut self, data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.write(data.as_slice()))
    }
    fn close(&mut self) -> RResult<(), PluginError> {
        guard(|| self.0.close())
    }
}

/// Erases a [`ConnectionDriver`] into the form that crosses the boundary.
pub fn connection_driver_box(driver: impl ConnectionDriver) -> ConnectionDriverBox {
    ConnectionDriverAbi_TO::from_value(ConnectionAdapter(driver), TD_Opaque)
}

/// Erases a [`Console`] into the form that crosses the boundary.
pub fn console_box(console: impl Console) -> ConsoleBox {
    ConsoleAbi_TO::from_value(ConsoleAdapter(console), TD_Opaque)
}
