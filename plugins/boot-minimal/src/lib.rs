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

use basalt_plugin_api::login::{log_in, LoginParameters};
use basalt_plugin_api::{export_plugin, parse_config, BootDriver, BootSession, Log, PluginError};

/// The `reset` key of a LAVA boot action; the login keys are read by
/// [`LoginParameters`].
#[derive(serde::Deserialize, Debug, Clone)]
pub struct ResetParameter {
    /// Power-cycle first.
    #[serde(default = "yes")]
    pub reset: bool,
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

impl BootDriver for MinimalBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let login = LoginParameters::from_action("boot minimal", action)?;
        let reset: ResetParameter = parse_config("boot minimal", action)
            .map_err(|e| PluginError::job(e.message().to_owned()))?;
        if reset.reset {
            basalt_plugin_api::bootloader::power_reset("boot minimal", session, deadline)?;
        }
        log_in("boot minimal", session, &login, deadline)
    }
}

export_plugin! {
    name: "boot-minimal",
    drivers: [
        boot "minimal": "Resets the board and waits for the job's prompt, logging in if asked" => new_minimal_boot,
    ],
}
