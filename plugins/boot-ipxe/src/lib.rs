//! Boot driver `ipxe`: LAVA's iPXE boot method.
//!
//! As LAVA's `BootloaderAction` for iPXE: resets the board, waits for "Press Ctrl-B for the
//! iPXE command line", sends the control characters of `constants.ipxe.interrupt_ctrl_list`
//! (Ctrl-B), then sends the command set the job names (`ramdisk`, `nfs`, `nbd`, … of
//! `actions.boot.methods.ipxe`, or the job's own list: `dhcp net0`, `kernel tftp://…`,
//! `initrd …`, `boot`) with the deployed files and the device's `lava_mac` filled in, each
//! after the `iPXE>` prompt, watching iPXE's error messages, and logs in like every boot
//! method.
//!
//! With `use_bootscript: true` in the boot action, the commands go into a boot script
//! (`#!ipxe`) next to the kernel in the job's TFTP directory instead, and the board is told to
//! `dhcp net0` and `chain tftp://SERVER/…/script.ipxe`, as LAVA does (the script keeps
//! placeholders that had no value, as LAVA's does).

use std::time::Duration;

use basalt_plugin_api::bootloader::{Method, Missing, Prepared};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};
use serde_json::Value;

const DRIVER: &str = "boot ipxe";

/// The boot script's name, as LAVA names it.
const SCRIPT: &str = "script.ipxe";

/// The driver, built from the device's ipxe section.
pub struct IpxeBoot {
    method: Method,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.ipxe` (JSON).
pub fn new_ipxe_boot(config: &str, log: Log) -> Result<IpxeBoot, PluginError> {
    let method = Method::for_driver(DRIVER, "ipxe", config)?;
    Ok(IpxeBoot { method, _log: log })
}

/// The boot script LAVA writes: `#!ipxe`, an empty line, one command per line.
pub fn boot_script(commands: &[String]) -> String {
    let mut script = String::from("#!ipxe\n\n");
    for command in commands {
        script.push_str(command);
        script.push('\n');
    }
    script
}

impl BootDriver for IpxeBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let mut boot = Prepared::new(&self.method, session, action, timeout, |_, _| {})?;
        let use_bootscript = boot
            .action
            .get("use_bootscript")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if use_bootscript {
            let (local, remote) = boot.beside_kernel(SCRIPT).ok_or_else(|| {
                PluginError::job(format!(
                    "{DRIVER}: use_bootscript needs a kernel deployed over TFTP"
                ))
            })?;
            // LAVA's script keeps placeholders without a value, where the console drops them.
            let script = boot_script(&boot.subs.apply(&boot.listed, Missing::Keep));
            session.publish(&local, script.as_bytes())?;
            let server = boot.subs.get("{SERVER_IP}").unwrap_or_default();
            boot.commands = vec![
                "dhcp net0".to_owned(),
                format!("chain tftp://{server}/{remote}"),
            ];
            session.info(&format!(
                "Parsed boot commands: {}",
                boot.commands.join("; ")
            ));
        }
        boot.run(&self.method, session)?;
        boot.log_in(&self.method, session)
    }
}

export_plugin! {
    name: "boot-ipxe",
    drivers: [
        boot "ipxe": "Interrupts iPXE with Ctrl-B, sends the device's iPXE commands (or chains a boot script) with the deployed files, boots to a shell" => new_ipxe_boot,
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_boot_script_is_lavas_with_placeholders_kept_where_they_have_no_value() {
        let action =
            json!({"_server_ip": "10.0.2.2", "_deployed": {"kernel": "42/kernel/bzImage"}});
        let subs = basalt_plugin_api::bootloader::Substitutions::for_boot(&action, None);
        let commands = subs.apply(
            &[
                "dhcp net0".to_owned(),
                "kernel tftp://{SERVER_IP}/{KERNEL} {LAVA_MAC}".to_owned(),
            ],
            Missing::Keep,
        );
        assert_eq!(
            boot_script(&commands),
            "#!ipxe\n\ndhcp net0\nkernel tftp://10.0.2.2/42/kernel/bzImage {LAVA_MAC}\n"
        );
    }
}
