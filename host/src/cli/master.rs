//! `basalt master`: flags and configuration file merged into a [`MasterConfig`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::templates::DeviceTypeDirs;
use crate::master::config::read_toml;
use crate::master::MasterConfig;

/// Flags of `basalt master`; each overrides the configuration file.
#[derive(Args, Debug)]
pub struct MasterArgs {
    /// A TOML configuration file (see contrib/master.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the database, job logs and admin token live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// The control socket's port (default 5556; 0: one the kernel picks, see --ready-file).
    #[arg(long, value_name = "PORT")]
    pub control_port: Option<u16>,
    /// The log socket's port (default 5555; 0: one the kernel picks).
    #[arg(long, value_name = "PORT")]
    pub log_port: Option<u16>,
    /// The HTTP API's port (default 8000; 0: one the kernel picks).
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The event stream's ZMQ PUB port (default 5500, LAVA's; 0: one the kernel picks).
    #[arg(long, value_name = "PORT")]
    pub event_port: Option<u16>,
    /// Seconds between slave pings (told to slaves in PONG).
    #[arg(long, value_name = "SECONDS")]
    pub ping_interval: Option<u64>,
    /// Seconds of silence after which a worker is offline.
    #[arg(long, value_name = "SECONDS")]
    pub offline_after: Option<u64>,
    /// Seconds between re-sends of unanswered START and CANCEL.
    #[arg(long, value_name = "SECONDS")]
    pub resend: Option<f64>,
    /// Seconds past its own job timeout after which the master ends a running job that its
    /// slave never reported (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub overdue_grace: Option<u64>,
    /// The most log one job may store, in MiB (default 256; 0: no limit): past it the job is
    /// canceled and ends Incomplete, saying why.
    #[arg(long, value_name = "MIB")]
    pub job_log_limit: Option<u64>,
    /// Encrypt and authenticate the control and log sockets with CURVE; only slaves whose
    /// public certificate is in --slaves-certs may connect.
    #[arg(long)]
    pub encrypt: bool,
    /// The master's secret certificate (NAME.key_secret, as `basalt certs generate` or LAVA's
    /// create_certificate.py write it).
    #[arg(long, value_name = "FILE")]
    pub master_cert: Option<PathBuf>,
    /// The directory of allowed slaves' public certificates: WORKER.key speaks for WORKER
    /// only. Files added or removed take effect without a restart.
    #[arg(long, value_name = "DIR")]
    pub slaves_certs: Option<PathBuf>,
    /// Refuse slaves whose worker was not added first (`basalt workers add`), instead of
    /// creating a worker at their HELLO.
    #[arg(long)]
    pub no_register_workers: bool,
    /// Start a new, empty database in a data directory that has a master's data (job logs,
    /// the admin token) but no usable `basalt.db`; without it the master refuses to start
    /// there, rather than silently forget every job, worker and device.
    #[arg(long)]
    pub init: bool,
    /// Write FILE once every socket is bound and the master serves: JSON with its process
    /// id and its control, log and HTTP ports (replaced atomically at each start).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Device-type template directories.
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
}

/// Runs the master.
pub fn run(args: MasterArgs) -> anyhow::Result<ExitCode> {
    let mut config: MasterConfig = match &args.config {
        Some(path) => read_toml(path)?,
        None => MasterConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(port) = args.control_port {
        config.control_port = port;
    }
    if let Some(port) = args.log_port {
        config.log_port = port;
    }
    if let Some(port) = args.http_port {
        config.http_port = port;
    }
    if let Some(port) = args.event_port {
        config.event_port = port;
    }
    if let Some(secs) = args.ping_interval {
        config.timing.ping_interval_secs = secs;
    }
    if let Some(secs) = args.offline_after {
        config.timing.offline_after_secs = secs;
    }
    if let Some(secs) = args.overdue_grace {
        config.timing.overdue_grace_secs = secs;
    }
    if let Some(secs) = args.resend {
        config.timing.resend_secs = secs;
    }
    if let Some(limit) = args.job_log_limit {
        config.job_log_limit_mib = limit;
    }
    config.encrypt |= args.encrypt;
    if let Some(path) = args.master_cert {
        config.master_cert = path;
    }
    if let Some(dir) = args.slaves_certs {
        config.slaves_certs = dir;
    }
    if args.no_register_workers {
        config.register_workers = false;
    }
    config.init = args.init;
    config.ready_file = args.ready_file;
    config
        .resolve_paths()
        .context("cannot resolve the master's paths against the current directory")?;
    let dirs = crate::master::template_dirs(&config, &args.device_types.search_dirs());
    crate::master::run(config, dirs)?;
    Ok(ExitCode::SUCCESS)
}
