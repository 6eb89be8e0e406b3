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

use std::time::{Duration, Instant};

use basalt_plugin_api::login::{log_in, read_boot_action, time_left, waiting_for};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError, PowerAction};
use serde_json::Value;

pub use placeholders::{substitute, Deployment};

const DRIVER: &str = "boot u-boot";
/// How long to wait for the extra prompt a newline after the interrupt gives.
const PROMPT_SETTLE: Duration = Duration::from_secs(2);

/// The driver, built from the device's u-boot section.
pub struct UbootBoot {
    config: Value,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.u-boot` (JSON).
pub fn new_uboot_boot(config: &str, log: Log) -> Result<UbootBoot, PluginError> {
    let config: Value = serde_json::from_str(config)
        .map_err(|e| PluginError::invalid_config(format!("{DRIVER}: bad configuration: {e}")))?;
    if !config.is_object() {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER}: the device has no u-boot section under actions.boot.methods"
        )));
    }
    Ok(UbootBoot { config, _log: log })
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Escapes a literal for use as a pattern.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl UbootBoot {
    /// The commands to send: a named set from the device, or the job's own list.
    fn commands(&self, action: &Value) -> Result<Vec<String>, PluginError> {
        match action.get("commands") {
            Some(Value::String(set)) => self
                .config
                .pointer(&format!("/{set}/commands"))
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .ok_or_else(|| {
                    let sets: Vec<&String> = self
                        .config
                        .as_object()
                        .map(|m| m.keys().filter(|k| k.as_str() != "parameters").collect())
                        .unwrap_or_default();
                    PluginError::job(format!(
                        "{DRIVER}: the device has no u-boot command set '{set}' (it has: {})",
                        sets.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                }),
            Some(Value::Array(list)) => Ok(list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()),
            _ => Err(PluginError::job(format!(
                "{DRIVER}: the boot action needs commands: <a command set such as ramdisk, or a list>"
            ))),
        }
    }

    /// Stops autoboot; returns whether a newline followed the interrupt character (which
    /// makes u-boot print one more prompt).
    fn interrupt(
        &self,
        session: &mut BootSession<'_>,
        deadline: Instant,
    ) -> Result<bool, PluginError> {
        let constants = self
            .config
            .get("_constants")
            .cloned()
            .unwrap_or(Value::Null);
        let prompt = text(&self.config, "/parameters/interrupt_prompt")
            .or_else(|| text(&constants, "/u-boot/interrupt-prompt"))
            .unwrap_or("Hit any key to stop autoboot");
        let character = text(&self.config, "/parameters/interrupt_char")
            .filter(|c| !c.is_empty())
            .or_else(|| text(&constants, "/u-boot/interrupt-character"))
            .unwrap_or(" ");
        session
            .expect(&[literal(prompt)], time_left(deadline))
            .map_err(|e| waiting_for(DRIVER, "the autoboot prompt", e))?;
        session.send(character)?;
        let newline = constants
            .pointer("/u-boot/interrupt-newline")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if newline {
            session.send("\n")?;
        }
        Ok(newline)
    }

    fn error_patterns(&self) -> Vec<String> {
        self.config
            .pointer("/_constants/u-boot/error-messages")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(literal).collect())
            .unwrap_or_default()
    }
}

impl BootDriver for UbootBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let (login, action) = read_boot_action(DRIVER, action)?;
        let deployment = Deployment::from_action(&action, self.config.get("_parameters"));
        let commands: Vec<String> = self
            .commands(&action)?
            .into_iter()
            .filter_map(|command| substitute(&command, &deployment))
            .collect();
        if commands.is_empty() {
            return Err(PluginError::job(format!(
                "{DRIVER}: no u-boot commands to send"
            )));
        }
        if action.get("reset").and_then(Value::as_bool) != Some(false) {
            session.info("boot u-boot: resetting the board");
            session.power(PowerAction::Reboot, time_left(deadline))?;
        }
        let needs_interrupt = self
            .config
            .pointer("/parameters/needs_interrupt")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let extra_prompt = needs_interrupt && self.interrupt(session, deadline)?;
        let prompt = literal(text(&self.config, "/parameters/bootloader_prompt").unwrap_or("=>"));
        let errors = self.error_patterns();
        let mut waiting: Vec<String> = vec![prompt.clone()];
        waiting.extend(errors.iter().cloned());
        session
            .expect(&waiting, time_left(deadline))
            .map_err(|e| waiting_for(DRIVER, "the bootloader prompt", e))?;
        if extra_prompt {
            // The newline after the interrupt character gives a second prompt; consume it so
            // each command below waits for its own.
            let _ = session.expect(&[prompt], PROMPT_SETTLE.min(time_left(deadline)));
        }
        let (boot_command, setup) = commands.split_last().unwrap_or((&commands[0], &[]));
        for command in setup {
            session.send_line(command)?;
            let found = session
                .expect(&waiting, time_left(deadline))
                .map_err(|e| waiting_for(DRIVER, &format!("the prompt after {command:?}"), e))?;
            if found.index > 0 {
                return Err(PluginError::infrastructure(format!(
                    "{DRIVER}: u-boot reported {:?} after {command:?}",
                    found.matched
                )));
            }
        }
        session.send_line(boot_command)?;
        let final_message = self
            .config
            .pointer("/_constants/u-boot/final-message")
            .and_then(Value::as_str)
            .unwrap_or("Starting kernel");
        let mut kernel_start = vec![literal(final_message)];
        kernel_start.extend(errors);
        let found = session
            .expect(&kernel_start, time_left(deadline))
            .map_err(|e| waiting_for(DRIVER, "the kernel to start", e))?;
        if found.index > 0 {
            return Err(PluginError::infrastructure(format!(
                "{DRIVER}: u-boot reported {:?} instead of starting the kernel",
                found.matched
            )));
        }
        log_in(DRIVER, session, &login, deadline)
    }
}

export_plugin! {
    name: "boot-uboot",
    drivers: [
        boot "u-boot": "Interrupts u-boot, sends the device's boot commands with the deployed files, boots to a shell" => new_uboot_boot,
    ],
}
