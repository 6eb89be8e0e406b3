//! `basalt devices render|check`: a device dictionary, rendered and proven.
//!
//! The seed asks admins for "a completed and tested device dictionary" for each board; `check`
//! is that test: it renders the dictionary, validates the configuration, checks that every
//! driver it names is loaded and accepts its settings, and with `--live` asks the power
//! driver for the board's state and opens its console.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use basalt_plugin_api::{DriverKind, Log};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::templates::DeviceTypeDirs;
use super::PluginDirs;
use crate::device::{validate, Severity};
use crate::device_drivers::{connection_driver, power_driver, DriverChoice, SelectionError};
use crate::joblog::LavaLogWriter;
use crate::plugins::{DriverError, Registry};
use crate::template::{extends_target, Rendered, SearchPath, TemplateEngine};

/// `basalt devices ...`
#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// Render a device dictionary into the device configuration a job would get.
    Render(RenderArgs),
    /// Render, validate and check the drivers of a device dictionary (exit status 1 on
    /// any error).
    Check(CheckArgs),
    /// Add a device to a master (its dictionary is checked to render first).
    Add(super::remote::devices::AddArgs),
    /// List a master's devices with their state and health.
    List(super::remote::devices::ListArgs),
    /// Show one of a master's devices with its history.
    Show(super::remote::devices::NameArgs),
    /// Take a device out of service (running jobs finish; no new ones).
    Maintenance(super::remote::devices::HealthArgs),
    /// Put a device back into service: health unknown, so its type's health check runs before
    /// any other job (types without one take jobs at once); `--skip-health-check`: good.
    Activate(super::remote::devices::ActivateArgs),
    /// Move a device to another worker or change its description.
    Update(super::remote::devices::UpdateArgs),
    /// Retire a device: it takes no more jobs and stays on record with its history.
    Retire(super::remote::devices::HealthArgs),
    /// Delete a device for good (refused while it holds a job or jobs wait for it by name;
    /// its past jobs keep its name).
    Delete(super::remote::devices::HealthArgs),
    /// Get or set a device's dictionary on a master.
    #[command(subcommand)]
    Dict(super::remote::devices::DictCommand),
    /// Add or delete a device's tags on a master.
    #[command(subcommand)]
    Tags(super::remote::devices::TagsCommand),
}

/// Output formats of `devices render`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderFormat {
    /// The rendered YAML text, as sent to the slave.
    Yaml,
    /// The parsed configuration, for tools.
    Json,
}

/// The dictionary and how to render it; shared by `render` and `check`.
#[derive(Args, Debug)]
pub struct DictionaryArgs {
    /// The device dictionary (`<hostname>.jinja2`).
    pub dictionary: PathBuf,
    /// A job context (YAML mapping), or a whole job whose `context:` is used.
    #[arg(long, value_name = "FILE")]
    pub context: Option<PathBuf>,
    /// The device's name (default: the dictionary's file name without `.jinja2`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Where the device-type templates are.
    #[command(flatten)]
    pub device_types: DeviceTypeDirs,
}

/// Flags of `basalt devices render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// What to render.
    #[command(flatten)]
    pub dictionary: DictionaryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub format: RenderFormat,
}

/// Flags of `basalt devices check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// What to check.
    #[command(flatten)]
    pub dictionary: DictionaryArgs,
    /// Also ask the power driver for the board's state and open its console briefly.
    #[arg(long)]
    pub live: bool,
    /// How long each live operation may take, in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub timeout: u64,
    /// Where the plugins are.
    #[command(flatten)]
    pub plugins: PluginDirs,
}

/// Runs a `devices` command.
pub fn run(command: &DevicesCommand) -> anyhow::Result<ExitCode> {
    match command {
        DevicesCommand::Add(args) => super::remote::devices::add(args),
        DevicesCommand::List(args) => super::remote::devices::list(args),
        DevicesCommand::Show(args) => super::remote::devices::show(args),
        DevicesCommand::Maintenance(args) => {
            super::remote::devices::set_health(args, "maintenance")
        }
        DevicesCommand::Activate(args) => {
            let health = if args.skip_health_check {
                "good"
            } else {
                "unknown"
            };
            super::remote::devices::set_health(&args.device, health)
        }
        DevicesCommand::Update(args) => super::remote::devices::update(args),
        DevicesCommand::Retire(args) => super::remote::devices::set_health(args, "retired"),
        DevicesCommand::Delete(args) => super::remote::devices::delete(args),
        DevicesCommand::Dict(command) => super::remote::devices::dict(command),
        DevicesCommand::Tags(command) => super::remote::devices::tags(command),
        DevicesCommand::Render(args) => render(args),
        DevicesCommand::Check(args) => check(args),
    }
}

fn read_context(path: Option<&Path>) -> anyhow::Result<Value> {
    let Some(path) = path else {
        return Ok(json!({}));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job context {}", path.display()))?;
    let value = crate::yaml11::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    let context = match value.get("context") {
        Some(inner) if value.get("actions").is_some() => inner.clone(),
        _ => value,
    };
    match context {
        Value::Object(_) => Ok(context),
        Value::Null => Ok(json!({})),
        _ => bail!("{}: the job context must be a mapping", path.display()),
    }
}

impl DictionaryArgs {
    /// Renders the dictionary; the error says which file and line failed.
    fn render(&self) -> anyhow::Result<Rendered> {
        let context = read_context(self.context.as_deref())?;
        render_dictionary(
            &self.dictionary,
            context,
            self.hostname.clone(),
            &self.device_types,
        )
    }
}

/// Renders a device dictionary file with a job context, as the master does for each job:
/// the dictionary's directory is searched first, then the device-type directories.
pub fn render_dictionary(
    path: &Path,
    context: Value,
    hostname: Option<String>,
    device_types: &DeviceTypeDirs,
) -> anyhow::Result<Rendered> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read device dictionary {}", path.display()))?;
    let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
        bail!("{}: not a file name", path.display());
    };
    let Some(parent) = extends_target(&source) else {
        bail!(
            "{}: a device dictionary must start with {{% extends '<device-type>.jinja2' %}}",
            path.display()
        );
    };
    let dict_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut dirs = vec![dict_dir];
    let type_dirs = device_types.search_dirs();
    if type_dirs.is_empty() {
        bail!("no device-type directories: pass --device-types DIR or set BASALT_DEVICE_TYPES");
    }
    dirs.extend(type_dirs.iter().cloned());
    let search = SearchPath::new(dirs);
    if search.resolve(&parent)?.is_none() {
        bail!(
            "{}: device type {} has no template: drop {parent} into {}",
            path.display(),
            parent.trim_end_matches(".jinja2"),
            type_dirs[0].display()
        );
    }
    let hostname = hostname.unwrap_or_else(|| file.trim_end_matches(".jinja2").to_owned());
    let source =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let engine = TemplateEngine::new(search);
    crate::device::render_device(
        &engine,
        file,
        &source,
        crate::device::DeviceName {
            hostname: &hostname,
            device_type: parent.trim_end_matches(".jinja2"),
        },
        &context,
    )
    .with_context(|| format!("cannot render {}", path.display()))
}

/// Loads a device for a job: a dictionary (`.jinja2`, rendered with the job's context) or an
/// already rendered configuration (YAML or JSON).
pub fn load_device(
    path: &Path,
    job_context: Value,
    device_types: &DeviceTypeDirs,
) -> anyhow::Result<Value> {
    if path.extension().is_some_and(|e| e == "jinja2") {
        return Ok(render_dictionary(path, job_context, None, device_types)?.config);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read device configuration {}", path.display()))?;
    crate::yaml11::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let rendered = args.dictionary.render()?;
    match args.format {
        RenderFormat::Yaml => print!("{}", rendered.text),
        RenderFormat::Json => println!("{}", serde_json::to_string_pretty(&rendered.config)?),
    }
    for problem in validate(&rendered.config) {
        eprintln!("{problem}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Counts what `check` found.
#[derive(Default)]
struct Findings {
    errors: usize,
    warnings: usize,
}

impl Findings {
    fn error(&mut self, what: &str, message: impl std::fmt::Display) {
        self.errors += 1;
        println!("error: {what}: {message}");
    }

    fn warning(&mut self, what: &str, message: impl std::fmt::Display) {
        self.warnings += 1;
        println!("warning: {what}: {message}");
    }

    fn ok(&self, what: &str, message: impl std::fmt::Display) {
        println!("ok: {what}: {message}");
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let name = args.dictionary.dictionary.display().to_string();
    let mut found = Findings::default();
    let rendered = match args.dictionary.render() {
        Ok(rendered) => rendered,
        Err(error) => {
            found.error("render", format!("{error:#}"));
            println!("{name}: 1 error");
            return Ok(ExitCode::FAILURE);
        }
    };
    found.ok("render", "the dictionary renders into valid YAML");
    let config = &rendered.config;
    for problem in validate(config) {
        match problem.severity {
            Severity::Error => found.error(&problem.path, &problem.message),
            Severity::Warning => found.warning(&problem.path, &problem.message),
        }
    }
    let registry = args.plugins.load();
    for error in registry.errors() {
        found.warning("plugins", error);
    }
    check_drivers(args, config, &registry, &mut found);
    let summary = match (found.errors, found.warnings) {
        (0, 0) => "ready".to_owned(),
        (0, w) => format!("ready, {w} warning(s)"),
        (e, w) => format!("{e} error(s), {w} warning(s)"),
    };
    println!("{name}: {summary}");
    Ok(if found.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_drivers(args: &CheckArgs, config: &Value, registry: &Registry, found: &mut Findings) {
    let timeout = Duration::from_secs(args.timeout);
    let log = || Log::new(LavaLogWriter::new(std::io::stderr()));
    let power = check_driver(found, "power", power_driver(config), |choice| {
        registry.power(&choice.driver, &choice.config, log())
    });
    let connection = check_driver(found, "connection", connection_driver(config), |choice| {
        registry.connection(&choice.driver, &choice.config, log())
    });
    check_boot_methods(config, registry, found);
    if !args.live {
        return;
    }
    if let Some(power) = &power {
        match power.state(timeout) {
            Ok(state) => found.ok("live power", format!("the board is {}", state.name())),
            Err(e) => found.error("live power", e),
        }
    }
    if let Some(connection) = &connection {
        match connection.connect(timeout) {
            Ok(mut console) => {
                let deadline = Instant::now() + Duration::from_secs(2).min(timeout);
                let mut seen = 0usize;
                while Instant::now() < deadline {
                    match console.read(4096, deadline.saturating_duration_since(Instant::now())) {
                        Ok(data) => seen += data.len(),
                        Err(_) => break,
                    }
                }
                let _ = console.close();
                found.ok(
                    "live console",
                    format!("opened; {seen} bytes arrived in the first seconds"),
                );
            }
            Err(e) => found.error("live console", e),
        }
    }
}

/// Reports whether the device selects a driver of one kind and whether it accepts its
/// settings; returns the built driver for the live checks.
fn check_driver<T>(
    found: &mut Findings,
    what: &str,
    selection: Result<DriverChoice, SelectionError>,
    build: impl FnOnce(&DriverChoice) -> Result<T, DriverError>,
) -> Option<T> {
    let choice = match selection {
        Ok(choice) => choice,
        Err(missing) => {
            found.warning(what, missing);
            return None;
        }
    };
    match build(&choice) {
        Ok(driver) => {
            found.ok(
                what,
                format!("driver '{}' accepts its settings", choice.driver),
            );
            Some(driver)
        }
        Err(e) => {
            found.error(what, e);
            None
        }
    }
}

fn check_boot_methods(config: &Value, registry: &Registry, found: &mut Findings) {
    let Some(methods) = config
        .pointer("/actions/boot/methods")
        .and_then(Value::as_object)
    else {
        return;
    };
    let (usable, missing): (Vec<&String>, Vec<&String>) = methods
        .keys()
        .partition(|m| registry.get(DriverKind::Boot, m).is_some());
    if usable.is_empty() {
        found.error(
            "boot",
            format!(
                "no loaded plugin provides any of this device's boot methods ({}); see \
                 `basalt plugins list`",
                methods.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
        return;
    }
    found.ok(
        "boot",
        format!(
            "methods with a plugin: {}",
            usable
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if !missing.is_empty() {
        found.warning(
            "boot",
            format!(
                "no plugin for {}; jobs using them will fail",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}
