//! Power driver `command`: LAVA's default way of switching a board.
//!
//! Its configuration is the device configuration's `commands` section; it runs `power_on`,
//! `power_off` and `hard_reset` (each a string or a list of strings, as LAVA's templates render
//! them) through `/bin/sh -c`, logs what they print, and fails with an infrastructure error when
//! one exits non-zero or outlives the timeout. A board with no `hard_reset` is rebooted with
//! `power_off` then `power_on`.
#![deny(missing_docs)]

use std::time::{Duration, Instant};

use basalt_plugin_api::process::run_command;
use basalt_plugin_api::{export_plugin, parse_config, Log, OneOrMany, PluginError, PowerDriver};

/// The keys of the device configuration's `commands` section this driver reads; every other
/// key (`connect`, `users`, ...) is ignored.
#[derive(serde::Deserialize, Default, Debug)]
pub struct CommandPowerConfig {
    /// Switches the board on.
    #[serde(default)]
    pub power_on: Option<OneOrMany>,
    /// Switches the board off.
    #[serde(default)]
    pub power_off: Option<OneOrMany>,
    /// Power-cycles the board.
    #[serde(default)]
    pub hard_reset: Option<OneOrMany>,
}

/// The driver: the commands, and the job log their output goes to.
pub struct CommandPower {
    config: CommandPowerConfig,
    log: Log,
}

/// Builds the driver from the `commands` section (JSON text).
pub fn new_command_power(config: &str, log: Log) -> Result<CommandPower, PluginError> {
    let config: CommandPowerConfig = parse_config("power command", config)?;
    if config.power_on.is_none() && config.power_off.is_none() && config.hard_reset.is_none() {
        return Err(PluginError::invalid_config(
            "power command: the device configuration has no commands.power_on, power_off or \
             hard_reset; set power_on_command, power_off_command and hard_reset_command in the \
             device dictionary",
        ));
    }
    Ok(CommandPower { config, log })
}

impl CommandPower {
    fn run(&self, key: &str, commands: &OneOrMany, timeout: Duration) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        for command in commands.to_vec() {
            run_command(
                &format!("power command ({key})"),
                &command,
                deadline,
                &self.log,
            )?;
        }
        Ok(())
    }

    fn missing(key: &str) -> PluginError {
        PluginError::unsupported(format!(
            "power command: the device configuration has no commands.{key}; set {key}_command in \
             the device dictionary"
        ))
    }
}

impl PowerDriver for CommandPower {
    fn on(&self, timeout: Duration) -> Result<(), PluginError> {
        match &self.config.power_on {
            Some(commands) => self.run("power_on", commands, timeout),
            None => Err(Self::missing("power_on")),
        }
    }

    fn off(&self, timeout: Duration) -> Result<(), PluginError> {
        match &self.config.power_off {
            Some(commands) => self.run("power_off", commands, timeout),
            None => Err(Self::missing("power_off")),
        }
    }

    fn reboot(&self, timeout: Duration) -> Result<(), PluginError> {
        match (
            &self.config.hard_reset,
            &self.config.power_off,
            &self.config.power_on,
        ) {
            (Some(commands), _, _) => self.run("hard_reset", commands, timeout),
            (None, Some(off), Some(on)) => {
                let deadline = Instant::now() + timeout;
                self.run("power_off", off, timeout)?;
                self.run(
                    "power_on",
                    on,
                    deadline.saturating_duration_since(Instant::now()),
                )
            }
            _ => Err(Self::missing("hard_reset")),
        }
    }
}

export_plugin! {
    name: "power-command",
    drivers: [
        power "command": "Runs the device's power_on/power_off/hard_reset commands (LAVA's default)" => new_command_power,
    ],
}
