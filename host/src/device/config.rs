//! Typed device configuration, in LAVA's shape.

use basalt_plugin_api::OneOrMany;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A rendered device configuration (what the master sends a slave with each job).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DeviceConfig {
    /// The device's name (`scheduled_device_name`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The device type's name (`scheduled_device_type`).
    #[serde(default)]
    pub devicetype: Option<String>,
    /// Prompts, interrupt strings and error patterns per bootloader, and shell settings.
    #[serde(default)]
    pub constants: Map<String, Value>,
    /// How to power and reach the board.
    #[serde(default)]
    pub commands: Option<Commands>,
    /// The deploy, boot and test methods the device supports.
    pub actions: Actions,
    /// Default timeouts per action and per connection.
    pub timeouts: Timeouts,
    /// Board parameters: interfaces, media, load addresses.
    #[serde(default)]
    pub parameters: Value,
    /// Per-character delays (milliseconds) when typing into the console.
    #[serde(default)]
    pub character_delays: Option<Map<String, Value>>,
    /// Everything else the template rendered (`device_info`, `flash_cmds_order`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `commands` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct Commands {
    /// The console command, when the board has one console.
    #[serde(default)]
    pub connect: Option<String>,
    /// Named consoles, when it has several.
    #[serde(default)]
    pub connections: Option<Map<String, Value>>,
    /// Power-cycle.
    #[serde(default)]
    pub hard_reset: Option<OneOrMany>,
    /// Switch on.
    #[serde(default)]
    pub power_on: Option<OneOrMany>,
    /// Switch off.
    #[serde(default)]
    pub power_off: Option<OneOrMany>,
    /// Reboot without cutting power.
    #[serde(default)]
    pub soft_reboot: Option<OneOrMany>,
    /// Run before any power command.
    #[serde(default)]
    pub pre_power_command: Option<OneOrMany>,
    /// Run before booting the OS.
    #[serde(default)]
    pub pre_os_command: Option<OneOrMany>,
    /// Commands a job may run by name (`do`, and `undo` at the end of the job).
    #[serde(default)]
    pub users: Option<Map<String, Value>>,
    /// Every other command (`recovery_mode`, `must_use_connection`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `commands.connections`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionEntry {
    /// The console command.
    pub connect: String,
    /// `primary`, `ssh`, `telnet`, ...
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One entry of `commands.users`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UserCommand {
    /// Run when the job asks.
    #[serde(rename = "do")]
    pub run: OneOrMany,
    /// Run at the end of the job.
    #[serde(default)]
    pub undo: Option<OneOrMany>,
}

/// The `actions` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Actions {
    /// Deploy methods.
    pub deploy: ActionSection,
    /// Boot methods.
    pub boot: ActionSection,
    /// Test methods (docker, for some devices).
    #[serde(default)]
    pub test: Option<Value>,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `actions.deploy` or `actions.boot`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ActionSection {
    /// Method name → its parameters (often null).
    pub methods: Map<String, Value>,
    /// Connection kinds the method can use (`serial`, `ssh`).
    #[serde(default)]
    pub connections: Option<Value>,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `timeouts` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct Timeouts {
    /// Action name → timeout.
    #[serde(default)]
    pub actions: Map<String, Value>,
    /// Connection name → timeout.
    #[serde(default)]
    pub connections: Map<String, Value>,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A LAVA timeout: `{days|hours|minutes|seconds: N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Days.
    #[serde(default)]
    pub days: u64,
    /// Hours.
    #[serde(default)]
    pub hours: u64,
    /// Minutes.
    #[serde(default)]
    pub minutes: u64,
    /// Seconds.
    #[serde(default)]
    pub seconds: u64,
}

impl Timeout {
    /// The timeout as a duration.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.seconds + 60 * (self.minutes + 60 * (self.hours + 24 * self.days)),
        )
    }
}

impl DeviceConfig {
    /// Reads a configuration that [`validate`](super::validate) accepted.
    pub fn from_value(value: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(value)
    }

    /// A timeout from `timeouts.actions.<name>`, if set.
    pub fn action_timeout(&self, name: &str) -> Option<Timeout> {
        serde_json::from_value(self.timeouts.actions.get(name)?.clone()).ok()
    }

    /// The names of the boot methods, in template order.
    pub fn boot_methods(&self) -> impl Iterator<Item = &str> {
        self.actions.boot.methods.keys().map(String::as_str)
    }
}
