//! Boot driver `grub`: LAVA's GRUB boot method (`method: grub`).
//!
//! As LAVA's `GrubMainAction`: resets the board, waits for GRUB's menu (`constants.grub.
//! interrupt-prompt`, "for a command-line"), presses `c` for the command line, sends the
//! command set the job names (`ramdisk`, `nfs`, `debian-installer`, … of
//! `actions.boot.methods.grub`, or the job's own list) with `{SERVER_IP}`, `{KERNEL}`,
//! `{RAMDISK}`, `{DTB}`, `{NFSROOTFS}`, … filled in, each after the `grub>` prompt, with GRUB's
//! error messages watched. Then it logs in; a boot without prompts that names
//! `boot_finished` (an installer) waits for that text and powers the board off, as LAVA's
//! `InstallerWait` does.
//!
//! Devices whose GRUB section has a `sequence` (LAVA's `GrubSequenceAction`, fastboot-driven
//! GRUB on HiKey-class boards) and `grub-efi` (LAVA's UEFI menu selection) are not built yet:
//! the driver refuses them by name rather than boot them differently from LAVA.

use std::time::Duration;

use basalt_plugin_api::bootloader::{Method, Prepared};
use basalt_plugin_api::login::{time_left, waiting_for};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError, PowerAction};
use serde_json::Value;

const DRIVER: &str = "boot grub";

/// The driver, built from the device's grub section.
pub struct GrubBoot {
    method: Method,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.grub` (JSON).
pub fn new_grub_boot(config: &str, log: Log) -> Result<GrubBoot, PluginError> {
    let method = Method::for_driver(DRIVER, "grub", config)?;
    if method.section().get("sequence").is_some() {
        return Err(PluginError::unsupported(format!(
            "{DRIVER}: this device's grub method boots through a sequence (LAVA's grub-sequence-action), which Basalt does not run yet"
        )));
    }
    Ok(GrubBoot { method, _log: log })
}

/// `boot_finished` of the boot action: the text an installer prints when it is done.
fn boot_finished(action: &Value) -> Vec<String> {
    match action.get("boot_finished") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl BootDriver for GrubBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let boot = Prepared::new(&self.method, session, action, timeout, |_, _| {})?;
        boot.run(&self.method, session)?;
        let finished = boot_finished(&boot.action);
        if boot.login.prompts.is_empty() && !finished.is_empty() {
            session.info(&format!(
                "{DRIVER}: not expecting a shell, so waiting for boot_finished: {}",
                finished.join(", ")
            ));
            session
                .expect(&finished, time_left(boot.deadline))
                .map_err(|e| waiting_for(DRIVER, "boot_finished", e))?;
            return session.power(PowerAction::Off, time_left(boot.deadline));
        }
        boot.log_in(&self.method, session)
    }
}

export_plugin! {
    name: "boot-grub",
    drivers: [
        boot "grub": "Interrupts GRUB for its command line, sends the device's GRUB commands with the deployed files, boots to a shell" => new_grub_boot,
    ],
}
