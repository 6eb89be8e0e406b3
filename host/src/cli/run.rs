//! `basalt run JOB --device DEVICE --output-dir DIR`: run one job locally, as a slave does for
//! every job it is given.
//!
//! Exit status: 0 the job completed; otherwise the job's error type: 10 InfrastructureError,
//! 11 JobError, 12 TestError, 13 Bug, 14 Configuration, 15 Canceled (and 1 when the job could
//! not even be read).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::devices::load_device;
use super::jobs::read_job;
use super::templates::DeviceTypeDirs;
use super::PluginDirs;
use basalt_plugin_api::DriverKind;

use crate::device_drivers::{connection_driver, power_driver};
use crate::dispatcher::{
    preflight, run_job, Cancel, DutEnvironment, Facilities, JobStatus, LocalFiles, RunRequest,
    ServerDirs,
};
use crate::failure::FailureClass;
use crate::job_processes;

/// How long the job's processes get after SIGTERM when a second signal forces the job out.
const FORCED_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Flags of `basalt run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The job definition (LAVA pipeline YAML).
    pub job: PathBuf,
    /// The device: a dictionary (`.jinja2`, rendered with the job's context) or a rendered
    /// configuration (`.yaml`).
    #[arg(long, value_name = "FILE")]
    pub device: PathBuf,
    /// Where the log (`output.yaml`), results and downloads go.
    #[arg(long, value_name = "DIR", required_unless_present = "validate")]
    pub output_dir: Option<PathBuf>,
    /// Only check, as the job's start would, everything that can be checked before the
    /// board is touched (device configuration, methods, plugins and their configuration,
    /// compressions and formats, this worker's TFTP/NFS roots and docker); print the
    /// pipeline and exit 0 exactly when the job would start, else the error type's status.
    #[arg(long)]
    pub validate: bool,
    /// Do not echo the log on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// The address boards reach this worker's TFTP and NFS servers at (`{SERVER_IP}` in
    /// bootloader commands).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub server_ip: String,
    /// This worker's TFTP server root: `tftp` and `nfs` deploys put the job's files in a
    /// per-job directory under it.
    #[arg(long, value_name = "DIR")]
    pub tftp_root: Option<PathBuf>,
    /// Where this worker's NFS server exports root filesystems from: `nfsrootfs` artifacts
    /// are extracted into a per-job directory under it.
    #[arg(long, value_name = "DIR")]
    pub nfs_root: Option<PathBuf>,
    /// A directory whose files the job may read as file:// URLs, plain paths or local git
    /// repositories (may be repeated). Without one, the job reads no file of this machine.
    #[arg(long = "local-file-dir", value_name = "DIR")]
    pub local_file_dirs: Vec<PathBuf>,
    /// The job's name in the TFTP and NFS directories (default: the output directory's name).
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// The worker's environment for test shells on the board: LAVA's `env.dut.yaml`
    /// (`overrides:` to export, `removes:` to unset).
    #[arg(long, value_name = "FILE")]
    pub env_dut: Option<PathBuf>,
    /// Where the device-type templates are.
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
    /// Where the plugins are.
    #[command(flatten)]
    pub plugins: PluginDirs,
}

/// The exit status for a job's error type.
pub fn exit_status(class: FailureClass) -> u8 {
    match class {
        FailureClass::Infrastructure => 10,
        FailureClass::Job => 11,
        FailureClass::Test => 12,
        FailureClass::Bug => 13,
        FailureClass::Configuration => 14,
        FailureClass::Canceled => 15,
    }
}

/// `--validate`: the checks a job's start makes, and nothing else. Prints the pipeline and
/// `valid`, or `invalid ERROR_TYPE: message`.
pub fn dry_run(
    job: &crate::job::JobDefinition,
    device: &serde_json::Value,
    registry: &crate::plugins::Registry,
    facilities: &Facilities,
) -> ExitCode {
    match preflight(
        job,
        device,
        registry,
        facilities,
        &basalt_plugin_api::Log::discard,
    ) {
        Ok(ready) => {
            print!("{}", crate::pipeline::describe(&ready.pipeline));
            println!("valid: the job would start");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("invalid {}: {}", failure.class.lava_name(), failure.message);
            ExitCode::from(exit_status(failure.class))
        }
    }
}

/// The drivers a job will use on a device: its power and console drivers and the job's boot
/// methods.
pub fn needed_drivers(
    job: &crate::job::JobDefinition,
    device: &serde_json::Value,
) -> Vec<(DriverKind, String)> {
    let mut needed = Vec::new();
    if let Ok(choice) = power_driver(device) {
        needed.push((DriverKind::Power, choice.driver));
    }
    if let Ok(choice) = connection_driver(device) {
        needed.push((DriverKind::Connection, choice.driver));
    }
    for action in &job.actions {
        if action.kind == crate::job::ActionKind::Boot {
            if let Some(method) = action.method() {
                needed.push((DriverKind::Boot, method.to_owned()));
            }
        }
    }
    needed
}

/// Runs the job and maps its outcome to the exit status.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    // Before any thread exists: the tag goes into this process's environment.
    let process_tag = job_processes::own_tag();
    if let Err(e) = job_processes::become_subreaper() {
        eprintln!("warning: cannot become a child subreaper ({e}): orphans go to init");
    }
    let cancel = Cancel::new();
    let forced_tag = process_tag.clone();
    cancel
        .on_signals(move || {
            // Forced: what the job started gets a short grace, not the usual one.
            for ended in job_processes::end(&forced_tag, FORCED_GRACE) {
                eprintln!("forced exit: ended {ended}");
            }
        })
        .context("cannot install signal handlers")?;
    let job_text = std::fs::read_to_string(&args.job)
        .with_context(|| format!("cannot read job {}", args.job.display()))?;
    let job = read_job(&args.job)?;
    let device = load_device(&args.device, job.context(), &args.device_types)?;
    let registry = args.plugins.load_needed(&needed_drivers(&job, &device));
    for error in registry.errors() {
        eprintln!("warning: {error}");
    }
    let Some(output_dir) = args.output_dir.clone().filter(|_| !args.validate) else {
        let facilities = Facilities::new(args.tftp_root.is_some(), args.nfs_root.is_some());
        return Ok(dry_run(&job, &device, &registry, &facilities));
    };
    let dut_env = match &args.env_dut {
        None => DutEnvironment::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            DutEnvironment::parse(&text)
                .with_context(|| format!("{} is not a usable env.dut.yaml", path.display()))?
        }
    };
    let job_id = args.job_id.clone().unwrap_or_else(|| {
        output_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("job-{}", std::process::id()))
    });
    crate::job::confine::file_name(&job_id)
        .with_context(|| "--job-id names the job's directory under the TFTP and NFS roots")?;
    let request = RunRequest {
        process_tag,
        dut_env,
        job,
        job_text,
        device,
        registry,
        output_dir: output_dir.clone(),
        echo_log: !args.quiet,
        cancel,
        server_ip: args.server_ip.clone(),
        local_files: LocalFiles::new(args.local_file_dirs.iter().cloned()),
        servers: ServerDirs {
            tftp_root: args.tftp_root.clone(),
            nfs_root: args.nfs_root.clone(),
            job_id,
        },
    };
    let outcome =
        run_job(&request).with_context(|| format!("cannot write to {}", output_dir.display()))?;
    if request.cancel.forced() {
        // The signal thread is ending the job's processes and exits 1 when done.
        loop {
            std::thread::park();
        }
    }
    match (outcome.status, &outcome.failure) {
        (JobStatus::Complete, _) => {
            println!("Complete");
            Ok(ExitCode::SUCCESS)
        }
        (status, Some(failure)) => {
            let class = if status == JobStatus::Canceled {
                FailureClass::Canceled
            } else {
                failure.class
            };
            println!(
                "{} {}: {}",
                status.name(),
                class.lava_name(),
                failure.message
            );
            Ok(ExitCode::from(exit_status(class)))
        }
        (status, None) => {
            println!("{}", status.name());
            Ok(ExitCode::from(exit_status(FailureClass::Bug)))
        }
    }
}
