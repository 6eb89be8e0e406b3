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

use std::time::{Duration, Instant};

use basalt_plugin_api::bootloader::{self, Method, Missing, Substitutions};
use basalt_plugin_api::login::{log_in, read_boot_action};
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
    let method = Method::from_config(DRIVER, "ipxe", config)?;
    method.bootloader_prompt()?;
    method.lava_mac()?;
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

/// Where the script goes: next to the kernel (`JOB/kernel/script.ipxe`), as a path below the
/// job's TFTP directory, and the path the board asks the TFTP server for.
fn script_paths(action: &Value, subs: &Substitutions) -> Result<(String, String), PluginError> {
    let kernel = subs.get("{KERNEL}").ok_or_else(|| {
        PluginError::job(format!(
            "{DRIVER}: use_bootscript needs a kernel deployed over TFTP"
        ))
    })?;
    let job = action.get("_job_id").and_then(Value::as_str).unwrap_or("");
    let dir = kernel.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    let below_job = dir
        .strip_prefix(job)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(dir);
    let local = if below_job.is_empty() {
        SCRIPT.to_owned()
    } else {
        format!("{below_job}/{SCRIPT}")
    };
    let remote = if dir.is_empty() {
        SCRIPT.to_owned()
    } else {
        format!("{dir}/{SCRIPT}")
    };
    Ok((local, remote))
}

impl BootDriver for IpxeBoot {
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
        let listed = method.commands(session, &action)?;
        let use_bootscript = action
            .get("use_bootscript")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let commands = if use_bootscript {
            let (local, remote) = script_paths(&action, &subs)?;
            let script = boot_script(&subs.apply(&listed, Missing::Keep));
            session.publish(&local, script.as_bytes())?;
            let server = subs.get("{SERVER_IP}").unwrap_or_default();
            let chain = vec![
                "dhcp net0".to_owned(),
                format!("chain tftp://{server}/{remote}"),
            ];
            session.info(&format!("Parsed boot commands: {}", chain.join("; ")));
            chain
        } else {
            subs.apply(&listed, Missing::DropCommand)
        };
        bootloader::run(method, session, &action, &subs, &commands, deadline)?;
        log_in(DRIVER, session, &login, deadline)
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
    fn the_boot_script_goes_next_to_the_kernel_as_lava_writes_it() {
        let action = json!({
            "_server_ip": "10.0.2.2",
            "_job_id": "42",
            "_deployed": {"kernel": "42/kernel/bzImage"},
        });
        let subs = Substitutions::for_boot(&action, None);
        assert_eq!(
            script_paths(&action, &subs).unwrap(),
            (
                "kernel/script.ipxe".to_owned(),
                "42/kernel/script.ipxe".to_owned()
            )
        );
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
