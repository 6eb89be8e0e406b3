//! Boot drivers: take a powered board from reset to a shell through its console.
//!
//! The host owns the console and the power driver; a boot driver gets a [`BootSession`] for the
//! length of one boot action. Pattern matching runs in the host so every boot driver gets the
//! same matcher (and the same handling of console noise) without shipping a regex engine.

use std::time::Duration;

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult, RSlice, RStr, RString},
    RMut, StableAbi,
};

use crate::guard::{guard, millis, to_millis};
use crate::{ConsoleBox, LogLevel, PluginError};

/// A power operation a boot driver asks the host for.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PowerAction {
    /// Switch on (LAVA's `power_on`).
    On,
    /// Switch off (LAVA's `power_off`).
    Off,
    /// Power-cycle (LAVA's `hard_reset`).
    Reboot,
}

/// The ABI form of a successful `expect`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ExpectMatchAbi {
    /// Which of the patterns matched (0-based).
    pub index: u32,
    /// The console output before the match.
    pub before: RString,
    /// The text the pattern matched.
    pub matched: RString,
}

/// Which pattern matched, and what the console said up to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectMatch {
    /// Which of the patterns matched (0-based).
    pub index: usize,
    /// The console output between the previous match and this one.
    pub before: String,
    /// The text the pattern matched.
    pub matched: String,
}

/// What the host offers a boot driver: the console, power and the job log.
///
/// Hosts implement this (the dispatcher over a real console, tests over a fake one); boot
/// drivers use it through [`BootSession`].
pub trait BootHost {
    /// Sends `text` to the console exactly as given (add `\n` yourself, or use
    /// [`BootSession::send_line`]).
    fn send(&mut self, text: &str) -> Result<(), PluginError>;
    /// Waits until one of the regular expressions matches the console output, consuming the
    /// output up to the end of the match. Fails with `TIMEOUT` if none matches in time.
    fn expect(
        &mut self,
        patterns: &[String],
        timeout: Duration,
    ) -> Result<ExpectMatch, PluginError>;
    /// Runs a power operation with the device's power driver.
    fn power(&mut self, action: PowerAction, timeout: Duration) -> Result<(), PluginError>;
    /// Writes to the job log.
    fn log(&self, level: LogLevel, message: &str);
    /// Takes over a console the boot driver opened itself (qemu's serial line): from now on
    /// `send` and `expect` use it, and the host closes it at the end of the job. Hosts
    /// without that ability refuse.
    fn attach_console(&mut self, console: ConsoleBox) -> Result<(), PluginError> {
        drop(console);
        Err(PluginError::unsupported(
            "this host cannot take a console from a boot driver",
        ))
    }
    /// Puts a file the boot needs (an iPXE script, depthcharge's command line) in the job's
    /// TFTP directory next to its deployed files, and returns its path relative to the TFTP
    /// root, which is what a bootloader asks the server for. `name` is one plain file name.
    /// Hosts without a TFTP directory refuse.
    fn publish(&mut self, name: &str, content: &[u8]) -> Result<String, PluginError> {
        let _ = (name, content);
        Err(PluginError::unsupported(
            "this host has no TFTP directory to publish files in",
        ))
    }
    /// Starts one of the boot's own LAVA actions (`execute-qemu`, `auto-login-action`): the
    /// host numbers it under the action running (the boot's, or one started before and not
    /// ended) and logs its start with `timeout`. Hosts that keep no actions ignore it.
    fn start_action(&mut self, name: &str, timeout: Duration) {
        let _ = (name, timeout);
    }
    /// Ends the action [`BootHost::start_action`] started last: logs its end and records it
    /// as LAVA does, with `results` (a JSON object, empty for none) or its `failure`.
    fn end_action(&mut self, results: &str, failure: Option<&str>) {
        let _ = (results, failure);
    }
    /// Records a result of the running action (LAVA's `kernel-messages`, which the login
    /// action writes as it ends): a `lava` case at the action's level, with `extra` (a JSON
    /// object) and how long it took. Hosts that keep no results ignore it.
    fn record_result(&mut self, case: &str, result: &str, extra: &str, duration: Duration) {
        let _ = (case, result, extra, duration);
    }
}

/// The ABI form of [`BootHost`].
#[sabi_trait]
pub trait BootSessionAbi {
    /// See [`BootHost::send`].
    fn send(&mut self, text: RStr<'_>) -> RResult<(), PluginError>;
    /// See [`BootHost::expect`]; the timeout is in milliseconds.
    fn expect(
        &mut self,
        patterns: RSlice<'_, RString>,
        timeout_ms: u64,
    ) -> RResult<ExpectMatchAbi, PluginError>;
    /// See [`BootHost::power`].
    fn power(&mut self, action: PowerAction, timeout_ms: u64) -> RResult<(), PluginError>;
    /// See [`BootHost::log`].
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
    /// See [`BootHost::attach_console`] (since 0.2).
    fn attach_console(&mut self, console: ConsoleBox) -> RResult<(), PluginError>;
    /// See [`BootHost::publish`] (since 0.3).
    fn publish(&mut self, name: RStr<'_>, content: RSlice<'_, u8>)
        -> RResult<RString, PluginError>;
    /// See [`BootHost::start_action`] (since 0.4); the timeout is in milliseconds.
    fn start_action(&mut self, name: RStr<'_>, timeout_ms: u64);
    /// See [`BootHost::end_action`] (since 0.4): `failed` says whether `failure` is one.
    fn end_action(&mut self, results: RStr<'_>, failed: bool, failure: RStr<'_>);
    /// See [`BootHost::record_result`] (since 0.4); the duration is in milliseconds.
    fn record_result(
        &mut self,
        case: RStr<'_>,
        result: RStr<'_>,
        extra: RStr<'_>,
        duration_ms: u64,
    );
}

impl<H: BootHost> BootSessionAbi for H {
    fn send(&mut self, text: RStr<'_>) -> RResult<(), PluginError> {
        guard(|| BootHost::send(self, text.as_str()))
    }
    fn expect(
        &mut self,
        patterns: RSlice<'_, RString>,
        timeout_ms: u64,
    ) -> RResult<ExpectMatchAbi, PluginError> {
        guard(|| {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            let found = BootHost::expect(self, &patterns, millis(timeout_ms))?;
            Ok(ExpectMatchAbi {
                index: u32::try_from(found.index).unwrap_or(u32::MAX),
                before: found.before.into(),
                matched: found.matched.into(),
            })
        })
    }
    fn power(&mut self, action: PowerAction, timeout_ms: u64) -> RResult<(), PluginError> {
        guard(|| BootHost::power(self, action, millis(timeout_ms)))
    }
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        without_unwinding(|| BootHost::log(self, level, message.as_str()));
    }
    fn attach_console(&mut self, console: ConsoleBox) -> RResult<(), PluginError> {
        guard(|| BootHost::attach_console(self, console))
    }
    fn publish(
        &mut self,
        name: RStr<'_>,
        content: RSlice<'_, u8>,
    ) -> RResult<RString, PluginError> {
        guard(|| BootHost::publish(self, name.as_str(), content.as_slice()).map(RString::from))
    }
    fn start_action(&mut self, name: RStr<'_>, timeout_ms: u64) {
        without_unwinding(|| BootHost::start_action(self, name.as_str(), millis(timeout_ms)));
    }
    fn end_action(&mut self, results: RStr<'_>, failed: bool, failure: RStr<'_>) {
        without_unwinding(|| {
            BootHost::end_action(self, results.as_str(), failed.then_some(failure.as_str()))
        });
    }
    fn record_result(
        &mut self,
        case: RStr<'_>,
        result: RStr<'_>,
        extra: RStr<'_>,
        duration_ms: u64,
    ) {
        without_unwinding(|| {
            BootHost::record_result(
                self,
                case.as_str(),
                result.as_str(),
                extra.as_str(),
                millis(duration_ms),
            )
        });
    }
}

/// Runs a host call that returns nothing the driver could act on (a log line, an action's
/// bookkeeping): a panic in the host stops here rather than unwinding into the plugin.
fn without_unwinding(call: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
}

/// A boot driver's view of the host for the length of one boot.
pub struct BootSession<'a>(BootSessionAbi_TO<'a, RMut<'a, ()>>);

impl<'a> BootSession<'a> {
    /// Lends a host to a boot driver; the host calls this around [`BootDriverAbi::boot`].
    pub fn abi<H: BootHost>(host: &'a mut H) -> BootSessionAbi_TO<'a, RMut<'a, ()>> {
        BootSessionAbi_TO::from_ptr(host, TD_Opaque)
    }

    /// A session over a host in the same process: the host's own code (a deploy that talks
    /// to the bootloader) uses the helpers written for boot drivers through it.
    pub fn over<H: BootHost>(host: &'a mut H) -> Self {
        Self(Self::abi(host))
    }

    /// Sends text as is.
    pub fn send(&mut self, text: &str) -> Result<(), PluginError> {
        self.0.send(RStr::from_str(text)).into()
    }

    /// Sends text followed by a newline, as typing a command would.
    pub fn send_line(&mut self, text: &str) -> Result<(), PluginError> {
        self.send(&format!("{text}\n"))
    }

    /// Waits for one of `patterns` (regular expressions) on the console.
    pub fn expect<S: AsRef<str>>(
        &mut self,
        patterns: &[S],
        timeout: Duration,
    ) -> Result<ExpectMatch, PluginError> {
        let patterns: Vec<RString> = patterns.iter().map(|p| p.as_ref().into()).collect();
        let found: Result<ExpectMatchAbi, PluginError> = self
            .0
            .expect(RSlice::from_slice(&patterns), to_millis(timeout))
            .into();
        let found = found?;
        Ok(ExpectMatch {
            index: found.index as usize,
            before: found.before.into(),
            matched: found.matched.into(),
        })
    }

    /// Asks the host's power driver for a power operation.
    pub fn power(&mut self, action: PowerAction, timeout: Duration) -> Result<(), PluginError> {
        self.0.power(action, to_millis(timeout)).into()
    }

    /// Writes to the job log.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.0.log(level, RStr::from_str(message));
    }

    /// Writes to the job log at `info`.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::INFO, message);
    }

    /// Puts a file in the job's TFTP directory (see [`BootHost::publish`]); returns its path
    /// relative to the TFTP root.
    pub fn publish(&mut self, name: &str, content: &[u8]) -> Result<String, PluginError> {
        let published: Result<RString, PluginError> = self
            .0
            .publish(RStr::from_str(name), RSlice::from_slice(content))
            .into();
        published.map(String::from)
    }

    /// Runs `body` as one of the boot's own LAVA actions, `name`, until `deadline` (see
    /// [`BootHost::start_action`]): `body` may fill in the results LAVA records for it; an
    /// error ends the action failed, and is returned.
    pub fn action<T>(
        &mut self,
        name: &str,
        deadline: std::time::Instant,
        body: impl FnOnce(
            &mut Self,
            &mut serde_json::Map<String, serde_json::Value>,
        ) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        self.0
            .start_action(RStr::from_str(name), to_millis(timeout));
        let mut results = serde_json::Map::new();
        let outcome = body(self, &mut results);
        let results = serde_json::Value::Object(results).to_string();
        let failure = outcome.as_ref().err().map(|e| e.message().to_owned());
        self.0.end_action(
            RStr::from_str(&results),
            failure.is_some(),
            RStr::from_str(failure.as_deref().unwrap_or("")),
        );
        outcome
    }

    /// Records a result of the running action (see [`BootHost::record_result`]).
    pub fn record_result(
        &mut self,
        case: &str,
        result: &str,
        extra: &serde_json::Value,
        duration: Duration,
    ) {
        self.0.record_result(
            RStr::from_str(case),
            RStr::from_str(result),
            RStr::from_str(&extra.to_string()),
            to_millis(duration),
        );
    }

    /// Hands the host a console this driver opened (see [`BootHost::attach_console`]).
    pub fn attach_console(&mut self, console: ConsoleBox) -> Result<(), PluginError> {
        self.0.attach_console(console).into()
    }
}

/// What a plugin author implements for a boot method (`minimal`, `u-boot`, `qemu`, ...).
///
/// The driver is built from the device configuration's `actions.boot.methods.<name>` section;
/// `boot` gets the job's boot action (as JSON text) and the action's timeout.
pub trait BootDriver: Send + Sync + 'static {
    /// Boots the board, returning once it reached the state the job asked for.
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError>;
}

/// The ABI form of [`BootDriver`].
#[sabi_trait]
pub trait BootDriverAbi: Send + Sync {
    /// See [`BootDriver::boot`]; the timeout is in milliseconds.
    #[sabi(last_prefix_field)]
    fn boot<'s>(
        &self,
        session: BootSessionAbi_TO<'s, RMut<'s, ()>>,
        action: RStr<'_>,
        timeout_ms: u64,
    ) -> RResult<(), PluginError>;
}

/// An owned boot driver as it crosses the boundary.
pub type BootDriverBox = BootDriverAbi_TO<'static, RBox<()>>;

struct BootAdapter<T>(T);

impl<T: BootDriver> BootDriverAbi for BootAdapter<T> {
    fn boot<'s>(
        &self,
        session: BootSessionAbi_TO<'s, RMut<'s, ()>>,
        action: RStr<'_>,
        timeout_ms: u64,
    ) -> RResult<(), PluginError> {
        let mut session = BootSession(session);
        guard(|| {
            self.0
                .boot(&mut session, action.as_str(), millis(timeout_ms))
        })
    }
}

/// Erases a [`BootDriver`] into the form that crosses the boundary.
pub fn boot_driver_box(driver: impl BootDriver) -> BootDriverBox {
    BootDriverAbi_TO::from_value(BootAdapter(driver), TD_Opaque)
}
