//! The plugin interface of Basalt: the one crate a power, connection or boot driver depends on.
//!
//! A plugin is a `cdylib` that exports one root module with [`export_plugin!`]. The root
//! module names the library and its version and lists its drivers; each driver has a kind
//! ([`DriverKind`]), a name that device configurations use to pick it, a one-line description
//! and a constructor that takes the driver's configuration (the relevant part of a rendered
//! device configuration, as JSON text) plus a [`Log`] for the job log.
//!
//! Driver authors implement plain Rust traits — [`PowerDriver`], [`ConnectionDriver`] with
//! [`Console`], [`BootDriver`] — that return `Result<_, PluginError>`. The crate wraps them
//! into abi_stable trait objects (`*Abi_TO`) behind panic guards, so a panicking driver
//! becomes a `BUG` error in one job instead of an abort of the dispatcher.
//!
//! Compatibility: the crate's Cargo version is the ABI version. The host refuses a library
//! built against an incompatible plugin-api (before 1.0: a different minor version) with an
//! error naming the file and both versions. See `CHANGELOG.md` for what each version changed.
//!
//! # A complete power plugin
//!
//! ```
//! use std::time::Duration;
//! use basalt_plugin_api::{export_plugin, parse_config, Log, PluginError, PowerDriver, PowerState};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     outlet: u32,
//! }
//!
//! struct Relay {
//!     outlet: u32,
//!     log: Log,
//! }
//!
//! impl PowerDriver for Relay {
//!     fn on(&self, _timeout: Duration) -> Result<(), PluginError> {
//!         self.log.info(&format!("relay: outlet {} on", self.outlet));
//!         Ok(())
//!     }
//!     fn off(&self, _timeout: Duration) -> Result<(), PluginError> {
//!         self.log.info(&format!("relay: outlet {} off", self.outlet));
//!         Ok(())
//!     }
//!     fn reboot(&self, timeout: Duration) -> Result<(), PluginError> {
//!         self.off(timeout)?;
//!         self.on(timeout)
//!     }
//!     fn state(&self, _timeout: Duration) -> Result<PowerState, PluginError> {
//!         Ok(PowerState::Unknown)
//!     }
//! }
//!
//! fn new_relay(config: &str, log: Log) -> Result<Relay, PluginError> {
//!     let config: Config = parse_config("relay", config)?;
//!     Ok(Relay { outlet: config.outlet, log })
//! }
//!
//! export_plugin! {
//!     name: "power-relay",
//!     drivers: [
//!         power "relay": "Switches a USB relay board" => new_relay,
//!     ],
//! }
//! # fn main() {}
//! ```
#![deny(missing_docs)]
// abi_stable 0.11's `sabi_trait` expands to impls inside a const block, which rustc now lints.
#![allow(non_local_definitions)]

mod boot;
pub mod bootloader;
mod config;
mod connection;
mod error;
#[doc(hidden)]
pub mod export;
pub mod fastboot;
pub mod fd;
mod guard;
pub mod kernel;
mod log;
pub mod login;
pub mod menu;
mod power;
pub mod process;
pub mod pty;
mod root;

pub use boot::{
    boot_driver_box, BootDriver, BootDriverAbi, BootDriverAbi_TO, BootDriverBox, BootHost,
    BootSession, BootSessionAbi, BootSessionAbi_TO, ExpectMatch, ExpectMatchAbi, PowerAction,
};
pub use config::{parse_config, string_list, OneOrMany};
pub use connection::{
    connection_driver_box, console_box, ConnectionDriver, ConnectionDriverAbi,
    ConnectionDriverAbi_TO, ConnectionDriverBox, Console, ConsoleAbi, ConsoleAbi_TO, ConsoleBox,
};
pub use error::{ErrorKind, PluginError};
pub use guard::{guard, to_millis};
pub use log::{JobLogAbi, JobLogAbi_TO, JobLogBox, Log, LogLevel, LogSink, MemoryLog};
pub use power::{
    power_driver_box, PowerDriver, PowerDriverAbi, PowerDriverAbi_TO, PowerDriverBox, PowerState,
};
pub use root::{
    DriverConstructor, DriverDecl, DriverKind, PluginDescription, PluginMod, PluginModRef,
};

/// The abi_stable version this crate is built on, re-exported so plugins never name it in
/// their own `Cargo.toml` (and so can never disagree with the host about it).
pub use abi_stable;
