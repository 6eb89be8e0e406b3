//! `basalt boot --device FILE --action FILE`: boot one board with one LAVA boot action and
//! stop at its prompt, using the device's power, connection and boot drivers. What an admin
//! runs to prove a new device dictionary before the first job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use basalt_plugin_api::Log;
use clap::Args;
use serde_json::Value;

use super::devices::load_device;
use super::templates::DeviceTypeDirs;
use super::PluginDirs;
use crate::console::{ConsoleBootHost, Expecter};
use crate::device_drivers::{connection_driver, power_driver};
use crate::joblog::LavaLogWriter;

/// Flags of `basalt boot`.
#[derive(Args, Debug)]
pub struct BootArgs {
    /// The device: a dictionary (`.jinja2`) or a rendered configuration (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    pub device: PathBuf,
    /// Where the device-type templates are (for a dictionary).
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
    /// A LAVA boot action (the mapping under `- boot:` in a job), YAML or JSON.
    #[arg(long, value_name = "FILE")]
    pub action: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Where to look for plugins.
    #[command(flatten)]
    pub plugins: PluginDirs,
}

/// Connects, boots, and closes the console; the job-style log goes to stderr.
pub fn run(args: &BootArgs) -> anyhow::Result<ExitCode> {
    let device = load_device(&args.device, serde_json::json!({}), &args.device_types)?;
    let text = std::fs::read_to_string(&args.action)
        .with_context(|| format!("cannot read boot action {}", args.action.display()))?;
    let action = crate::yaml11::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", args.action.display()))?;
    let Some(method) = action.get("method").and_then(Value::as_str) else {
        bail!("{}: the boot action has no method", args.action.display());
    };
    let Some(method_config) = device
        .pointer("/actions/boot/methods")
        .and_then(Value::as_object)
        .and_then(|methods| methods.get(method))
    else {
        bail!(
            "{}: boot method '{method}' is not in the device configuration's \
             actions.boot.methods; the device type does not support it",
            args.device.display()
        );
    };
    let registry = args.plugins.load();
    for error in registry.errors() {
        eprintln!("warning: {error}");
    }
    let log = || Log::new(LavaLogWriter::new(std::io::stderr()));
    let timeout = Duration::from_secs(args.timeout);

    let power = match power_driver(&device) {
        Ok(choice) => Some(registry.power(&choice.driver, &choice.config, log())?),
        Err(missing) => {
            eprintln!("warning: {missing}; booting without power control");
            None
        }
    };
    let connection =
        connection_driver(&device).with_context(|| args.device.display().to_string())?;
    let connection = registry.connection(&connection.driver, &connection.config, log())?;
    let boot = registry.boot(method, &method_config.to_string(), log())?;

    let console = connection.connect(timeout)?;
    let job_log = log();
    let mut expecter = Expecter::new(console, log());
    let outcome = {
        let mut host = ConsoleBootHost::new(&mut expecter, power.as_ref(), &job_log);
        boot.boot(&mut host, &action.to_string(), timeout)
    };
    expecter.close()?;
    outcome?;
    println!("boot: {method} reached the prompt");
    Ok(ExitCode::SUCCESS)
}
