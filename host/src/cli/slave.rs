//! `basalt slave`: flags and configuration file merged into a [`SlaveConfig`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::master::config::read_toml;
use crate::slave::SlaveConfig;

/// Flags of `basalt slave`; each overrides the configuration file.
#[derive(Args, Debug)]
pub struct SlaveArgs {
    /// A TOML configuration file (see contrib/slave.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The master's host name or address.
    #[arg(long, value_name = "HOST")]
    pub master: Option<String>,
    /// This worker's name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where job files, logs and records live (keep it across restarts).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The master's control port (default 5556).
    #[arg(long, value_name = "PORT")]
    pub control_port: Option<u16>,
    /// The master's log port (default 5555; used only with a LAVA master).
    #[arg(long, value_name = "PORT")]
    pub log_port: Option<u16>,
    /// Seconds a canceled job gets between SIGTERM and SIGKILL (default 120).
    #[arg(long, value_name = "SECONDS")]
    pub cancel_grace: Option<f64>,
    /// Seconds between re-sends of END and of unacknowledged log bytes.
    #[arg(long, value_name = "SECONDS")]
    pub resend: Option<f64>,
    /// Keep finished jobs' directories under STATE_DIR/finished/ for inspection.
    #[arg(long)]
    pub keep_finished: bool,
    /// Encrypt the link with CURVE (the master must run with --encrypt and hold this slave's
    /// public certificate).
    #[arg(long)]
    pub encrypt: bool,
    /// The master's public certificate (NAME.key).
    #[arg(long, value_name = "FILE")]
    pub master_cert: Option<PathBuf>,
    /// This slave's secret certificate (NAME.key_secret).
    #[arg(long, value_name = "FILE")]
    pub slave_cert: Option<PathBuf>,
    /// A plugin directory for job processes (may be repeated).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// A directory whose files jobs may read as file:// URLs or local git repositories (may
    /// be repeated; nothing else on the worker is readable to a job).
    #[arg(long = "local-file-dir", value_name = "DIR")]
    pub local_file_dirs: Vec<PathBuf>,
}

/// Runs the slave.
pub fn run(args: SlaveArgs) -> anyhow::Result<ExitCode> {
    let mut config: SlaveConfig = match &args.config {
        Some(path) => read_toml(path)?,
        None => SlaveConfig::default(),
    };
    if let Some(master) = args.master {
        config.master = master;
    }
    if args.name.is_some() {
        config.name = args.name;
    }
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    if let Some(port) = args.control_port {
        config.control_port = port;
    }
    if let Some(port) = args.log_port {
        config.log_port = port;
    }
    if let Some(secs) = args.cancel_grace {
        config.timing.cancel_grace_secs = secs;
    }
    if let Some(secs) = args.resend {
        config.timing.end_resend_secs = secs;
        config.timing.logs_retry_secs = secs;
        config.timing.hello_retry_secs = secs;
    }
    config.keep_finished |= args.keep_finished;
    config.encrypt |= args.encrypt;
    if let Some(path) = args.master_cert {
        config.master_cert = path;
    }
    if let Some(path) = args.slave_cert {
        config.slave_cert = path;
    }
    config.run.plugin_dirs.extend(args.plugin_dirs);
    config.run.local_file_dirs.extend(args.local_file_dirs);
    config
        .resolve_paths()
        .context("cannot resolve the slave's paths against the current directory")?;
    crate::slave::run(config)?;
    Ok(ExitCode::SUCCESS)
}
