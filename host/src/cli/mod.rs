//! The command line: flag definitions and dispatch to one module per command group.
//!
//! Flags are parsed into plain data here; each command module turns them into actions. Exit
//! codes: 0 success, 1 the command failed (the message says why), 2 bad usage.

mod boot;
mod certs;
mod device_types;
mod devices;
mod jobs;
mod master;
mod plugins;
mod power;
mod remote;
mod run;
mod slave;
mod templates;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plugins::{plugin_search_path, PluginSearchPath, Registry, PLUGIN_PATH_ENV};

/// Basalt: a LAVA-compatible lab dispatcher.
#[derive(Parser, Debug)]
#[command(name = "basalt", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter when `BASALT_LOG` is unset: the daemons say what they do (start-up,
    /// connections, jobs starting and ending) at info; commands print only warnings.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Master(_) | Command::Slave(_) => "info",
            _ => "warn",
        }
    }

    /// Whether a closed standard output should end the command quietly, as it ends `ls` or
    /// ripgrep (`basalt jobs list | head`): true for the commands that print a report. The
    /// daemons and the commands that drive a board keep Rust's default (SIGPIPE ignored,
    /// EPIPE an error), because a peer closing a socket or a console must not kill them.
    pub fn dies_quietly_on_closed_pipe(&self) -> bool {
        !matches!(
            self.command,
            Command::Master(_)
                | Command::Slave(_)
                | Command::Run(_)
                | Command::Boot(_)
                | Command::Power(_)
        )
    }
}

/// The command groups.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inspect the loaded plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Switch a device's power with its power driver.
    Power(power::PowerArgs),
    /// Boot a device with a LAVA boot action and stop at its prompt.
    Boot(boot::BootArgs),
    /// Inspect the device-type templates.
    #[command(subcommand, name = "device-types")]
    DeviceTypes(device_types::DeviceTypesCommand),
    /// Render and check device dictionaries.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Validate and describe job definitions.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Run one job on one device, locally (what a slave runs for each job).
    Run(run::RunArgs),
    /// Run the master: database, scheduler, control and log sockets, HTTP API.
    Master(master::MasterArgs),
    /// Run a slave: connect to a master and run the jobs it sends.
    Slave(slave::SlaveArgs),
    /// Manage a master's workers.
    #[command(subcommand)]
    Workers(remote::workers::WorkersCommand),
    /// Manage a master's users and their API tokens.
    #[command(subcommand, alias = "users")]
    User(remote::users::UserCommand),
    /// CURVE certificates for an encrypted master-slave link.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// The master's template renderer, run as a child with bounded memory (reads a request
    /// on standard input).
    #[command(hide = true, name = "internal-render")]
    InternalRender,
}

/// What `basalt --version` prints: the version, and whether this build's libzmq can encrypt.
pub fn version_text() -> String {
    format!(
        "{} (libzmq {}, CURVE {})",
        env!("CARGO_PKG_VERSION"),
        crate::transport::curve::libzmq_version(),
        if crate::transport::curve::available() {
            "available"
        } else {
            "not available: --encrypt refuses to start"
        }
    )
}

/// Parses the process's arguments (with [`version_text`] as the version), exiting on bad
/// usage as clap does.
pub fn parse_args() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let version: &'static str = Box::leak(version_text().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `basalt plugins ...`
#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List every driver with its kind, name, version and file, then every library that could
    /// not be loaded (exit status 1 if there was any).
    List(plugins::ListArgs),
}

/// Where to look for plugins; shared by every command that loads them.
#[derive(Args, Debug, Clone, Default)]
pub struct PluginDirs {
    /// A directory of plugin libraries, searched before BASALT_PLUGIN_PATH and the built-in
    /// locations (may be repeated).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginDirs {
    /// The full search path: these directories, then `BASALT_PLUGIN_PATH`, then the
    /// locations next to the executable.
    pub fn search_path(&self) -> PluginSearchPath {
        let env_value = std::env::var(PLUGIN_PATH_ENV).ok();
        let exe = std::env::current_exe().ok();
        plugin_search_path(&self.plugin_dirs, env_value.as_deref(), exe.as_deref())
    }

    /// Loads every plugin on the search path.
    pub fn load(&self) -> Registry {
        Registry::load(&self.search_path())
    }

    /// Loads just enough of the search path to find these drivers.
    pub fn load_needed(&self, needed: &[(basalt_plugin_api::DriverKind, String)]) -> Registry {
        Registry::load_needed(&self.search_path(), needed)
    }
}

/// Output formats for listing commands.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    #[default]
    Text,
    /// JSON for tools.
    Json,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugins(PluginsCommand::List(args)) => plugins::list(&args),
        Command::Power(args) => power::run(&args),
        Command::Boot(args) => boot::run(&args),
        Command::DeviceTypes(command) => device_types::run(&command),
        Command::Devices(command) => devices::run(&command),
        Command::Jobs(command) => jobs::run(&command),
        Command::Run(args) => run::run(&args),
        Command::Master(args) => master::run(args),
        Command::Slave(args) => slave::run(args),
        Command::Workers(command) => remote::workers::run(&command),
        Command::User(command) => remote::users::run(&command),
        Command::Certs(command) => certs::run(&command),
        Command::InternalRender => Ok(crate::template::serve_isolated()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn plugin_dirs_repeat() {
        let cli = Cli::try_parse_from([
            "basalt",
            "plugins",
            "list",
            "--plugin-dir",
            "a",
            "--plugin-dir",
            "b",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Plugins(PluginsCommand::List(args)) = cli.command else {
            panic!("parsed the wrong command");
        };
        assert_eq!(
            args.plugins.plugin_dirs,
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        assert_eq!(args.format, Format::Json);
    }
}
