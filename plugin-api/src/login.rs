//! The end of every boot: log in if the job says how, and wait for the shell prompt.
//!
//! Shared by boot drivers (minimal, u-boot, qemu, ...) so every boot method reads LAVA's
//! `auto_login` and `prompts` the same way.

use std::time::{Duration, Instant};

use crate::kernel::Scan;
use crate::{parse_config, BootSession, PluginError};

/// `auto_login` of a boot action.
#[derive(serde::Deserialize, Debug, Clone)]
pub struct AutoLogin {
    /// Pattern of the login prompt.
    pub login_prompt: String,
    /// User to log in as.
    pub username: String,
    /// Pattern of the password prompt, if the board asks for one.
    #[serde(default)]
    pub password_prompt: Option<String>,
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// Commands to run after logging in, each followed by a prompt.
    #[serde(default)]
    pub login_commands: Vec<String>,
}

/// The login-related keys of a LAVA boot action.
#[derive(serde::Deserialize, Debug, Clone, Default)]
pub struct LoginParameters {
    /// Patterns of the shell prompt.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// How to log in.
    #[serde(default)]
    pub auto_login: Option<AutoLogin>,
    /// Skip LAVA's kernel message scan ([`crate::kernel`]).
    #[serde(default)]
    pub ignore_kernel_messages: bool,
    /// The job's own message that ends the boot as failed when it shows up.
    #[serde(default)]
    pub failure_message: Option<String>,
}

impl LoginParameters {
    /// Reads them from a boot action (JSON); `driver` names the boot method in errors.
    pub fn from_action(driver: &str, action: &str) -> Result<Self, PluginError> {
        let parameters: Self =
            parse_config(driver, action).map_err(|e| PluginError::job(e.message().to_owned()))?;
        // As in LAVA, a boot without prompts does not wait for a shell (the board may have
        // none: RTOS images watched by `monitors:`); logging in needs the prompt to wait for.
        if parameters.prompts.is_empty() && parameters.auto_login.is_some() {
            return Err(PluginError::job(format!(
                "{driver}: auto_login needs prompts; add prompts: ['<shell prompt>']"
            )));
        }
        Ok(parameters)
    }
}

/// Reads a boot action (JSON text) once: its login keys, and the whole action as data for
/// the driver's own keys.
pub fn read_boot_action(
    driver: &str,
    action: &str,
) -> Result<(LoginParameters, serde_json::Value), PluginError> {
    let login = LoginParameters::from_action(driver, action)?;
    let value = serde_json::from_str(action)
        .map_err(|e| PluginError::job(format!("{driver}: bad boot action: {e}")))?;
    Ok((login, value))
}

/// Time left before `deadline`.
pub fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Adds what a driver was waiting for to an error from the host.
pub fn waiting_for(driver: &str, what: &str, error: PluginError) -> PluginError {
    PluginError::new(
        error.kind,
        format!("{driver}: waiting for {what}: {}", error.message()),
    )
}

/// Logs in (if asked), waits for a prompt, and runs the login commands: LAVA's
/// `auto-login-action` and its `login-action`, actions of the boot's own.
pub fn log_in(
    driver: &str,
    session: &mut BootSession<'_>,
    login: &LoginParameters,
    deadline: Instant,
) -> Result<(), PluginError> {
    if login.prompts.is_empty() {
        session.info(&format!(
            "{driver}: the boot action lists no prompts; not waiting for a shell"
        ));
        return Ok(());
    }
    session.action("auto-login-action", deadline, |session, _| {
        session.action("login-action", deadline, |session, results| {
            // LAVA's login action watches the kernel's messages until the login prompt (or,
            // without auto_login, the shell prompt), and records what it saw as it ends.
            let mut scan = Scan::new(!login.ignore_kernel_messages);
            let outcome = login_steps(driver, session, login, &mut scan, deadline);
            scan.record(session);
            if let Some((key, value)) = scan.login_results() {
                results.insert(key, value);
            }
            outcome
        })
    })
}

fn login_steps(
    driver: &str,
    session: &mut BootSession<'_>,
    login: &LoginParameters,
    scan: &mut Scan,
    deadline: Instant,
) -> Result<(), PluginError> {
    let failure = login.failure_message.as_deref();
    let found = match &login.auto_login {
        Some(auto) => {
            scan.wait(
                session,
                std::slice::from_ref(&auto.login_prompt),
                failure,
                deadline,
            )
            .map_err(|e| waiting_for(driver, "the login prompt", e))?;
            session.send_line(&auto.username)?;
            if let Some(password_prompt) = &auto.password_prompt {
                session
                    .expect(&[password_prompt], time_left(deadline))
                    .map_err(|e| waiting_for(driver, "the password prompt", e))?;
                session.send_line(auto.password.as_deref().unwrap_or(""))?;
            }
            session
                .expect(&login.prompts, time_left(deadline))
                .map_err(|e| waiting_for(driver, "the shell prompt", e))?
        }
        None => scan
            .wait(session, &login.prompts, failure, deadline)
            .map_err(|e| waiting_for(driver, "the shell prompt", e))?,
    };
    session.info(&format!(
        "{driver}: found prompt {:?}",
        found.matched.trim()
    ));
    for command in login
        .auto_login
        .iter()
        .flat_map(|auto| auto.login_commands.iter())
    {
        session.send_line(command)?;
        session
            .expect(&login.prompts, time_left(deadline))
            .map_err(|e| waiting_for(driver, &format!("the prompt after {command:?}"), e))?;
    }
    Ok(())
}
