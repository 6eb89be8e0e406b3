//! Boot driver `fastboot`: LAVA's fastboot boot method.
//!
//! As LAVA's `BootFastbootAction`: runs the job's `commands:` with the fastboot client first
//! (`fastboot -s SERIAL <command> <options>`, in the boot's `docker:` image where it names
//! one), brings the board into fastboot mode (u-boot's
//! `fastboot` command for a `fastboot_via_uboot` board, a hard reset where the device has
//! one, else `adb -s ADB_SERIAL reboot-bootloader` when the adb server lists it or `fastboot
//! reboot-bootloader` when `fastboot devices` does), then follows the device's fastboot
//! sequence (`actions.boot.methods.fastboot`):
//! `boot` and `no-flash-boot` are `fastboot boot <the deployed boot image>`, `reboot` is
//! `fastboot reboot`. Where the job lists prompts it waits on the board's console for the
//! kernel and logs in, like every boot method.
//!
//! Configuration: the device's fastboot sequence (as `sequence`) with the host's
//! `_fastboot_serial_number`, `_fastboot_options`, `_adb_serial_number` and `_hard_reset` (the
//! device's keys) and
//! `_constants`; with `_fastboot_auto_detection` and an unset serial (`0000000000`) the board
//! is found by `fastboot devices` once it is in fastboot mode (`basalt_plugin_api::fastboot`,
//! LAVA's `DetectFastbootDevice`). The kernel's start is waited for as after every bootloader
//! (`bootloader::wait_for_kernel`, which also takes the job's `kernel-start-message`). The boot action carries `_deployed` (the fastboot deploy's files).

use std::time::{Duration, Instant};

use basalt_plugin_api::bootloader::{self, Method, UbootFastboot};
use basalt_plugin_api::fastboot::{detect, Client, Docker, RebootIntoFastboot, UNSET_SERIAL};
use basalt_plugin_api::login::{log_in, read_boot_action};
use basalt_plugin_api::{export_plugin, BootDriver, BootSession, Log, PluginError};
use serde_json::Value;

const DRIVER: &str = "boot fastboot";

/// The driver, built from the device's fastboot sequence.
pub struct FastbootBoot {
    /// `None` for a board found by `fastboot devices` at each boot (auto-detection).
    serial: Option<String>,
    options: Vec<String>,
    sequence: Vec<String>,
    hard_reset: bool,
    /// How a `fastboot_via_uboot` board enters fastboot mode.
    uboot: Option<UbootFastboot>,
    /// How a board with neither u-boot's `fastboot` nor a hard reset is asked into it.
    reboot: Option<RebootIntoFastboot>,
    /// The section as the shared bootloader code reads it (constants, for the kernel's start).
    method: Method,
    log: Log,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the driver from the device's `actions.boot.methods.fastboot` (JSON).
pub fn new_fastboot_boot(config: &str, log: Log) -> Result<FastbootBoot, PluginError> {
    let undefined = || {
        PluginError::invalid_config(format!(
            "{DRIVER}: fastboot_sequence undefined (actions.boot.methods.fastboot must list boot, no-flash-boot or reboot)"
        ))
    };
    // The host hands a listed sequence over as `{sequence: [...]}`; anything else is none.
    let method = Method::from_config(DRIVER, "fastboot", config).map_err(|_| undefined())?;
    let config = method.section();
    let sequence = match config.get("sequence") {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        _ => return Err(undefined()),
    };
    let serial = config
        .get("_fastboot_serial_number")
        .map(text)
        .filter(|s| !s.is_empty() && s != UNSET_SERIAL);
    let detect = config
        .get("_fastboot_auto_detection")
        .and_then(Value::as_bool)
        == Some(true);
    if serial.is_none() && !detect {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER}: device fastboot serial number missing or unset"
        )));
    }
    let options = match config.get("_fastboot_options") {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        _ => {
            return Err(PluginError::invalid_config(format!(
                "{DRIVER}: device fastboot options missing or not a list"
            )))
        }
    };
    let hard_reset = config.get("_hard_reset").and_then(Value::as_bool) == Some(true);
    let uboot = UbootFastboot::from_section(&method)?;
    let reboot = (serial.is_some() && !hard_reset && uboot.is_none())
        .then(|| RebootIntoFastboot::new(config.get("_adb_serial_number")))
        .transpose()
        .map_err(|e| PluginError::invalid_config(format!("{DRIVER}: {}", e.message())))?;
    Ok(FastbootBoot {
        serial,
        options,
        sequence,
        hard_reset,
        uboot,
        reboot,
        method,
        log,
    })
}

impl FastbootBoot {
    /// The client for `serial`, here or in the boot's container.
    fn client(&self, docker: &Option<Docker>, serial: &str) -> Client {
        Client {
            serial: serial.to_owned(),
            options: self.options.clone(),
            docker: docker.clone(),
        }
    }

    /// Runs `fastboot -s SERIAL <words…> <options…>` and returns what it printed; `files` are
    /// the paths among the words.
    fn fastboot(
        &self,
        docker: &Option<Docker>,
        serial: &str,
        words: &[&str],
        files: &[&str],
        deadline: Instant,
    ) -> Result<String, PluginError> {
        self.client(docker, serial)
            .run(words, files, deadline, &self.log)
    }

    /// Puts the board into fastboot mode and returns its serial (found by `fastboot
    /// devices` when the device has auto-detection).
    fn enter_fastboot(
        &self,
        session: &mut BootSession<'_>,
        docker: &Option<Docker>,
        known: Option<String>,
        deadline: Instant,
    ) -> Result<String, PluginError> {
        let found = |serial: Option<String>| match serial {
            Some(serial) => Ok(serial),
            None => detect(&self.client(docker, ""), deadline, &self.log),
        };
        if let Some(uboot) = &self.uboot {
            uboot.enter(session, deadline)?;
            return found(known);
        }
        if self.hard_reset {
            bootloader::power_reset(DRIVER, session, deadline)?;
            return found(known);
        }
        let Some(serial) = known else {
            return found(None);
        };
        if let Some(reboot) = &self.reboot {
            reboot.enter(&self.client(docker, &serial), deadline, &self.log)?;
        }
        Ok(serial)
    }
}

impl BootDriver for FastbootBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let (login, action) = read_boot_action(DRIVER, action)?;
        let commands: Vec<&Value> = action
            .get("commands")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let docker = Docker::from_action(
            &action,
            self.method.section().get("_docker_methods"),
            action.get("_job_id").and_then(Value::as_str).unwrap_or("0"),
        )?;
        if let Some(docker) = &docker {
            docker.prepare(deadline, &self.log)?;
        }
        let mut known = self.serial.clone();
        // The job's commands run before the board is put into fastboot mode, so an
        // auto-detected board is looked for first when there are any.
        if known.is_none() && !commands.is_empty() {
            known = Some(detect(&self.client(&docker, ""), deadline, &self.log)?);
        }
        for command in commands {
            let serial = known.as_deref().unwrap_or_default();
            let command = text(command);
            let words = shlex::split(&command).ok_or_else(|| {
                PluginError::job(format!("{DRIVER}: command {command:?}: unbalanced quotes"))
            })?;
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            self.fastboot(&docker, serial, &words, &[], deadline)?;
        }
        let serial = &self.enter_fastboot(session, &docker, known, deadline)?;
        for step in &self.sequence {
            match step.as_str() {
                "boot" | "no-flash-boot" => {
                    let image = action
                        .pointer("/_deployed/boot")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            PluginError::job(format!(
                                "{DRIVER}: the device boots with `fastboot boot`, and no deploy gave a boot image (images: boot:)"
                            ))
                        })?;
                    let output =
                        self.fastboot(&docker, serial, &["boot", image], &[image], deadline)?;
                    if !output.trim().is_empty() && !output.to_lowercase().contains("booting") {
                        return Err(PluginError::job(format!(
                            "Unable to boot with fastboot: {}",
                            output.trim()
                        )));
                    }
                }
                "reboot" => {
                    let output = self.fastboot(&docker, serial, &["reboot"], &[], deadline)?;
                    if !output.to_lowercase().contains("rebooting") {
                        return Err(PluginError::job(format!(
                            "Unable to fastboot reboot: {}",
                            output.trim()
                        )));
                    }
                }
                // LAVA's other sequence steps (auto-login, shell-session, …) are what every
                // boot does below.
                _ => {}
            }
        }
        bootloader::wait_for_kernel(&self.method, session, &action, deadline)?;
        log_in(DRIVER, session, &login, deadline)
    }
}

export_plugin! {
    name: "boot-fastboot",
    drivers: [
        boot "fastboot": "Brings the board into fastboot mode and boots it with the fastboot client (boot or reboot), then logs in on its console" => new_fastboot_boot,
    ],
}
