//! `basalt jobs validate FILE...`: check job definitions before submitting them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::job::parse_job;

/// `basalt jobs ...`
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Validate job definitions; every problem is printed with its path and line (exit
    /// status 1 if any file is invalid).
    Validate(ValidateArgs),
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
    }
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
