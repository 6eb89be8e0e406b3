//! Connection driver `command`: LAVA's `connection_command`.
//!
//! Runs the command (typically `telnet localhost 7001` to ser2net) with `/bin/sh -c` in a new
//! session whose controlling terminal is a fresh pseudo-terminal in raw mode, and exposes the
//! pty's master side as the console. Raw mode means no local echo or line editing: what the
//! board sends is what the host reads. Closing the console ends the command's whole session.
#![deny(missing_docs)]

use std::time::Duration;

use basalt_plugin_api::{export_plugin, parse_config, ConnectionDriver, Log, PluginError};

pub use basalt_plugin_api::pty::PtyConsole;

/// The driver's configuration: the device configuration's `commands.connect`.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CommandConnectionConfig {
    /// The shell command that connects to the console.
    pub command: String,
}

/// The driver.
pub struct CommandConnection {
    command: String,
    log: Log,
}

/// Builds the driver from `{"command": "..."}`.
pub fn new_command_connection(config: &str, log: Log) -> Result<CommandConnection, PluginError> {
    let config: CommandConnectionConfig = parse_config("connection command", config)?;
    if config.command.trim().is_empty() {
        return Err(PluginError::invalid_config(
            "connection command: connection_command is empty; set it in the device dictionary",
        ));
    }
    Ok(CommandConnection {
        command: config.command,
        log,
    })
}

impl ConnectionDriver for CommandConnection {
    type Console = PtyConsole;

    fn connect(&self, _timeout: Duration) -> Result<PtyConsole, PluginError> {
        self.log
            .info(&format!("connection command: {}", self.command));
        PtyConsole::spawn(&self.command)
    }
}

export_plugin! {
    name: "connection-command",
    drivers: [
        connection "command": "Runs connection_command (e.g. telnet to ser2net) under a pseudo-terminal" => new_command_connection,
    ],
}
