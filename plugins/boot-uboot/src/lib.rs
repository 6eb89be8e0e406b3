//! Boot driver `u-boot`: LAVA's u-boot boot method.
//!
//! Resets the board, interrupts autoboot at the interrupt prompt, waits for the bootloader
//! prompt, sends the device configuration's command set for the job's `commands:` (`ramdisk`,
//! `nfs`, `nbd`, `usb`, ... or an explicit list), with the deployed files filled into the
//! `{PLACEHOLDERS}`, watches for u-boot's error messages, waits for the kernel to start, and
//! logs in like every boot method.
//!
//! Configuration: the device's `actions.boot.methods.u-boot` section (its `parameters` and
//! command sets) plus `_constants` and `_parameters` (the device's `constants` and
//! `parameters`) added by the host. The boot action may carry `_deployed` (artifact → file),
//! `_server_ip` and `_kernel_type` (`zimage`, `image`, `uimage`), also added by the host.

mod placeholders;

use std::time::Duration;

use basalt_plugin_api::bootloader::{Method, Prepared};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};

pub use placeholders::{add_boot_command, substitutions};

const DRIVER: &str = "boot u-boot";

/// The driver, built from the device's u-boot section.
pub struct UbootBoot {
    method: Method,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.u-boot` (JSON).
pub fn new_uboot_boot(config: &str, log: Log) -> Result<UbootBoot, PluginError> {
    let method = Method::for_driver(DRIVER, "u-boot", config)?;
    Ok(UbootBoot { method, _log: log })
}

impl BootDriver for UbootBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let parameters = self.method.device_parameters();
        let boot = Prepared::new(&self.method, session, action, timeout, |subs, action| {
            add_boot_command(subs, action, parameters)
        })?;
        boot.run(&self.method, session)?;
        boot.log_in(&self.method, session)
    }
}

export_plugin! {
    name: "boot-uboot",
    drivers: [
        boot "u-boot": "Interrupts u-boot, sends the device's boot commands with the deployed files, boots to a shell" => new_uboot_boot,
    ],
}
