//! Power drivers: switching a board on and off through a PDU, a relay or a command.

use std::time::Duration;

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult},
    StableAbi,
};

use crate::guard::{guard, millis};
use crate::PluginError;

/// What a power driver knows about a board's power.
///
/// LAVA and pdudaemon can only switch power, never read it back; drivers for hardware that
/// can report the outlet state should, and the others answer [`PowerState::Unknown`].
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PowerState {
    /// The outlet is on.
    On,
    /// The outlet is off.
    Off,
    /// The driver cannot tell.
    Unknown,
}

impl PowerState {
    /// Lower-case name for output.
    pub fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Unknown => "unknown",
        }
    }
}

/// What a plugin author implements for a power driver.
///
/// Every method must return within `timeout` (the host's action timeout for this step) and
/// must be safe to repeat: `off` on a board that is off succeeds.
pub trait PowerDriver: Send + Sync + 'static {
    /// Switches the board on.
    fn on(&self, timeout: Duration) -> Result<(), PluginError>;
    /// Switches the board off.
    fn off(&self, timeout: Duration) -> Result<(), PluginError>;
    /// Power-cycles the board (LAVA's `hard_reset`).
    fn reboot(&self, timeout: Duration) -> Result<(), PluginError>;
    /// Reads back the power state; the default says it cannot.
    fn state(&self, timeout: Duration) -> Result<PowerState, PluginError> {
        let _ = timeout;
        Ok(PowerState::Unknown)
    }
}

/// The ABI form of [`PowerDriver`]; the host calls it through [`PowerDriverBox`].
#[sabi_trait]
pub trait PowerDriverAbi: Send + Sync {
    /// See [`PowerDriver::on`]; the timeout is in milliseconds.
    fn on(&self, timeout_ms: u64) -> RResult<(), PluginError>;
    /// See [`PowerDriver::off`].
    fn off(&self, timeout_ms: u64) -> RResult<(), PluginError>;
    /// See [`PowerDriver::reboot`].
    fn reboot(&self, timeout_ms: u64) -> RResult<(), PluginError>;
    /// See [`PowerDriver::state`].
    #[sabi(last_prefix_field)]
    fn state(&self, timeout_ms: u64) -> RResult<PowerState, PluginError>;
}

/// An owned power driver as it crosses the boundary.
pub type PowerDriverBox = PowerDriverAbi_TO<'static, RBox<()>>;

struct PowerAdapter<T>(T);

impl<T: PowerDriver> PowerDriverAbi for PowerAdapter<T> {
    fn on(&self, timeout_ms: u64) -> RResult<(), PluginError> {
        guard(|| self.0.on(millis(timeout_ms)))
    }
    fn off(&self, timeout_ms: u64) -> RResult<(), PluginError> {
        guard(|| self.0.off(millis(timeout_ms)))
    }
    fn reboot(&self, timeout_ms: u64) -> RResult<(), PluginError> {
        guard(|| self.0.reboot(millis(timeout_ms)))
    }
    fn state(&self, timeout_ms: u64) -> RResult<PowerState, PluginError> {
        guard(|| self.0.state(millis(timeout_ms)))
    }
}

/// Erases a [`PowerDriver`] into the form that crosses the boundary, with panic guards.
pub fn power_driver_box(driver: impl PowerDriver) -> PowerDriverBox {
    PowerDriverAbi_TO::from_value(PowerAdapter(driver), TD_Opaque)
}
