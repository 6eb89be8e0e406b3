//! LAVA's bootloader dialogue, shared by every boot driver that types commands into a
//! bootloader (u-boot, GRUB, iPXE, barebox, depthcharge).
//!
//! LAVA drives all of them with the same three actions, configured per method by the device:
//! `BootloaderCommandOverlay` (a command set of `actions.boot.methods.<method>`, or the job's
//! own list, with `{PLACEHOLDERS}` filled from what the job deployed), `BootloaderInterruptAction`
//! (wait for the interrupt prompt, then send the interrupt character, a line, or control
//! characters) and `BootloaderCommandsAction` (each command after the bootloader's prompt, the
//! method's error messages watched, then its final message). Writing them once here keeps the
//! drivers from drifting apart in what they send.
//!
//! The device section a driver gets (`Method`) is `actions.boot.methods.<method>` with the
//! host's `_constants` (the device's `constants`) and `_parameters` (its `parameters`) added.
//! Prompts and messages are regular expressions, as in LAVA (pexpect patterns).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::login::{time_left, waiting_for};
use crate::{BootSession, PluginError};

/// How long to wait for the second prompt a newline after the interrupt gives.
const PROMPT_SETTLE: Duration = Duration::from_secs(2);

/// A device's section for one bootloader method.
#[derive(Debug, Clone)]
pub struct Method {
    driver: String,
    name: String,
    section: Value,
}

impl Method {
    /// Reads the configuration (JSON) a boot driver is built from; `driver` names it in
    /// errors (`boot grub`), `name` is the method's key (`grub`, the prefix of its constants).
    pub fn from_config(driver: &str, name: &str, config: &str) -> Result<Self, PluginError> {
        let section: Value = serde_json::from_str(config).map_err(|e| {
            PluginError::invalid_config(format!("{driver}: bad configuration: {e}"))
        })?;
        if !section.is_object() {
            return Err(PluginError::invalid_config(format!(
                "{driver}: the device has no {name} section under actions.boot.methods"
            )));
        }
        Ok(Self {
            driver: driver.to_owned(),
            name: name.to_owned(),
            section,
        })
    }

    /// What a bootloader driver's constructor checks: the section (as [`Method::from_config`]),
    /// its `bootloader_prompt`, which LAVA requires, and its `lava_mac`.
    pub fn for_driver(driver: &str, name: &str, config: &str) -> Result<Self, PluginError> {
        let method = Self::from_config(driver, name, config)?;
        method.bootloader_prompt()?;
        method.lava_mac()?;
        Ok(method)
    }

    /// The driver's name, for messages.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The method's key (`grub`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole section.
    pub fn section(&self) -> &Value {
        &self.section
    }

    /// `parameters.<key>` of the section.
    pub fn parameter(&self, key: &str) -> Option<&Value> {
        self.section.get("parameters").and_then(|p| p.get(key))
    }

    /// A string parameter.
    pub fn parameter_str(&self, key: &str) -> Option<&str> {
        self.parameter(key).and_then(Value::as_str)
    }

    /// The device constant `<method>.<key>` (LAVA's `get_constant(key, prefix=method)`).
    pub fn constant(&self, key: &str) -> Option<&Value> {
        self.section
            .get("_constants")
            .and_then(|c| c.get(&self.name))
            .and_then(|c| c.get(key))
    }

    /// The device's top-level `parameters` (u-boot's load addresses per boot command).
    pub fn device_parameters(&self) -> Option<&Value> {
        self.section.get("_parameters")
    }

    /// How long to wait after each character typed at the bootloader: the device's
    /// `character_delays.boot` in milliseconds (LAVA's `boot_character_delay`), for
    /// bootloaders whose serial input drops characters typed at full speed.
    pub fn character_delay(&self) -> Duration {
        self.section
            .pointer("/_character_delays/boot")
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map(|ms| Duration::from_secs_f64(ms.min(10_000.0) / 1000.0))
            .unwrap_or_default()
    }

    /// The bootloader's prompt (`parameters.bootloader_prompt`), which LAVA requires.
    pub fn bootloader_prompt(&self) -> Result<&str, PluginError> {
        self.parameter_str("bootloader_prompt").ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{}: the device's {} parameters have no bootloader_prompt",
                self.driver, self.name
            ))
        })
    }

    /// The error messages the bootloader prints when a boot cannot go on
    /// (`constants.<method>.error-messages`).
    pub fn error_messages(&self) -> Vec<String> {
        crate::config::string_list(self.constant("error-messages"))
    }

    /// The message that says the bootloader handed over to the kernel: the job's
    /// `parameters.bootloader-final-message`, else `constants.<method>.final-message`.
    pub fn final_message(&self, action: &Value) -> Option<String> {
        action
            .pointer("/parameters/bootloader-final-message")
            .and_then(Value::as_str)
            .or_else(|| self.constant("final-message").and_then(Value::as_str))
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
    }

    /// The commands the boot action selects: a named set of the section (`commands:
    /// ramdisk`, with its `commands` list) or the job's own list (LAVA warns that those are
    /// not the device configuration's).
    pub fn commands(
        &self,
        session: &BootSession<'_>,
        action: &Value,
    ) -> Result<Vec<String>, PluginError> {
        match action.get("commands") {
            Some(Value::String(set)) => {
                let Some(entry) = self.section.get(set).filter(|_| set != "parameters") else {
                    return Err(PluginError::job(format!(
                        "{}: command set '{set}' not found in the device's {} method (it has: {})",
                        self.driver,
                        self.name,
                        self.command_sets().join(", ")
                    )));
                };
                let list = entry
                    .get("commands")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        PluginError::job(format!(
                            "{}: the device's {} command set '{set}' has no commands",
                            self.driver, self.name
                        ))
                    })?;
                command_strings(&self.driver, list)
            }
            Some(Value::Array(list)) => {
                session.log(
                    crate::LogLevel::WARNING,
                    "WARNING: Using boot commands supplied in the job definition, NOT the LAVA device configuration",
                );
                command_strings(&self.driver, list)
            }
            _ => Err(PluginError::job(format!(
                "{}: the boot action needs commands: a command set of the device ({}) or a list",
                self.driver,
                self.command_sets().join(", ")
            ))),
        }
    }

    /// The named command sets of the section.
    pub fn command_sets(&self) -> Vec<String> {
        self.section
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| !k.starts_with('_') && v.get("commands").is_some())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `parameters.lava_mac`, checked as LAVA checks it.
    pub fn lava_mac(&self) -> Result<Option<String>, PluginError> {
        let Some(mac) = self.parameter_str("lava_mac").filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let bytes: Vec<&str> = mac.split([':', '-']).collect();
        let valid = bytes.len() == 6
            && bytes
                .iter()
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            return Err(PluginError::invalid_config(format!(
                "{}: lava_mac {mac:?} is not a valid mac address",
                self.driver
            )));
        }
        Ok(Some(mac.to_owned()))
    }
}

fn command_strings(driver: &str, list: &[Value]) -> Result<Vec<String>, PluginError> {
    list.iter()
        .map(|c| {
            c.as_str().map(str::to_owned).ok_or_else(|| {
                PluginError::job(format!("{driver}: boot command {c} is not a string"))
            })
        })
        .collect()
}

/// LAVA's placeholder values, in LAVA's order; `None` is a placeholder LAVA knows but this job
/// has no value for (a command using it is dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions(Vec<(String, Option<String>)>);

impl Substitutions {
    /// Sets `key` (`{KERNEL}`), keeping its place if it was set before. `None` and an empty
    /// value both mean "no value"; [`Missing::Remove`] tells them apart as LAVA does.
    pub fn set(&mut self, key: &str, value: Option<String>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    /// The value of `key`, if it has a non-empty one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
            .filter(|v| !v.is_empty())
    }

    /// The placeholders and their values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// What every bootloader method gets (LAVA's `BootloaderCommandOverlay`): the worker's
    /// address, the deployed files (paths relative to the TFTP root), the NFS root, the
    /// device's `lava_mac` and the job id. The host puts `_server_ip`, `_deployed` and
    /// `_job_id` in the boot action.
    pub fn for_boot(action: &Value, lava_mac: Option<String>) -> Self {
        let deployed = |key: &str| {
            action
                .pointer(&format!("/_deployed/{key}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let server = action
            .get("_server_ip")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ramdisk = deployed("ramdisk").or_else(|| deployed("initrd"));
        let mut subs = Self::default();
        subs.set("{SERVER_IP}", server.clone());
        subs.set("{PRESEED_CONFIG}", deployed("preseed"));
        subs.set("{PRESEED_LOCAL}", None);
        subs.set("{DTB}", deployed("dtb"));
        subs.set("{RAMDISK}", ramdisk.clone());
        subs.set("{INITRD}", ramdisk);
        subs.set("{KERNEL}", deployed("kernel"));
        subs.set("{LAVA_MAC}", lava_mac);
        subs.set("{TEE}", deployed("tee"));
        subs.set("{DTB_BASE_ADDR}", None);
        subs.set("{DTB_BASE_RESIZE}", None);
        subs.set("{APPLY_DTBO_COMMANDS}", None);
        subs.set("{LAVA_DISPATCHER_IP}", server.clone());
        subs.set(
            "{LAVA_JOB_ID}",
            action
                .get("_job_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        if let Some(nfsroot) = deployed("nfsrootfs") {
            subs.set("{NFSROOTFS}", Some(nfsroot));
            subs.set("{NFS_SERVER_IP}", server);
        }
        // No media deploy gives a root UUID: commands naming one are dropped, as in LAVA.
        subs.set("{ROOT}", None);
        subs.set("{ROOT_PART}", None);
        subs
    }

    /// Fills `commands` as LAVA's `substitute`: each known placeholder with a value is
    /// replaced, unknown `{WORDS}` are left as they are, and a known one without a value is
    /// handled as `missing` says.
    pub fn apply(&self, commands: &[String], missing: Missing) -> Vec<String> {
        let mut filled = Vec::with_capacity(commands.len());
        'commands: for command in commands {
            let mut line = command.clone();
            for (key, value) in &self.0 {
                match value.as_deref() {
                    Some(value) if !value.is_empty() => line = line.replace(key.as_str(), value),
                    value if line.contains(key.as_str()) => match (missing, value) {
                        (Missing::Keep, _) => {}
                        (Missing::Remove, Some(empty)) => line = line.replace(key.as_str(), empty),
                        (Missing::DropCommand | Missing::Remove, _) => continue 'commands,
                    },
                    _ => {}
                }
            }
            filled.push(line);
        }
        filled
    }
}

/// A boot action read and filled, ready for the dialogue: what every bootloader driver starts
/// with.
pub struct Prepared {
    /// When the boot action's timeout ends.
    pub deadline: Instant,
    /// The action's `auto_login` and `prompts`.
    pub login: crate::login::LoginParameters,
    /// The whole boot action.
    pub action: Value,
    /// The placeholders' values for this boot.
    pub subs: Substitutions,
    /// The chosen command set as the device (or the job) lists it, placeholders unfilled.
    pub listed: Vec<String>,
    /// The chosen command set, filled (commands naming a placeholder without a value dropped).
    pub commands: Vec<String>,
}

impl Prepared {
    /// Reads the boot action (JSON text) and fills the command set it names with the common
    /// placeholders plus `extra` (a method's own, such as u-boot's `{BOOTX}`).
    pub fn new(
        method: &Method,
        session: &BootSession<'_>,
        action: &str,
        timeout: Duration,
        extra: impl FnOnce(&mut Substitutions, &Value),
    ) -> Result<Self, PluginError> {
        let deadline = Instant::now() + timeout;
        let (login, action) = crate::login::read_boot_action(method.driver(), action)?;
        let mut subs = Substitutions::for_boot(&action, method.lava_mac()?);
        extra(&mut subs, &action);
        let listed = method.commands(session, &action)?;
        let commands = subs.apply(&listed, Missing::DropCommand);
        Ok(Self {
            deadline,
            login,
            action,
            subs,
            listed,
            commands,
        })
    }

    /// A file the boot publishes next to the deployed kernel (LAVA puts iPXE's script and
    /// depthcharge's `cmdline` there): its path below the job's TFTP directory, for
    /// [`BootSession::publish`], and the path the board asks the TFTP server for. `None`
    /// without a kernel.
    pub fn beside_kernel(&self, name: &str) -> Option<(String, String)> {
        let kernel = self.subs.get("{KERNEL}")?;
        let job = self
            .action
            .get("_job_id")
            .and_then(Value::as_str)
            .unwrap_or("");
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
        Some((join(below), join(dir)))
    }

    /// The whole dialogue ([`run`]) with these commands.
    pub fn run(&self, method: &Method, session: &mut BootSession<'_>) -> Result<(), PluginError> {
        run(
            method,
            session,
            &self.action,
            &self.subs,
            &self.commands,
            self.deadline,
        )
    }

    /// Logs in and waits for the shell, as every boot ends.
    pub fn log_in(
        &self,
        method: &Method,
        session: &mut BootSession<'_>,
    ) -> Result<(), PluginError> {
        crate::login::log_in(method.driver(), session, &self.login, self.deadline)
    }
}

/// What [`Substitutions::apply`] does with a known placeholder that has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Drops the command (LAVA's `drop=True`: no `initrd` line without a ramdisk).
    DropCommand,
    /// Removes a placeholder whose value is empty and keeps the command; one set to `None`
    /// still drops it (depthcharge's `drop_line=False`).
    Remove,
    /// Leaves it (LAVA's default, used for iPXE boot scripts and depthcharge's cmdline).
    Keep,
}

/// The whole dialogue of an interactive bootloader, as LAVA's boot actions run it: logs the
/// commands, resets the board (unless `reset: false`), interrupts it, sends the commands and
/// waits for the kernel to start ([`wait_for_kernel`]).
pub fn run(
    method: &Method,
    session: &mut BootSession<'_>,
    action: &Value,
    subs: &Substitutions,
    commands: &[String],
    deadline: Instant,
) -> Result<(), PluginError> {
    if commands.is_empty() {
        return Err(PluginError::job(format!(
            "{}: no bootloader commands are left to send",
            method.driver()
        )));
    }
    log_commands(session, subs, commands);
    reset(method, session, action, deadline)?;
    let interrupted = interrupt(method, session, deadline)?;
    commands_to_kernel(method, session, action, interrupted, commands, deadline)
}

/// LAVA's `bootloader-commands`: the commands sent ([`send_commands`]), then the kernel's
/// start waited for ([`wait_for_kernel`]).
pub fn commands_to_kernel(
    method: &Method,
    session: &mut BootSession<'_>,
    action: &Value,
    interrupted: Interrupted,
    commands: &[String],
    deadline: Instant,
) -> Result<(), PluginError> {
    session.action("bootloader-commands", deadline, |session, _| {
        send_commands(method, session, action, interrupted, commands, deadline)?;
        wait_for_kernel(method, session, action, deadline)
    })
}

/// Where the interrupt left the bootloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The interrupt was sent; the prompt has not been seen yet.
    Sent {
        /// A newline followed it, which gives one more prompt.
        newline: bool,
    },
    /// The device needs no interrupt and its prompt was seen.
    AtPrompt,
}

/// LAVA's `BootloaderInterruptAction`: waits for the interrupt prompt and stops autoboot
/// with the method's control characters (`interrupt_ctrl_list`), or its interrupt character
/// followed by a newline where `interrupt-newline` (default true) says so, or alone; with
/// `needs_interrupt: false`, waits for the bootloader prompt instead.
pub fn interrupt(
    method: &Method,
    session: &mut BootSession<'_>,
    deadline: Instant,
) -> Result<Interrupted, PluginError> {
    session.action("bootloader-interrupt", deadline, |session, _| {
        interrupt_now(method, session, deadline)
    })
}

fn interrupt_now(
    method: &Method,
    session: &mut BootSession<'_>,
    deadline: Instant,
) -> Result<Interrupted, PluginError> {
    let driver = method.driver();
    let needs_interrupt = method
        .parameter("needs_interrupt")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !needs_interrupt {
        session.info("Not interrupting bootloader, waiting for bootloader prompt");
        session
            .expect(&[method.bootloader_prompt()?], time_left(deadline))
            .map_err(|e| waiting_for(driver, "the bootloader prompt", e))?;
        return Ok(Interrupted::AtPrompt);
    }
    let prompt = method
        .parameter_str("interrupt_prompt")
        .or_else(|| method.constant("interrupt-prompt").and_then(Value::as_str))
        .ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{driver}: neither the {0} parameters nor constants.{0} give an interrupt prompt",
                method.name()
            ))
        })?;
    session
        .expect(&[prompt], time_left(deadline))
        .map_err(|e| waiting_for(driver, "the interrupt prompt", e))?;
    let controls = crate::config::string_list(
        method
            .parameter("interrupt_ctrl_list")
            .or_else(|| method.constant("interrupt_ctrl_list")),
    );
    if !controls.is_empty() {
        for name in &controls {
            session.send(&control_character(driver, name)?.to_string())?;
        }
        return Ok(Interrupted::Sent { newline: false });
    }
    let character = method
        .parameter_str("interrupt_char")
        .or_else(|| {
            method
                .constant("interrupt-character")
                .and_then(Value::as_str)
        })
        .unwrap_or_default();
    let newline = method
        .constant("interrupt-newline")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if newline {
        session.send_line(character)?;
    } else {
        session.send(character)?;
    }
    Ok(Interrupted::Sent { newline })
}

/// pexpect's `sendcontrol`: `b` is Ctrl-B (0x02); the names `[`, `\`, `]`, `^`, `_` and `?`
/// (DEL) as in pexpect.
pub fn control_character(driver: &str, name: &str) -> Result<char, PluginError> {
    let mut chars = name.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(PluginError::invalid_config(format!(
            "{driver}: interrupt control character {name:?} is not one character"
        )));
    };
    let code = match c.to_ascii_lowercase() {
        c @ 'a'..='z' => c as u8 - b'a' + 1,
        '@' => 0,
        '`' => 0,
        '[' => 27,
        '\\' => 28,
        ']' => 29,
        '^' => 30,
        '_' => 31,
        '?' => 127,
        _ => {
            return Err(PluginError::invalid_config(format!(
                "{driver}: {name:?} names no control character"
            )))
        }
    };
    Ok(char::from(code))
}

/// LAVA's `BootloaderCommandsAction`: waits for the bootloader prompt (unless the interrupt
/// already saw it), then sends each command after the prompt of the one before; the last one
/// is followed by the final message if the method has one. Any of the method's error messages
/// in place of a prompt ends the boot as an infrastructure error, as in LAVA.
pub fn send_commands(
    method: &Method,
    session: &mut BootSession<'_>,
    action: &Value,
    interrupted: Interrupted,
    commands: &[String],
    deadline: Instant,
) -> Result<(), PluginError> {
    let driver = method.driver();
    let prompt = method.bootloader_prompt()?.to_owned();
    let errors = method.error_messages();
    let mut waiting = vec![prompt.clone()];
    waiting.extend(errors.iter().cloned());
    if let Interrupted::Sent { newline } = interrupted {
        expect_prompt(session, driver, &waiting, "the bootloader prompt", deadline)?;
        if newline {
            // The newline after the interrupt gives a second prompt; take it here so each
            // command below waits for its own.
            let _ = session.expect(&[&prompt], PROMPT_SETTLE.min(time_left(deadline)));
        }
    }
    let final_message = method.final_message(action);
    let delay = method.character_delay();
    if !delay.is_zero() {
        session.log(
            crate::LogLevel::DEBUG,
            &format!(
                "Sending with {} millisecond of delay",
                delay.as_secs_f64() * 1000.0
            ),
        );
    }
    for (index, command) in commands.iter().enumerate() {
        send_line_slowly(session, command, delay)?;
        let last = index + 1 == commands.len();
        if last {
            let Some(final_message) = &final_message else {
                break;
            };
            let mut ending = vec![final_message.clone()];
            ending.extend(errors.iter().cloned());
            expect_prompt(session, driver, &ending, "the kernel to start", deadline)?;
        } else {
            expect_prompt(
                session,
                driver,
                &waiting,
                &format!("the prompt after {command:?}"),
                deadline,
            )?;
        }
    }
    Ok(())
}

/// LAVA's `sendline(line, delay=…)`: each character of the line, then the newline, with
/// `delay` after each.
pub fn send_line_slowly(
    session: &mut BootSession<'_>,
    line: &str,
    delay: Duration,
) -> Result<(), PluginError> {
    if delay.is_zero() {
        return session.send_line(line);
    }
    let mut buffer = [0u8; 4];
    for c in line.chars().chain(std::iter::once('\n')) {
        session.send(c.encode_utf8(&mut buffer))?;
        std::thread::sleep(delay);
    }
    Ok(())
}

/// Waits for `patterns[0]`; any other pattern is one of the bootloader's error messages.
fn expect_prompt(
    session: &mut BootSession<'_>,
    driver: &str,
    patterns: &[String],
    what: &str,
    deadline: Instant,
) -> Result<(), PluginError> {
    let found = session
        .expect(patterns, time_left(deadline))
        .map_err(|e| waiting_for(driver, what, e))?;
    if found.index > 0 {
        return Err(PluginError::infrastructure(format!(
            "{driver}: matched a bootloader error message: '{}' ({}) while waiting for {what}",
            patterns[found.index], found.index
        )));
    }
    Ok(())
}

/// The first part of LAVA's `AutoLoginAction` after a bootloader: where the job waits for a
/// shell (it lists `prompts`), wait for the kernel's first words (the job's
/// `parameters.kernel-start-message`, the method's deprecated `boot_message` parameter, or
/// the device's `constants.kernel-start-message`), with the bootloader's error messages
/// watched: a bootloader that fails after its last command ("error: you need to load the
/// kernel first.") ends the boot there, as an infrastructure error, instead of at the boot's
/// timeout.
pub fn wait_for_kernel(
    method: &Method,
    session: &mut BootSession<'_>,
    action: &Value,
    deadline: Instant,
) -> Result<(), PluginError> {
    if action
        .get("prompts")
        .is_none_or(|p| p.as_array().is_some_and(Vec::is_empty))
    {
        return Ok(());
    }
    let start = action
        .pointer("/parameters/kernel-start-message")
        .and_then(Value::as_str)
        .or_else(|| method.parameter_str("boot_message"))
        .or_else(|| {
            method
                .section()
                .pointer("/_constants/kernel-start-message")
                .and_then(Value::as_str)
        })
        .filter(|m| !m.is_empty());
    let Some(start) = start else {
        return Ok(());
    };
    let mut patterns = vec![start.to_owned()];
    patterns.extend(method.error_messages());
    expect_prompt(
        session,
        method.driver(),
        &patterns,
        "the kernel's first messages",
        deadline,
    )
}

/// Resets the board unless the boot action says `reset: false`: LAVA's `reset-device`.
pub fn reset(
    method: &Method,
    session: &mut BootSession<'_>,
    action: &Value,
    deadline: Instant,
) -> Result<(), PluginError> {
    if action.get("reset").and_then(Value::as_bool) == Some(false) {
        return Ok(());
    }
    power_reset(method.driver(), session, deadline)
}

/// LAVA's `reset-device` > `pdu-reboot`: the board power-cycled through the host's power
/// driver, recorded as LAVA records a power command that worked.
pub fn power_reset(
    driver: &str,
    session: &mut BootSession<'_>,
    deadline: Instant,
) -> Result<(), PluginError> {
    session.action("reset-device", deadline, |session, _| {
        session.action("pdu-reboot", deadline, |session, results| {
            session.info(&format!("{driver}: resetting the board"));
            session.power(crate::PowerAction::Reboot, time_left(deadline))?;
            results.insert("status".into(), Value::from("success"));
            Ok(())
        })
    })
}

/// Key of the section the host adds to a boot method's section for boards that enter
/// fastboot mode through u-boot: `{boot: actions.boot.methods.u-boot, deploy:
/// actions.deploy.methods.u-boot}`.
pub const FASTBOOT_VIA_UBOOT: &str = "_fastboot_via_uboot";

/// How a board with `fastboot_via_uboot` gets into fastboot mode, as LAVA's
/// `UBootEnterFastbootAction` does it: reset, u-boot interrupted as its boot method
/// interrupts it (`actions.boot.methods.u-boot` parameters and `constants.u-boot`), then the
/// u-boot deploy's `fastboot.commands` (`fastboot 1`) typed at its `bootloader_prompt`, the
/// last one without waiting for a prompt (u-boot stays in fastboot mode).
#[derive(Debug, Clone)]
pub struct UbootFastboot {
    uboot: Method,
    prompt: String,
    commands: Vec<String>,
}

impl UbootFastboot {
    /// From the u-boot boot method's section (with the device's constants, as the host
    /// gives every method) and the device's `actions.deploy.methods.u-boot`.
    pub fn new(uboot: Method, deploy: &Value) -> Result<Self, PluginError> {
        let driver = uboot.driver().to_owned();
        let parameters = deploy.get("parameters").filter(|p| p.is_object()).ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{driver}: the device enters fastboot through u-boot, but has no u-boot deploy                  method with parameters (LAVA's 'uboot method missing')"
            ))
        })?;
        let commands = crate::config::string_list(parameters.pointer("/fastboot/commands"));
        if commands.is_empty() {
            return Err(PluginError::invalid_config(format!(
                "{driver}: the u-boot deploy parameters have no fastboot commands (LAVA's                  'uboot command missing')"
            )));
        }
        let prompt = parameters
            .get("bootloader_prompt")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "{driver}: the u-boot deploy parameters have no bootloader_prompt"
                ))
            })?
            .to_owned();
        uboot.bootloader_prompt()?;
        Ok(Self {
            uboot,
            prompt,
            commands,
        })
    }

    /// From the [`FASTBOOT_VIA_UBOOT`] part of `outer`'s section: `None` when the host added
    /// none (the board does not enter fastboot through u-boot).
    pub fn from_section(outer: &Method) -> Result<Option<Self>, PluginError> {
        let Some(via) = outer.section().get(FASTBOOT_VIA_UBOOT) else {
            return Ok(None);
        };
        let mut boot = via.get("boot").cloned().unwrap_or(Value::Null);
        if let Value::Object(section) = &mut boot {
            for key in ["_constants", "_parameters", "_character_delays"] {
                if let Some(value) = outer.section().get(key) {
                    section.insert(key.to_owned(), value.clone());
                }
            }
        }
        let uboot = Method::from_config(outer.driver(), "u-boot", &boot.to_string())?;
        Self::new(uboot, via.get("deploy").unwrap_or(&Value::Null)).map(Some)
    }

    /// Resets the board and leaves it in u-boot's fastboot mode.
    pub fn enter(
        &self,
        session: &mut BootSession<'_>,
        deadline: Instant,
    ) -> Result<(), PluginError> {
        let driver = self.uboot.driver();
        session.info(&format!("{driver}: entering fastboot mode through u-boot"));
        reset(&self.uboot, session, &Value::Null, deadline)?;
        let interrupted = interrupt(&self.uboot, session, deadline)?;
        if interrupted != Interrupted::AtPrompt {
            let errors = self.uboot.error_messages();
            let mut waiting = vec![self.prompt.clone()];
            waiting.extend(errors);
            expect_prompt(session, driver, &waiting, "the bootloader prompt", deadline)?;
        }
        let delay = self.uboot.character_delay();
        for (index, command) in self.commands.iter().enumerate() {
            send_line_slowly(session, command, delay)?;
            if index + 1 < self.commands.len() {
                expect_prompt(
                    session,
                    driver,
                    std::slice::from_ref(&self.prompt),
                    &format!("the prompt after {command:?}"),
                    deadline,
                )?;
            }
        }
        Ok(())
    }
}

/// Logs the substitutions and the commands they gave, as LAVA's overlay action does.
pub fn log_commands(session: &BootSession<'_>, subs: &Substitutions, commands: &[String]) {
    session.log(crate::LogLevel::DEBUG, "substitutions:");
    for (key, value) in subs.iter() {
        session.log(
            crate::LogLevel::DEBUG,
            &format!("- {key}: {}", value.unwrap_or("None")),
        );
    }
    session.info("Parsed boot commands:");
    for command in commands {
        session.info(&format!("- {command}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placeholders_fill_drop_or_stay_as_lava_substitutes_them() {
        let action = json!({
            "_server_ip": "10.0.2.2",
            "_deployed": {"kernel": "7/kernel/bzImage", "ramdisk": "7/ramdisk/ramdisk.cpio.gz"},
            "_job_id": "7",
        });
        let subs = Substitutions::for_boot(&action, Some("00:90:05:af:00:7d".into()));
        let commands = list(&[
            "dhcp net0",
            "set console console=ttyS0,115200n8 lava_mac={LAVA_MAC}",
            "kernel tftp://{SERVER_IP}/{KERNEL} ${extraargs}",
            "initrd tftp://{SERVER_IP}/{RAMDISK}",
            "devicetree (tftp,{SERVER_IP})/{DTB}",
            "set extraargs nbd.server={NBDSERVERIP} root={ROOT}",
            "nfsroot={NFS_SERVER_IP}:{NFSROOTFS}",
            "echo {LAVA_JOB_ID}",
            "boot",
        ]);
        assert_eq!(
            subs.apply(&commands, Missing::DropCommand),
            list(&[
                "dhcp net0",
                "set console console=ttyS0,115200n8 lava_mac=00:90:05:af:00:7d",
                "kernel tftp://10.0.2.2/7/kernel/bzImage ${extraargs}",
                "initrd tftp://10.0.2.2/7/ramdisk/ramdisk.cpio.gz",
                // No dtb, no root UUID: dropped. No NFS root: the placeholders stay, as in
                // LAVA, which only knows them when an nfsrootfs was deployed.
                "nfsroot={NFS_SERVER_IP}:{NFSROOTFS}",
                "echo 7",
                "boot",
            ])
        );
    }

    #[test]
    fn a_placeholder_without_value_is_removed_or_kept_where_asked() {
        let mut subs = Substitutions::default();
        subs.set("{CMDLINE}", Some("7/kernel/cmdline".into()));
        subs.set("{DEPTHCHARGE_RAMDISK}", Some(String::new()));
        subs.set("{DTB}", None);
        // An empty value is no value, as LAVA's `if value:` reads it.
        assert_eq!(subs.get("{DEPTHCHARGE_RAMDISK}"), None);
        assert_eq!(
            subs.apply(&list(&["k {DTB}", "k {CMDLINE}"]), Missing::Remove),
            list(&["k 7/kernel/cmdline"])
        );
        assert_eq!(
            subs.apply(
                &list(&["tftpboot 1 k {CMDLINE} {DEPTHCHARGE_RAMDISK}"]),
                Missing::Remove
            ),
            list(&["tftpboot 1 k 7/kernel/cmdline "])
        );
        assert_eq!(
            subs.apply(&list(&["k {CMDLINE} {DEPTHCHARGE_RAMDISK}"]), Missing::Keep),
            list(&["k 7/kernel/cmdline {DEPTHCHARGE_RAMDISK}"])
        );
    }

    #[test]
    fn files_beside_the_kernel_are_named_below_the_job_and_below_the_tftp_root() {
        let prepared = |action: Value| Prepared {
            deadline: Instant::now(),
            login: Default::default(),
            subs: Substitutions::for_boot(&action, None),
            action,
            listed: Vec::new(),
            commands: Vec::new(),
        };
        let with_kernel =
            prepared(json!({"_job_id": "42", "_deployed": {"kernel": "42/kernel/bzImage"}}));
        assert_eq!(
            with_kernel.beside_kernel("script.ipxe"),
            Some((
                "kernel/script.ipxe".to_owned(),
                "42/kernel/script.ipxe".to_owned()
            ))
        );
        assert_eq!(
            prepared(json!({"_job_id": "42"})).beside_kernel("cmdline"),
            None
        );
    }

    #[test]
    fn control_characters_are_pexpects() {
        assert_eq!(control_character("t", "b").unwrap(), '\u{2}');
        assert_eq!(control_character("t", "C").unwrap(), '\u{3}');
        assert_eq!(control_character("t", "[").unwrap(), '\u{1b}');
        assert!(control_character("t", "bb").is_err());
        assert!(control_character("t", "1").is_err());
    }

    #[test]
    fn command_sets_and_macs_are_read_from_the_section() {
        let method = Method::from_config(
            "boot ipxe",
            "ipxe",
            &json!({
                "parameters": {"bootloader_prompt": "iPXE>", "lava_mac": "00:90:05:AF:00:7d"},
                "ramdisk": {"commands": ["dhcp net0", "boot"]},
                "nfs": {"commands": ["boot"]},
                "_constants": {"ipxe": {"error-messages": ["Connection timed out"]}},
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(method.command_sets(), ["ramdisk", "nfs"]);
        assert_eq!(method.character_delay(), Duration::ZERO);
        assert_eq!(method.error_messages(), ["Connection timed out"]);
        assert_eq!(
            method.lava_mac().unwrap().as_deref(),
            Some("00:90:05:AF:00:7d")
        );
        let bad = Method::from_config(
            "boot ipxe",
            "ipxe",
            &json!({"parameters": {"bootloader_prompt": "iPXE>", "lava_mac": "00:90:05"}})
                .to_string(),
        )
        .unwrap();
        assert!(bad.lava_mac().is_err());
        let slow = Method::from_config(
            "boot grub",
            "grub",
            &json!({"parameters": {}, "_character_delays": {"boot": 30}}).to_string(),
        )
        .unwrap();
        assert_eq!(slow.character_delay(), Duration::from_millis(30));
        assert!(Method::from_config("boot ipxe", "ipxe", "[]").is_err());
    }
}
