//! The host side of a boot: a console, a power driver and the job log, lent to a boot plugin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_plugin_api::{
    BootHost, ConsoleBox, ExpectMatch, Log, LogLevel, PluginError, PowerAction,
};

use super::{ExpectError, Expecter};
use crate::plugins::{ConsoleStream, DriverError, PowerDriver};

/// Where a boot driver's own actions go ([`BootHost::start_action`]): the job's action
/// numbering, which the dispatcher keeps.
pub trait BootActions {
    /// Begins the next child action `name` of the running one.
    fn start(&mut self, name: &str, timeout: Duration);
    /// Ends the action begun last, with its results (a JSON object) or its failure.
    fn end(&mut self, results: &str, failure: Option<&str>);
    /// Records a result of the running action.
    fn record(&mut self, case: &str, result: &str, extra: &str, duration: Duration);
}

/// What the dispatcher lends a boot driver for one boot action.
pub struct ConsoleBootHost<'a> {
    expecter: &'a mut Expecter,
    power: Option<&'a PowerDriver>,
    log: &'a Log,
    tftp: Option<TftpDir>,
    actions: Option<&'a mut dyn BootActions>,
}

/// The job's directory under the worker's TFTP root, where [`BootHost::publish`] writes.
#[derive(Debug, Clone)]
pub struct TftpDir {
    /// The TFTP server's root.
    pub root: PathBuf,
    /// The job's directory below it (one plain name).
    pub job: String,
}

impl<'a> ConsoleBootHost<'a> {
    /// Lends a console, the device's power driver (if it has one) and the job log.
    pub fn new(expecter: &'a mut Expecter, power: Option<&'a PowerDriver>, log: &'a Log) -> Self {
        Self {
            expecter,
            power,
            log,
            tftp: None,
            actions: None,
        }
    }

    /// Lets the boot driver's own actions into the job's action numbering.
    pub fn with_actions(mut self, actions: &'a mut dyn BootActions) -> Self {
        self.actions = Some(actions);
        self
    }

    /// Lets the boot driver publish files in the job's TFTP directory.
    pub fn with_tftp(mut self, tftp: Option<TftpDir>) -> Self {
        self.tftp = tftp;
        self
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

    fn publish(&mut self, name: &str, content: &[u8]) -> Result<String, PluginError> {
        let Some(tftp) = &self.tftp else {
            return Err(PluginError::invalid_config(
                "this boot publishes files over TFTP, and this worker has no TFTP root (basalt run --tftp-root DIR)",
            ));
        };
        let relative = crate::job::confine::relative_path(name, "the job's TFTP directory")
            .map_err(|e| {
                PluginError::bug(format!("a boot driver asked to publish {name:?}: {e}"))
            })?;
        let job_dir = tftp.root.join(&tftp.job);
        let target = job_dir.join(relative);
        write_new(&job_dir, &target, content).map_err(|e| {
            PluginError::infrastructure(format!("cannot write {}: {e}", target.display()))
        })?;
        self.log.write(
            LogLevel::DEBUG,
            &format!(
                "published {} ({} bytes) for the boot",
                target.display(),
                content.len()
            ),
        );
        Ok(format!("{}/{}", tftp.job, relative.display()))
    }

    fn start_action(&mut self, name: &str, timeout: Duration) {
        if let Some(actions) = self.actions.as_mut() {
            actions.start(name, timeout);
        }
    }

    fn end_action(&mut self, results: &str, failure: Option<&str>) {
        if let Some(actions) = self.actions.as_mut() {
            actions.end(results, failure);
        }
    }

    fn record_result(&mut self, case: &str, result: &str, extra: &str, duration: Duration) {
        if let Some(actions) = self.actions.as_mut() {
            actions.record(case, result, extra, duration);
        }
    }
}

/// Writes `content` to `target` below `base`, replacing a file there and never following a
/// symlink (the directory holds what the job deployed).
fn write_new(base: &Path, target: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let parent = target.parent().unwrap_or(base);
    std::fs::create_dir_all(parent)?;
    let resolved = parent.canonicalize()?;
    if !resolved.starts_with(base.canonicalize()?) {
        return Err(std::io::Error::other(format!(
            "{} leads outside {}",
            parent.display(),
            base.display()
        )));
    }
    if std::fs::symlink_metadata(target).is_ok() {
        std::fs::remove_file(target)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(target)?;
    file.write_all(content)
}
