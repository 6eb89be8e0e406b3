//! Boot driver `depthcharge`: LAVA's depthcharge boot method (Chromebooks' coreboot payload,
//! in its "dev" build with a command line and `tftpboot`).
//!
//! As LAVA's `DepthchargeAction`: writes the kernel command line of the job's command set
//! (`actions.boot.methods.depthcharge.<set>.cmdline`, placeholders filled, the job's
//! `extra_kernel_args` appended) as `cmdline` next to the kernel in the job's TFTP directory,
//! resets the board, waits for depthcharge's `start_message` and its prompt, and types the
//! set's commands (`tftpboot {SERVER_IP} {DEPTHCHARGE_KERNEL} {CMDLINE} {DEPTHCHARGE_RAMDISK}`)
//! with the FIT image the tftp deploy built (`image.itb`; the plain kernel and a separate
//! ramdisk where the device has no `mkimage_arch`), then waits for the final message and logs
//! in like every boot method.

use std::time::Duration;

use basalt_plugin_api::bootloader::{self, Interrupted, Method, Missing, Prepared, Substitutions};
use basalt_plugin_api::login::{time_left, waiting_for};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};
use serde_json::Value;

const DRIVER: &str = "boot depthcharge";

/// The driver, built from the device's depthcharge section.
pub struct DepthchargeBoot {
    method: Method,
    start_message: String,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.depthcharge` (JSON).
pub fn new_depthcharge_boot(config: &str, log: Log) -> Result<DepthchargeBoot, PluginError> {
    let method = Method::for_driver(DRIVER, "depthcharge", config)?;
    let start_message = method
        .parameter_str("start_message")
        .ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{DRIVER}: Missing Depthcharge start message for device (parameters.start_message)"
            ))
        })?
        .to_owned();
    Ok(DepthchargeBoot {
        method,
        start_message,
        _log: log,
    })
}

/// The command line of the named set, filled as LAVA fills it (placeholders without a
/// value are kept), with the job's `extra_kernel_args` after it.
pub fn command_line(
    method: &Method,
    action: &Value,
    subs: &Substitutions,
) -> Result<String, PluginError> {
    let set = action.get("commands").and_then(Value::as_str).ok_or_else(|| {
        PluginError::job(format!(
            "{DRIVER}: depthcharge needs commands: <a command set of the device>, whose cmdline it writes"
        ))
    })?;
    let cmdline = method
        .section()
        .pointer(&format!("/{set}/cmdline"))
        .and_then(Value::as_str)
        .ok_or_else(|| PluginError::job(format!("{DRIVER}: No cmdline found in {set}")))?;
    let mut cmdline = subs
        .apply(&[cmdline.to_owned()], Missing::Keep)
        .swap_remove(0);
    if let Some(extra) = action.get("extra_kernel_args").and_then(Value::as_str) {
        cmdline = format!("{cmdline} {extra}");
    }
    Ok(cmdline)
}

impl BootDriver for DepthchargeBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let method = &self.method;
        let mut boot = Prepared::new(method, session, action, timeout, |_, _| {})?;
        let kernel = boot.subs.get("{KERNEL}").map(str::to_owned);
        let cmdline_path = match boot.beside_kernel("cmdline") {
            Some((local, remote)) => {
                let cmdline = command_line(method, &boot.action, &boot.subs)?;
                session.info(&format!("{DRIVER}: kernel command line: {cmdline}"));
                session.publish(&local, cmdline.as_bytes())?;
                Some(remote)
            }
            None => {
                session.info("Skipping creating cmdline file as kernel is not defined");
                None
            }
        };
        let fit = boot
            .action
            .pointer("/_deployed/fit")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ramdisk = match fit {
            Some(_) => String::new(),
            None => boot.subs.get("{RAMDISK}").unwrap_or_default().to_owned(),
        };
        let mut second = Substitutions::default();
        second.set("{CMDLINE}", cmdline_path);
        second.set("{DEPTHCHARGE_KERNEL}", fit.or(kernel));
        second.set("{DEPTHCHARGE_RAMDISK}", Some(ramdisk));
        boot.commands = second.apply(&boot.commands, Missing::Remove);
        session.info(&format!(
            "Parsed boot commands: {}",
            boot.commands.join("; ")
        ));
        if boot.commands.is_empty() {
            return Err(PluginError::job(format!(
                "{DRIVER}: no depthcharge commands are left to send"
            )));
        }
        bootloader::reset(method, session, &boot.action, boot.deadline)?;
        // LAVA's `depthcharge-start`, then its `bootloader-commands`.
        session.action("depthcharge-start", boot.deadline, |session, _| {
            session
                .expect(&[&self.start_message], time_left(boot.deadline))
                .map(drop)
                .map_err(|e| waiting_for(DRIVER, "depthcharge's start message", e))
        })?;
        bootloader::commands_to_kernel(
            method,
            session,
            &boot.action,
            Interrupted::Sent { newline: false },
            &boot.commands,
            boot.deadline,
        )?;
        boot.log_in(method, session)
    }
}

export_plugin! {
    name: "boot-depthcharge",
    drivers: [
        boot "depthcharge": "Writes the kernel command line, waits for depthcharge's prompt, types its tftpboot command with the FIT image, boots to a shell" => new_depthcharge_boot,
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn method() -> Method {
        Method::from_config(
            DRIVER,
            "depthcharge",
            &json!({
                "parameters": {"bootloader_prompt": "dpch:", "start_message": "Starting netboot"},
                "nfs": {
                    "cmdline": "console=ttyS2 root=/dev/nfs nfsroot={NFS_SERVER_IP}:{NFSROOTFS},tcp,hard {LAVA_MAC}",
                    "commands": ["tftpboot {SERVER_IP} {DEPTHCHARGE_KERNEL} {CMDLINE} {DEPTHCHARGE_RAMDISK}"],
                },
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn the_command_line_is_filled_keeping_unknown_placeholders_and_extra_args_follow() {
        let action = json!({
            "commands": "nfs",
            "extra_kernel_args": "quiet",
            "_server_ip": "10.0.0.1",
            "_deployed": {"kernel": "9/kernel/zImage", "nfsrootfs": "/srv/nfs/9"},
        });
        let subs = Substitutions::for_boot(&action, None);
        assert_eq!(
            command_line(&method(), &action, &subs).unwrap(),
            "console=ttyS2 root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/9,tcp,hard {LAVA_MAC} quiet"
        );
        let bad = json!({"commands": "ramdisk"});
        assert!(command_line(&method(), &bad, &subs).is_err());
    }
}
