//! `basalt jobs validate FILE...`: check job definitions before submitting them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::devices::load_device;
use super::templates::DeviceTypeDirs;
use crate::job::{parse_job, JobDefinition};
use crate::pipeline::describe;

/// `basalt jobs ...`
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Validate job definitions; every problem is printed with its path and line (exit
    /// status 1 if any file is invalid).
    Validate(ValidateArgs),
    /// Print the pipeline a job would run on a device: every action with its timeout.
    Describe(DescribeArgs),
    /// Submit a job to a master.
    Submit(super::remote::jobs::SubmitArgs),
    /// List a master's jobs, newest first.
    List(super::remote::jobs::ListArgs),
    /// Show one job.
    Show(super::remote::jobs::JobArgs),
    /// Cancel a job.
    Cancel(super::remote::jobs::JobArgs),
    /// Submit a job's definition again (pinned to the same device if it was); prints the new id.
    Resubmit(super::remote::jobs::JobArgs),
    /// Print a job's log.
    Logs(super::remote::jobs::LogsArgs),
    /// Print a job's test results.
    Results(super::remote::jobs::JobArgs),
    /// Wait until a job has finished; exit status 0 if it completed, 1 if not, 2 if the
    /// timeout passed first. A master that is briefly unreachable is waited for too.
    Wait(super::remote::jobs::WaitArgs),
}

/// Flags of `basalt jobs describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The job definition.
    pub job: PathBuf,
    /// The device: a dictionary (`.jinja2`) or a rendered configuration (`.yaml`).
    #[arg(long, value_name = "FILE")]
    pub device: PathBuf,
    /// Where the device-type templates are.
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
    /// Where the plugins are.
    #[command(flatten)]
    pub plugins: super::PluginDirs,
}

/// Flags of `basalt jobs validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Job definition files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs a `jobs` command.
pub fn run(command: &JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::Validate(args) => validate(args),
        JobsCommand::Describe(args) => describe_job(args),
        JobsCommand::Submit(args) => super::remote::jobs::submit(args),
        JobsCommand::List(args) => super::remote::jobs::list(args),
        JobsCommand::Show(args) => super::remote::jobs::show(args),
        JobsCommand::Cancel(args) => super::remote::jobs::cancel(args),
        JobsCommand::Resubmit(args) => super::remote::jobs::resubmit(args),
        JobsCommand::Logs(args) => super::remote::jobs::logs(args),
        JobsCommand::Results(args) => super::remote::jobs::results(args),
        JobsCommand::Wait(args) => super::remote::jobs::wait(args),
    }
}

/// Reads and validates a job file.
pub fn read_job(path: &std::path::Path) -> anyhow::Result<JobDefinition> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job {}", path.display()))?;
    let parsed =
        parse_job(&text).with_context(|| format!("{} is not a valid job", path.display()))?;
    Ok(JobDefinition::from_value(parsed.value))
}

/// The pipeline a job would run on a device, after the checks `basalt run` makes of the job
/// and the device (the worker's TFTP/NFS roots are assumed; `basalt run --validate` checks
/// them too).
fn describe_job(args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    let job = read_job(&args.job)?;
    let device = load_device(&args.device, job.context(), &args.device_types)?;
    let registry = args
        .plugins
        .load_needed(&super::run::needed_drivers(&job, &device));
    let facilities = crate::dispatcher::Facilities::new(true, true);
    let ready = crate::dispatcher::preflight(
        &job,
        &device,
        &registry,
        &facilities,
        &basalt_plugin_api::Log::discard,
    )
    .map_err(|failure| {
        anyhow::anyhow!(
            "{} cannot run on {}: {}: {}",
            args.job.display(),
            args.device.display(),
            failure.class.lava_name(),
            failure.message
        )
    })?;
    print!("{}", describe(&ready.pipeline));
    Ok(ExitCode::SUCCESS)
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut invalid = 0;
    for file in &args.files {
        let result = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|text| parse_job(&text).map_err(|e| e.to_string()));
        match result {
            Ok(_) => println!("{}: valid", file.display()),
            Err(error) => {
                invalid += 1;
                println!("{}: invalid: {error}", file.display());
            }
        }
    }
    if invalid > 0 {
        eprintln!(
            "{invalid} of {} job definition(s) invalid",
            args.files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
