//! `basalt workers add|list|show|maintenance|activate|update|retire|config|env|env-dut`.

use std::process::ExitCode;

use anyhow::Context;
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
    Show(WorkerShowArgs),
    /// Stop giving the worker new jobs (running ones finish).
    Maintenance(HealthArgs),
    /// Give the worker jobs again.
    Activate(HealthArgs),
    /// Change the worker's description or job limit.
    Update(UpdateArgs),
    /// Retire the worker: its devices take no more jobs; it stays on record.
    Retire(HealthArgs),
    /// Get or set the worker's dispatcher.yaml (dispatcher_ip, ...), kept on the master.
    #[command(subcommand)]
    Config(FileCommand),
    /// Get or set the environment of the worker's job processes (env.yaml).
    #[command(subcommand)]
    Env(FileCommand),
    /// Get or set the environment of its boards' test shells (env.dut.yaml).
    #[command(subcommand, name = "env-dut")]
    EnvDut(FileCommand),
}

/// `basalt workers config|env|env-dut get|set`.
#[derive(Subcommand, Debug)]
pub enum FileCommand {
    /// Print the file the worker's jobs get (its own, else the master-wide one).
    Get(ShowArgs),
    /// Replace the worker's own file (an empty file removes it).
    Set(SetFileArgs),
}

/// Flags of `basalt workers config|env|env-dut set`.
#[derive(Args, Debug)]
pub struct SetFileArgs {
    /// The worker.
    pub name: String,
    /// The YAML file.
    pub file: std::path::PathBuf,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
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

/// Flags of `basalt workers update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The worker.
    pub name: String,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// How many jobs it may run at once (0: no limit).
    #[arg(long)]
    pub job_limit: Option<u32>,
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

/// Flags of `basalt workers show`.
#[derive(Args, Debug)]
pub struct WorkerShowArgs {
    /// The worker.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::cli::Format::Text)]
    pub format: crate::cli::Format,
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

fn file(kind: &str, command: &FileCommand) -> anyhow::Result<()> {
    match command {
        FileCommand::Get(args) => {
            let text = args
                .master
                .client()
                .get_text(&format!("/api/v1/workers/{}/files/{kind}", args.name))?;
            print!("{text}");
        }
        FileCommand::Set(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            args.master.client().send_text(
                "PUT",
                &format!("/api/v1/workers/{}/files/{kind}", args.name),
                &text,
            )?;
            println!("worker {}: {kind} set", args.name);
        }
    }
    Ok(())
}

/// Runs a `basalt workers` command.
pub fn run(command: &WorkersCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkersCommand::Config(command) => file("config", command)?,
        WorkersCommand::Env(command) => file("env", command)?,
        WorkersCommand::EnvDut(command) => file("env-dut", command)?,
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
            if args.format == crate::cli::Format::Json {
                println!("{}", serde_json::to_string_pretty(&worker)?);
            } else {
                print_worker(&worker);
            }
        }
        WorkersCommand::Update(args) => {
            if args.description.is_none() && args.job_limit.is_none() {
                anyhow::bail!("nothing to change: give --description or --job-limit");
            }
            let mut body = json!({});
            if let Some(description) = &args.description {
                body["description"] = json!(description);
            }
            if let Some(limit) = args.job_limit {
                body["job_limit"] = json!(limit);
            }
            let worker = args.master.client().send_json(
                "PATCH",
                &format!("/api/v1/workers/{}", args.name),
                &body,
            )?;
            println!(
                "worker {}: job limit {}, description {:?}",
                args.name,
                field(&worker, "job_limit"),
                field(&worker, "description")
            );
        }
        WorkersCommand::Maintenance(args)
        | WorkersCommand::Activate(args)
        | WorkersCommand::Retire(args) => {
            let health = match command {
                WorkersCommand::Maintenance(_) => "maintenance",
                WorkersCommand::Retire(_) => "retired",
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

/// `workers show` for people: the worker, its devices, its latest history, dates in UTC.
fn print_worker(worker: &serde_json::Value) {
    use super::{date_field, field};
    for name in [
        "hostname",
        "state",
        "health",
        "version",
        "job_limit",
        "description",
    ] {
        println!("{name:<12} {}", field(worker, name));
    }
    println!("{:<12} {}", "last_seen", date_field(worker, "last_seen"));
    let devices: Vec<String> = worker["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
        .collect();
    println!(
        "{:<12} {}",
        "devices",
        if devices.is_empty() {
            "-".to_owned()
        } else {
            devices.join(", ")
        }
    );
    if let Some(history) = worker.get("history").and_then(|h| h.as_array()) {
        println!("history:");
        for entry in history.iter().rev().take(10) {
            println!(
                "  {} {} {} -> {} ({})",
                date_field(entry, "at"),
                field(entry, "field"),
                field(entry, "old"),
                field(entry, "new"),
                field(entry, "reason")
            );
        }
    }
}
