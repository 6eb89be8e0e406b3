//! The root module every plugin library exports, and what it declares.

use std::fmt;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::{BootDriverBox, ConnectionDriverBox, JobLogBox, PluginError, PowerDriverBox};

/// The root module: the one thing the host looks up in a plugin library.
///
/// abi_stable checks its layout, and the plugin-api version it was built against, before any
/// plugin code runs. Fields may only be appended after the `last_prefix_field`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Says what the library is and which drivers it provides.
    #[sabi(last_prefix_field)]
    pub describe: extern "C" fn() -> PluginDescription,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "basalt_plugin";
    const NAME: &'static str = "basalt plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A plugin library's description of itself.
#[repr(C)]
#[derive(StableAbi)]
pub struct PluginDescription {
    /// The library's name (by convention its crate name, e.g. `power-command`).
    pub name: RString,
    /// The library's own version (its crate version), shown by `basalt plugins list`.
    pub version: RString,
    /// Every driver the library provides.
    pub drivers: RVec<DriverDecl>,
}

/// The three kinds of driver a plugin can provide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum DriverKind {
    /// Switches board power.
    Power,
    /// Opens a board's console.
    Connection,
    /// Drives a board's boot.
    Boot,
}

impl DriverKind {
    /// Every kind, in display order.
    pub const ALL: [DriverKind; 3] = [Self::Power, Self::Connection, Self::Boot];

    /// The lower-case name used in the CLI, configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Power => "power",
            Self::Connection => "connection",
            Self::Boot => "boot",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A driver's constructor; its variant is the driver's kind, so the two cannot disagree.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy)]
pub enum DriverConstructor {
    /// A power driver, built from its configuration (JSON text) and a job log.
    Power(extern "C" fn(RStr<'_>, JobLogBox) -> RResult<PowerDriverBox, PluginError>),
    /// A connection driver, built from its configuration (JSON text) and a job log.
    Connection(extern "C" fn(RStr<'_>, JobLogBox) -> RResult<ConnectionDriverBox, PluginError>),
    /// A boot driver, built from its configuration (JSON text) and a job log.
    Boot(extern "C" fn(RStr<'_>, JobLogBox) -> RResult<BootDriverBox, PluginError>),
}

impl DriverConstructor {
    /// The kind of driver this builds.
    pub fn kind(&self) -> DriverKind {
        match self {
            Self::Power(_) => DriverKind::Power,
            Self::Connection(_) => DriverKind::Connection,
            Self::Boot(_) => DriverKind::Boot,
        }
    }
}

/// One driver a library provides.
#[repr(C)]
#[derive(StableAbi)]
pub struct DriverDecl {
    /// The name device configurations use to pick it (`command`, `pdudaemon`, `minimal`);
    /// unique per kind across every loaded plugin.
    pub name: RString,
    /// One line for `basalt plugins list`.
    pub description: RString,
    /// Builds the driver.
    pub constructor: DriverConstructor,
}
