//! `basalt devices add|list|show|maintenance|activate|dict get|set`, against a master.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::{field, print_table, MasterArgs};
use crate::cli::Format;

/// Flags of `basalt devices add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The device's hostname.
    pub name: String,
    /// Its device type (registered with `basalt device-types add`).
    #[arg(long = "type", value_name = "TYPE")]
    pub device_type: String,
    /// The worker whose slave drives it.
    #[arg(long)]
    pub worker: String,
    /// Its device dictionary (a `.jinja2` extending the type's template).
    #[arg(long = "dict", value_name = "FILE")]
    pub dictionary: PathBuf,
    /// Tags jobs can ask for (may be repeated).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags naming one device.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The device.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt devices list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt devices maintenance|activate`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The device.
    pub name: String,
    /// Why (kept in its history).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt devices update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The device.
    pub name: String,
    /// Attach it to this (known) worker.
    #[arg(long)]
    pub worker: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// `basalt devices update`.
pub fn update(args: &UpdateArgs) -> anyhow::Result<ExitCode> {
    if args.worker.is_none() && args.description.is_none() {
        anyhow::bail!("nothing to change: give --worker or --description");
    }
    let mut body = json!({});
    if let Some(worker) = &args.worker {
        body["worker"] = json!(worker);
    }
    if let Some(description) = &args.description {
        body["description"] = json!(description);
    }
    let device = args.master.client().send_json(
        "PATCH",
        &format!("/api/v1/devices/{}", args.name),
        &body,
    )?;
    println!(
        "device {}: worker {}, description {:?}",
        args.name,
        field(&device, "worker"),
        field(&device, "description")
    );
    Ok(ExitCode::SUCCESS)
}

/// `basalt devices delete`.
pub fn delete(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    args.master.client().delete(
        &format!("/api/v1/devices/{}", args.name),
        &[("reason", &args.reason)],
    )?;
    println!("device {} deleted", args.name);
    Ok(ExitCode::SUCCESS)
}

/// Flags of `basalt devices activate`.
#[derive(Args, Debug)]
pub struct ActivateArgs {
    /// The device, why, the master.
    #[command(flatten)]
    pub device: HealthArgs,
    /// Trust the device at once (health good) instead of running its type's health check
    /// first.
    #[arg(long)]
    pub skip_health_check: bool,
}

/// `basalt devices dict ...`
#[derive(Subcommand, Debug)]
pub enum DictCommand {
    /// Print a device's dictionary.
    Get(DictGetArgs),
    /// Replace a device's dictionary (checked to render first).
    Set(DictSetArgs),
}

/// `basalt devices tags ...`
#[derive(Subcommand, Debug)]
pub enum TagsCommand {
    /// Give a device a tag (jobs whose `tags:` name it may then run there).
    Add(TagArgs),
    /// Take a tag off a device.
    Delete(TagArgs),
}

/// Flags of `basalt devices tags add|delete`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The device.
    pub name: String,
    /// The tag.
    pub tag: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Runs a `basalt devices tags` command.
pub fn tags(command: &TagsCommand) -> anyhow::Result<ExitCode> {
    let (args, method) = match command {
        TagsCommand::Add(args) => (args, "PUT"),
        TagsCommand::Delete(args) => (args, "DELETE"),
    };
    let tags = args.master.client().send_text(
        method,
        &format!("/api/v1/devices/{}/tags/{}", args.name, args.tag),
        "",
    )?;
    let names: Vec<String> = tags
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    println!(
        "{}: tags {}",
        args.name,
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Flags of `basalt devices dict get`.
#[derive(Args, Debug)]
pub struct DictGetArgs {
    /// The device.
    pub name: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt devices dict set`.
#[derive(Args, Debug)]
pub struct DictSetArgs {
    /// The device.
    pub name: String,
    /// The new dictionary.
    pub file: PathBuf,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// `basalt devices add`.
pub fn add(args: &AddArgs) -> anyhow::Result<ExitCode> {
    let dictionary = std::fs::read_to_string(&args.dictionary)
        .with_context(|| format!("cannot read {}", args.dictionary.display()))?;
    args.master.client().post(
        "/api/v1/devices",
        &json!({
            "hostname": args.name,
            "device_type": args.device_type,
            "worker": args.worker,
            "dictionary": dictionary,
            "tags": args.tags,
            "description": args.description,
        }),
    )?;
    println!("device {} added", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `basalt devices list`.
pub fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let devices = args.master.client().get("/api/v1/devices")?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = devices
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            [
                "hostname",
                "device_type",
                "worker",
                "state",
                "health",
                "current_job",
                "power_state",
            ]
            .iter()
            .map(|f| field(d, f))
            .collect()
        })
        .collect();
    print_table(
        &[
            "HOSTNAME", "TYPE", "WORKER", "STATE", "HEALTH", "JOB", "POWER",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `basalt devices show`.
pub fn show(args: &NameArgs) -> anyhow::Result<ExitCode> {
    let device = args
        .master
        .client()
        .get(&format!("/api/v1/devices/{}", args.name))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&device)?);
        return Ok(ExitCode::SUCCESS);
    }
    for name in [
        "hostname",
        "device_type",
        "worker",
        "state",
        "health",
        "current_job",
        "tags",
        "description",
    ] {
        println!("{name:<12} {}", field(&device, name));
    }
    println!(
        "{:<12} {} (read back {})",
        "power",
        field(&device, "power_state"),
        super::date_field(&device, "power_checked")
    );
    if let Some(history) = device.get("history").and_then(|h| h.as_array()) {
        println!("history:");
        for entry in history.iter().rev().take(10) {
            println!(
                "  {} {} {} -> {} ({})",
                super::date_field(entry, "at"),
                field(entry, "field"),
                field(entry, "old"),
                field(entry, "new"),
                field(entry, "reason")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `basalt devices maintenance|activate`.
pub fn set_health(args: &HealthArgs, health: &str) -> anyhow::Result<ExitCode> {
    args.master.client().post(
        &format!("/api/v1/devices/{}/health", args.name),
        &json!({ "health": health, "reason": args.reason }),
    )?;
    println!("device {} is now {health}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `basalt devices dict get|set`.
pub fn dict(command: &DictCommand) -> anyhow::Result<ExitCode> {
    match command {
        DictCommand::Get(args) => {
            let text = args
                .master
                .client()
                .get_text(&format!("/api/v1/devices/{}/dictionary", args.name))?;
            print!("{text}");
        }
        DictCommand::Set(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            args.master.client().send_text(
                "PUT",
                &format!("/api/v1/devices/{}/dictionary", args.name),
                &text,
            )?;
            println!("dictionary of {} replaced", args.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
