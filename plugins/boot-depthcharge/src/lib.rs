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

use std::time::{Duration, Instant};

use basalt_plugin_api::bootloader::{self, Interrupted, Method, Missing, Substitutions};
use basalt_plugin_api::login::{log_in, read_boot_action, time_left, waiting_for};
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
    let method = Method::from_config(DRIVER, "depthcharge", config)?;
    method.bootloader_prompt()?;
    let start_message = method
        .parameter_str("start_message")
        .ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{DRIVER}: Missing Depthcharge start message for device (parameters.start_message)"
            ))
        })?
        .to_owned();
    method.lava_mac()?;
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

/// `JOB/kernel/zImage` → (`kernel/cmdline` below the job's TFTP directory, `JOB/kernel/cmdline`).
fn beside_kernel(kernel: &str, job: &str, name: &str) -> (String, String) {
    let dir = kernel.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    let below = dir
        .strip_prefix(job)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(dir);
    let join = |dir: &str| {
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    (join(below), join(dir))
}

impl BootDriver for DepthchargeBoot {
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
        let kernel = subs.get("{KERNEL}").map(str::to_owned);
        let cmdline_path = match &kernel {
            Some(kernel) => {
                let job = action.get("_job_id").and_then(Value::as_str).unwrap_or("");
                let (local, remote) = beside_kernel(kernel, job, "cmdline");
                let cmdline = command_line(method, &action, &subs)?;
                session.info(&format!("{DRIVER}: kernel command line: {cmdline}"));
                session.publish(&local, cmdline.as_bytes())?;
                Some(remote)
            }
            None => {
                session.info("Skipping creating cmdline file as kernel is not defined");
                None
            }
        };
        let fit = action
            .pointer("/_deployed/fit")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ramdisk = if fit.is_some() {
            Some(String::new())
        } else {
            Some(subs.get("{RAMDISK}").unwrap_or_default().to_owned())
        };
        let mut second = Substitutions::default();
        second.set("{CMDLINE}", cmdline_path);
        second.set("{DEPTHCHARGE_KERNEL}", fit.or(kernel));
        second.set("{DEPTHCHARGE_RAMDISK}", ramdisk);
        let commands = second.apply(&commands, Missing::Remove);
        session.info(&format!("Parsed boot commands: {}", commands.join("; ")));
        if commands.is_empty() {
            return Err(PluginError::job(format!(
                "{DRIVER}: no depthcharge commands are left to send"
            )));
        }
        bootloader::reset(method, session, &action, deadline)?;
        session
            .expect(&[&self.start_message], time_left(deadline))
            .map_err(|e| waiting_for(DRIVER, "depthcharge's start message", e))?;
        bootloader::send_commands(
            method,
            session,
            &action,
            Interrupted::Sent { newline: false },
            &commands,
            deadline,
        )?;
        bootloader::wait_for_kernel(method, session, &action, deadline)?;
        log_in(DRIVER, session, &login, deadline)
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

    #[test]
    fn the_command_line_file_goes_next_to_the_kernel() {
        assert_eq!(
            beside_kernel("9/kernel/zImage", "9", "cmdline"),
            ("kernel/cmdline".to_owned(), "9/kernel/cmdline".to_owned())
        );
    }
}
