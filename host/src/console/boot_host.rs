//! The host side of a boot: a console, a power driver and the job log, lent to a boot plugin.

use std::time::Duration;

use basalt_plugin_api::{
    BootHost, ConsoleBox, ExpectMatch, Log, LogLevel, PluginError, PowerAction,
};

use super::{ExpectError, Expecter};
use crate::plugins::{ConsoleStream, DriverError, PowerDriver};

/// What the dispatcher lends a boot driver for one boot action.
pub struct ConsoleBootHost<'a> {
    expecter: &'a mut Expecter,
    power: Option<&'a PowerDriver>,
    log: &'a Log,
}

impl<'a> ConsoleBootHost<'a> {
    /// Lends a console, the device's power driver (if it has one) and the job log.
    pub fn new(expecter: &'a mut Expecter, power: Option<&'a PowerDriver>, log: &'a Log) -> Self {
        Self {
            expecter,
            power,
            log,
        }
    }
}

fn to_plugin_error(error: DriverError) -> PluginError {
    match error {
        DriverError::Plugin { error, .. } => error,
        other => PluginError::infrastructure(other.to_string()),
    }
}

impl BootHost for ConsoleBootHost<'_> {
    fn send(&mut self, text: &str) -> Result<(), PluginError> {
        self.expecter.send(text).map_err(to_plugin_error)
    }

    fn expect(
        &mut self,
        patterns: &[String],
        timeout: Duration,
    ) -> Result<ExpectMatch, PluginError> {
        self.expecter
            .expect(patterns, timeout)
            .map_err(|error| match error {
                ExpectError::BadPattern { .. } => PluginError::job(error.to_string()),
                ExpectError::Timeout { .. } => PluginError::timeout(error.to_string()),
                ExpectError::Console(e) => to_plugin_error(e),
                ExpectError::Canceled { .. } => {
                    PluginError::new(basalt_plugin_api::ErrorKind::CANCELED, error.to_string())
                }
            })
    }

    fn power(&mut self, action: PowerAction, timeout: Duration) -> Result<(), PluginError> {
        let Some(power) = self.power else {
            return Err(PluginError::unsupported(
                "this device has no power driver; add power commands to its device dictionary",
            ));
        };
        let result = match action {
            PowerAction::On => power.on(timeout),
            PowerAction::Off => power.off(timeout),
            PowerAction::Reboot => power.reboot(timeout),
        };
        result.map_err(to_plugin_error)
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.log.write(level, message);
    }

    fn attach_console(&mut self, console: ConsoleBox) -> Result<(), PluginError> {
        self.expecter
            .replace_console(ConsoleStream::in_process("boot method", console));
        Ok(())
    }
}
