//! Boot driver `barebox`: LAVA's barebox boot method.
//!
//! As LAVA's `BareboxAction`: resets the board, stops barebox's autoboot at its interrupt
//! prompt (`constants.barebox.interrupt-prompt`, a newline by default), sends the command set
//! the job names (`ramdisk`, `nfs`, `tftp`, … of `actions.boot.methods.barebox`, or the job's
//! own list) with the deployed files filled in, each after barebox's prompt, watches barebox's
//! error messages, waits for its final message, and logs in like every boot method.

use std::time::Duration;

use basalt_plugin_api::bootloader::{Method, Prepared};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};

const DRIVER: &str = "boot barebox";

/// The driver, built from the device's barebox section.
pub struct BareboxBoot {
    method: Method,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.barebox` (JSON).
pub fn new_barebox_boot(config: &str, log: Log) -> Result<BareboxBoot, PluginError> {
    let method = Method::for_driver(DRIVER, "barebox", config)?;
    Ok(BareboxBoot { method, _log: log })
}

impl BootDriver for BareboxBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let boot = Prepared::new(&self.method, session, action, timeout, |_, _| {})?;
        boot.run(&self.method, session)?;
        boot.log_in(&self.method, session)
    }
}

export_plugin! {
    name: "boot-barebox",
    drivers: [
        boot "barebox": "Interrupts barebox, sends the device's barebox commands with the deployed files, boots to a shell" => new_barebox_boot,
    ],
}
