//! Boot driver `minimal`: LAVA's boot method for boards that boot by themselves.
//!
//! Power-cycles the board (unless the job says `reset: false`), optionally logs in
//! (`auto_login`), and waits for one of the job's `prompts`. The job's boot action, as LAVA
//! writes it:
//!
//! ```yaml
//! - boot:
//!     method: minimal
//!     reset: true                 # optional, default true
//!     auto_login:                 # optional
//!       login_prompt: 'login:'
//!       username: root
//!       password_prompt: 'Password:'
//!       password: secret
//!       login_commands: [sudo su]
//!     prompts: ['root@board:~#']
//!     timeout: {minutes: 5}
//! ```
//!
//! Prompts and login prompts are regular expressions, as in LAVA.
#![deny(missing_docs)]

use std::time::{Duration, Instant};

use basalt_plugin_api::{
    export_plugin, parse_config, BootDriver, BootSession, Log, PluginError, PowerAction,
};

/// `auto_login` of the boot action.
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

/// The parts of a LAVA boot action this driver reads; other keys (`method`, `timeout`,
/// `namespace`, ...) belong to the dispatcher.
#[derive(serde::Deserialize, Debug, Clone)]
pub struct MinimalAction {
    /// Power-cycle first.
    #[serde(default = "yes")]
    pub reset: bool,
    /// Patterns of the shell prompt.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// How to log in.
    #[serde(default)]
    pub auto_login: Option<AutoLogin>,
}

fn yes() -> bool {
    true
}

/// The driver. The device's `actions.boot.methods.minimal` section has nothing it needs.
pub struct MinimalBoot {
    _log: Log,
}

/// Builds the driver; any configuration (LAVA templates render `minimal:` as null or `{}`) is
/// accepted.
pub fn new_minimal_boot(_config: &str, log: Log) -> Result<MinimalBoot, PluginError> {
    Ok(MinimalBoot { _log: log })
}

/// Time left before `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Adds what the driver was waiting for to an error from the host.
fn waiting_for(what: &str, error: PluginError) -> PluginError {
    PluginError::new(
        error.kind,
        format!("boot minimal: waiting for {what}: {}", error.message()),
    )
}

impl BootDriver for MinimalBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let action: MinimalAction = parse_config("boot minimal", action)
            .map_err(|e| PluginError::job(e.message().to_owned()))?;
        if action.prompts.is_empty() {
            return Err(PluginError::job(
                "boot minimal: the boot action lists no prompts; add prompts: ['<shell prompt>']",
            ));
        }
        if action.reset {
            session.info("boot minimal: resetting the board");
            session.power(PowerAction::Reboot, left(deadline))?;
        }
        if let Some(login) = &action.auto_login {
            session
                .expect(&[&login.login_prompt], left(deadline))
                .map_err(|e| waiting_for("the login prompt", e))?;
            session.send_line(&login.username)?;
            if let Some(password_prompt) = &login.password_prompt {
                session
                    .expect(&[password_prompt], left(deadline))
                    .map_err(|e| waiting_for("the password prompt", e))?;
                session.send_line(login.password.as_deref().unwrap_or(""))?;
            }
        }
        let found = session
            .expect(&action.prompts, left(deadline))
            .map_err(|e| waiting_for("the shell prompt", e))?;
        session.info(&format!(
            "boot minimal: found prompt {:?}",
            found.matched.trim()
        ));
        for command in action
            .auto_login
            .iter()
            .flat_map(|login| login.login_commands.iter())
        {
            session.send_line(command)?;
            session
                .expect(&action.prompts, left(deadline))
                .map_err(|e| waiting_for(&format!("the prompt after {command:?}"), e))?;
        }
        Ok(())
    }
}

export_plugin! {
    name: "boot-minimal",
    drivers: [
        boot "minimal": "Resets the board and waits for the job's prompt, logging in if asked" => new_minimal_boot,
    ],
}
