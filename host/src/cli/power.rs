//! `basalt power on|off|reboot|state --device FILE`: one power operation on one device, with
//! the driver the device configuration selects. What a lab admin runs to check a PDU set-up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use basalt_plugin_api::Log;
use clap::{Args, ValueEnum};

use super::devices::load_device;
use super::templates::DeviceTypeDirs;
use super::PluginDirs;
use crate::device_drivers::power_driver;
use crate::joblog::LavaLogWriter;

/// The power operations.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerOperation {
    /// Switch on.
    On,
    /// Switch off.
    Off,
    /// Power-cycle.
    Reboot,
    /// Read the state back (drivers that cannot say `unknown`).
    State,
}

/// Flags of `basalt power`.
#[derive(Args, Debug)]
pub struct PowerArgs {
    /// What to do.
    #[arg(value_enum)]
    pub operation: PowerOperation,
    /// The device: a dictionary (`.jinja2`) or a rendered configuration (YAML or JSON), as
    /// `basalt devices render` prints it.
    #[arg(long, value_name = "FILE")]
    pub device: PathBuf,
    /// Where the device-type templates are (for a dictionary).
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Where to look for plugins.
    #[command(flatten)]
    pub plugins: PluginDirs,
}

/// Loads the device configuration, builds its power driver and runs the operation; the
/// driver's log goes to stderr in LAVA's log format.
pub fn run(args: &PowerArgs) -> anyhow::Result<ExitCode> {
    let device = load_device(&args.device, serde_json::json!({}), &args.device_types)?;
    let choice = power_driver(&device).with_context(|| args.device.display().to_string())?;
    let registry = args.plugins.load();
    for error in registry.errors() {
        eprintln!("warning: {error}");
    }
    let log = Log::new(LavaLogWriter::new(std::io::stderr()));
    let driver = registry.power(&choice.driver, &choice.config, log)?;
    let timeout = Duration::from_secs(args.timeout);
    match args.operation {
        PowerOperation::On => driver.on(timeout)?,
        PowerOperation::Off => driver.off(timeout)?,
        PowerOperation::Reboot => driver.reboot(timeout)?,
        PowerOperation::State => println!("{}", driver.state(timeout)?.name()),
    }
    Ok(ExitCode::SUCCESS)
}
