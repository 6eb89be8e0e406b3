//! `basalt workers add|list|show|maintenance|activate`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{field, print_table, MasterArgs};
use crate::cli::Format;

/// `basalt workers ...`
#[derive(Subcommand, Debug)]
pub enum WorkersCommand {
    /// Register a worker (its slave may then connect with this name).
    Add(AddArgs),
    /// List workers with their online state and health.
    List(ListArgs),
    /// Show one worker, its devices and its history.
    Show(ShowArgs),
    /// Stop giving the worker new jobs (running ones finish).
    Maintenance(HealthArgs),
    /// Give the worker jobs again.
    Activate(HealthArgs),
}

/// Flags of `basalt workers add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The worker's name (what its slave presents: `--name`, default its host name).
    pub name: String,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// How many jobs it may run at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub job_limit: u32,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt workers list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt workers show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The worker.
    pub name: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt workers maintenance|activate`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The worker.
    pub name: String,
    /// Why (kept in its history).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Runs a `basalt workers` command.
pub fn run(command: &WorkersCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkersCommand::Add(args) => {
            let body = json!({ "hostname": args.name, "description": args.description, "job_limit": args.job_limit });
            args.master.client().post("/api/v1/workers", &body)?;
            println!("worker {} added", args.name);
        }
        WorkersCommand::List(args) => {
            let workers = args.master.client().get("/api/v1/workers")?;
            if args.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&workers)?);
            } else {
                let rows: Vec<Vec<String>> = workers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|w| {
                        ["hostname", "state", "health", "version"]
                            .iter()
                            .map(|f| field(w, f))
                            .collect()
                    })
                    .collect();
                print_table(&["HOSTNAME", "STATE", "HEALTH", "VERSION"], &rows);
            }
        }
        WorkersCommand::Show(args) => {
            let worker = args
                .master
                .client()
                .get(&format!("/api/v1/workers/{}", args.name))?;
            println!("{}", serde_json::to_string_pretty(&worker)?);
        }
        WorkersCommand::Maintenance(args) | WorkersCommand::Activate(args) => {
            let health = match command {
                WorkersCommand::Maintenance(_) => "maintenance",
                _ => "active",
            };
            args.master.client().post(
                &format!("/api/v1/workers/{}/health", args.name),
                &json!({ "health": health, "reason": args.reason }),
            )?;
            println!("worker {} is now {health}", args.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
