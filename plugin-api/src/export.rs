//! The glue behind [`export_plugin!`](crate::export_plugin): turns ordinary Rust
//! constructors into the `extern "C"` functions the root module lists.

use abi_stable::std_types::{RResult, RStr, RString, RVec};

use crate::{
    boot_driver_box, connection_driver_box, guard::guard, power_driver_box, BootDriver,
    BootDriverBox, ConnectionDriver, ConnectionDriverBox, DriverConstructor, DriverDecl, JobLogBox,
    Log, PluginDescription, PluginError, PowerDriver, PowerDriverBox,
};

/// Calls a power driver constructor behind a panic guard.
pub fn construct_power<T: PowerDriver>(
    config: RStr<'_>,
    log: JobLogBox,
    build: fn(&str, Log) -> Result<T, PluginError>,
) -> RResult<PowerDriverBox, PluginError> {
    guard(|| build(config.as_str(), Log::from_abi(log)).map(power_driver_box))
}

/// Calls a connection driver constructor behind a panic guard.
pub fn construct_connection<T: ConnectionDriver>(
    config: RStr<'_>,
    log: JobLogBox,
    build: fn(&str, Log) -> Result<T, PluginError>,
) -> RResult<ConnectionDriverBox, PluginError> {
    guard(|| build(config.as_str(), Log::from_abi(log)).map(connection_driver_box))
}

/// Calls a boot driver constructor behind a panic guard.
pub fn construct_boot<T: BootDriver>(
    config: RStr<'_>,
    log: JobLogBox,
    build: fn(&str, Log) -> Result<T, PluginError>,
) -> RResult<BootDriverBox, PluginError> {
    guard(|| build(config.as_str(), Log::from_abi(log)).map(boot_driver_box))
}

impl DriverDecl {
    /// Declares a driver.
    pub fn new(name: &str, description: &str, constructor: DriverConstructor) -> Self {
        Self {
            name: RString::from(name),
            description: RString::from(description),
            constructor,
        }
    }
}

impl PluginDescription {
    /// Describes a library.
    pub fn new(name: &str, version: &str, drivers: Vec<DriverDecl>) -> Self {
        Self {
            name: RString::from(name),
            version: RString::from(version),
            drivers: RVec::from(drivers),
        }
    }
}

/// Exports a plugin library's root module.
///
/// Give the library's name and list each driver as `kind "name": "description" => constructor`
/// where `kind` is `power`, `connection` or `boot` and the constructor is a
/// `fn(&str, Log) -> Result<impl PowerDriver / ConnectionDriver / BootDriver, PluginError>`
/// that receives the driver's JSON configuration. The library's version is its crate version.
/// Use it once per library, at the crate root.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        drivers: [ $( $kind:ident $driver:literal : $description:literal => $ctor:path ),+ $(,)? ] $(,)?
    ) => {
        /// Builds the root module; abi_stable's loader calls it through the header below.
        pub fn basalt_plugin_root_module() -> $crate::PluginModRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn describe() -> $crate::PluginDescription {
                $crate::PluginDescription::new(
                    $name,
                    env!("CARGO_PKG_VERSION"),
                    vec![ $( $crate::__driver_decl!($kind, $driver, $description, $ctor) ),+ ],
                )
            }
            $crate::PluginMod { describe }.leak_into_prefix()
        }

        // What abi_stable's `#[export_root_module]` generates, spelled through `$crate` so that
        // plugins need no direct dependency on abi_stable. The symbol name is abi_stable's
        // `ROOT_MODULE_LOADER_NAME`; a test in plugin-api keeps the two equal.
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static BASALT_PLUGIN_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(basalt_plugin_root_module)
            }
            // SAFETY: the constructor returns the `PluginModRef` named in the type argument,
            // and the layout check stays on.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Implementation detail of [`export_plugin!`]: one driver declaration.
#[doc(hidden)]
#[macro_export]
macro_rules! __driver_decl {
    (power, $driver:literal, $description:literal, $ctor:path) => {{
        extern "C" fn construct(
            config: $crate::abi_stable::std_types::RStr<'_>,
            log: $crate::JobLogBox,
        ) -> $crate::abi_stable::std_types::RResult<$crate::PowerDriverBox, $crate::PluginError> {
            $crate::export::construct_power(config, log, $ctor)
        }
        $crate::DriverDecl::new($driver, $description, $crate::DriverConstructor::Power(construct))
    }};
    (connection, $driver:literal, $description:literal, $ctor:path) => {{
        extern "C" fn construct(
            config: $crate::abi_stable::std_types::RStr<'_>,
            log: $crate::JobLogBox,
        ) -> $crate::abi_stable::std_types::RResult<$crate::ConnectionDriverBox, $crate::PluginError>
        {
            $crate::export::construct_connection(config, log, $ctor)
        }
        $crate::DriverDecl::new(
            $driver,
            $description,
            $crate::DriverConstructor::Connection(construct),
        )
    }};
    (boot, $driver:literal, $description:literal, $ctor:path) => {{
        extern "C" fn construct(
            config: $crate::abi_stable::std_types::RStr<'_>,
            log: $crate::JobLogBox,
        ) -> $crate::abi_stable::std_types::RResult<$crate::BootDriverBox, $crate::PluginError> {
            $crate::export::construct_boot(config, log, $ctor)
        }
        $crate::DriverDecl::new($driver, $description, $crate::DriverConstructor::Boot(construct))
    }};
}

#[cfg(test)]
mod tests {
    /// `export_plugin!` hard-codes the symbol abi_stable's loader looks up; this fails when an
    /// abi_stable upgrade changes it.
    #[test]
    fn exported_symbol_matches_abi_stable_loader_name() {
        let macro_source = include_str!("export.rs");
        let expected = format!(
            "#[export_name = \"{}\"]",
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
        assert!(
            macro_source.contains(&expected),
            "export_plugin! must export {expected}"
        );
    }
}
