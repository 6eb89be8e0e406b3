//! `basalt device-types list|show`.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::templates::DeviceTypeDirs;
use super::Format;
use crate::template::{extends_target, SearchPath, TemplateEngine, TemplateFile};

/// `basalt device-types ...`
#[derive(Subcommand, Debug)]
pub enum DeviceTypesCommand {
    /// List every device-type template with its file, parent and whether it compiles (exit
    /// status 1 if any does not); with --url or BASALT_URL, the device types a master has.
    List(ListArgs),
    /// Register a device type on a master (its template must be on the master's path).
    Add(AddArgs),
    /// Change a master's device type: description, health-check schedule.
    Update(UpdateArgs),
    /// Show one template: where it comes from, what it extends, what it overrides, and its
    /// source.
    Show(ShowArgs),
}

/// Flags of `basalt device-types list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Where the templates are.
    #[command(flatten)]
    pub dirs: DeviceTypeDirs,
    /// The master to ask instead of the local directories.
    #[command(flatten)]
    pub master: super::remote::MasterArgs,
}

/// Flags of `basalt device-types add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The device type (its template is `<name>.jinja2`).
    pub name: String,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// How often its health check runs.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// The master.
    #[command(flatten)]
    pub master: super::remote::MasterArgs,
}

/// A device type's health-check schedule (unset flags leave it as it is; a new type checks
/// every 24 hours).
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// A Good device's health check is due again after this many hours or jobs.
    #[arg(long, value_name = "N")]
    pub health_frequency: Option<u32>,
    /// What the frequency counts.
    #[arg(long, value_name = "hours|jobs")]
    pub health_denominator: Option<String>,
    /// Turn the type's health checks off (`true`) or on (`false`).
    #[arg(long, value_name = "true|false")]
    pub health_disabled: Option<bool>,
}

/// Flags of `basalt device-types update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The device type.
    pub name: String,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// How often its health check runs.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// The master.
    #[command(flatten)]
    pub master: super::remote::MasterArgs,
}

/// Flags of `basalt device-types show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The device type (`beaglebone-black`, or the file name).
    pub name: String,
    /// Where the templates are.
    #[command(flatten)]
    pub dirs: DeviceTypeDirs,
}

/// Runs a `device-types` command.
pub fn run(command: &DeviceTypesCommand) -> anyhow::Result<ExitCode> {
    match command {
        DeviceTypesCommand::List(args) if args.master.url.is_some() => {
            super::remote::device_types::list(args.format, &args.master)
        }
        DeviceTypesCommand::List(args) => list(args),
        DeviceTypesCommand::Add(args) => super::remote::device_types::add(args),
        DeviceTypesCommand::Update(args) => super::remote::device_types::update(args),
        DeviceTypesCommand::Show(args) => show(args),
    }
}

fn template_name(name: &str) -> String {
    if name.ends_with(".jinja2") {
        name.to_owned()
    } else {
        format!("{name}.jinja2")
    }
}

struct Entry {
    file: TemplateFile,
    parent: Option<String>,
    overrides: Vec<std::path::PathBuf>,
    problem: Option<String>,
}

fn entries(search: &SearchPath, engine: &TemplateEngine) -> Vec<Entry> {
    search
        .list()
        .into_iter()
        .map(|file| {
            let source = std::fs::read_to_string(&file.path).unwrap_or_default();
            let overrides = search
                .all_candidates(&file.name)
                .into_iter()
                .skip(1)
                .collect();
            Entry {
                parent: extends_target(&source),
                problem: engine.check(&file.name).err().map(|e| e.to_string()),
                overrides,
                file,
            }
        })
        .collect()
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let search = SearchPath::new(args.dirs.search_dirs());
    if search.dirs().is_empty() {
        bail!("no device-type directories: pass --device-types DIR or set BASALT_DEVICE_TYPES");
    }
    let engine = TemplateEngine::new(search.clone());
    let entries = entries(&search, &engine);
    match args.format {
        Format::Json => {
            let items: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "name": e.file.name.trim_end_matches(".jinja2"),
                        "file": e.file.path,
                        "extends": e.parent.as_deref().map(|p| p.trim_end_matches(".jinja2")),
                        "overrides": e.overrides,
                        "error": e.problem,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        Format::Text => {
            let width = entries
                .iter()
                .map(|e| e.file.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!("{:width$}  {:24}  FILE", "NAME", "EXTENDS");
            for e in &entries {
                let parent = e
                    .parent
                    .as_deref()
                    .unwrap_or("-")
                    .trim_end_matches(".jinja2");
                let mut line = format!(
                    "{:width$}  {parent:24}  {}",
                    e.file.name.trim_end_matches(".jinja2"),
                    e.file.path.display()
                );
                if !e.overrides.is_empty() {
                    line.push_str(&format!("  (overrides {})", e.overrides.len()));
                }
                println!("{line}");
            }
        }
    }
    let broken: Vec<&Entry> = entries.iter().filter(|e| e.problem.is_some()).collect();
    for e in &broken {
        eprintln!(
            "error: {}: {}",
            e.file.path.display(),
            e.problem.as_deref().unwrap_or_default()
        );
    }
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let search = SearchPath::new(args.dirs.search_dirs());
    let name = template_name(&args.name);
    let Some(file) = search.resolve(&name)? else {
        let first = search
            .dirs()
            .first()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "a directory given with --device-types".into());
        bail!(
            "device type {} has no template: drop {name} into {first}",
            args.name
        );
    };
    let engine = TemplateEngine::new(search.clone());
    println!("file: {}", file.path.display());
    let mut chain = vec![name.clone()];
    let mut current = std::fs::read_to_string(&file.path)?;
    while let Some(parent) = extends_target(&current) {
        if chain.contains(&parent) || chain.len() > 32 {
            break;
        }
        chain.push(parent.clone());
        current = match search.resolve(&parent) {
            Ok(Some(f)) => std::fs::read_to_string(&f.path).unwrap_or_default(),
            _ => String::new(),
        };
    }
    println!(
        "extends: {}",
        chain
            .iter()
            .map(|n| n.trim_end_matches(".jinja2"))
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    for shadowed in search.all_candidates(&name).into_iter().skip(1) {
        println!("overrides: {}", shadowed.display());
    }
    let context = json!({
        "scheduled_device_name": "example",
        "scheduled_device_type": name.trim_end_matches(".jinja2"),
    });
    let status = match engine.render(&name, &context) {
        Ok(rendered) => {
            let problems = crate::device::validate(&rendered.config);
            if problems.is_empty() {
                "renders on its own into a valid configuration".to_owned()
            } else {
                format!("renders, with {} validation problem(s)", problems.len())
            }
        }
        Err(e) => format!("does not render on its own: {e}"),
    };
    println!("status: {status}");
    println!("---");
    print!("{}", std::fs::read_to_string(&file.path)?);
    Ok(ExitCode::SUCCESS)
}
