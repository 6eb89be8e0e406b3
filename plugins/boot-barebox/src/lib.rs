//! Boot driver `barebox`: LAVA's barebox boot method.
//!
//! As LAVA's `BareboxAction`: resets the board, stops barebox's autoboot at its interrupt
//! prompt (`constants.barebox.interrupt-prompt`, a newline by default), sends the command set
//! the job names (`ramdisk`, `nfs`, `tftp`, … of `actions.boot.methods.barebox`, or the job's
//! own list) with the deployed files filled in, each after barebox's prompt, watches barebox's
//! error messages, waits for its final message, and logs in like every boot method.

use std::time::{Duration, Instant};

use basalt_plugin_api::bootloader::{self, Method, Missing, Substitutions};
use basalt_plugin_api::login::{log_in, read_boot_action};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};

const DRIVER: &str = "boot barebox";

/// The driver, built from the device's barebox section.
pub struct BareboxBoot {
    method: Method,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.barebox` (JSON).
pub fn new_barebox_boot(config: &str, log: Log) -> Result<BareboxBoot, PluginError> {
    let method = Method::from_config(DRIVER, "barebox", config)?;
    method.bootloader_prompt()?;
    method.lava_mac()?;
    Ok(BareboxBoot { method, _log: log })
}

impl BootDriver for BareboxBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let (login, action) = read_boot_action(DRIVER, action)?;
        let method = &self.method;
        let subs = Substitutions::for_boot(&action, method.lava_mac()?);
        let commands = subs.apply(&method.commands(session, &action)?, Missing::DropCommand);
        bootloader::run(method, session, &action, &subs, &commands, deadline)?;
        log_in(DRIVER, session, &login, deadline)
    }
}

export_plugin! {
    name: "boot-barebox",
    drivers: [
        boot "barebox": "Interrupts barebox, sends the device's barebox commands with the deployed files, boots to a shell" => new_barebox_boot,
    ],
}
