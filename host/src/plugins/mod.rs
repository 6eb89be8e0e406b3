//! The plugin host: finds plugin libraries, loads them with abi_stable's checks, and builds
//! drivers by (kind, name).
//!
//! Only this module touches dynamic libraries. Loading is strict and never fatal: every file
//! that cannot be used becomes a [`LoadError`] naming the file and the reason, collected in the
//! [`Registry`] next to the drivers that did load.

mod discover;
mod drivers;
mod elf_check;
mod load;
mod registry;

pub use discover::{plugin_search_path, PluginSearchPath, SearchDir, PLUGIN_PATH_ENV};
pub use drivers::{BootDriver, Connection, ConsoleStream, DriverError, PowerDriver};
pub use load::LoadError;
pub use registry::{DriverInfo, LibraryInfo, Registry};
