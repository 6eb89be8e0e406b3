//! `basalt plugins list`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{Format, PluginDirs};
use crate::plugins::Registry;

/// Flags of `basalt plugins list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Where to look for plugins.
    #[command(flatten)]
    pub plugins: PluginDirs,
}

/// Lists drivers and load errors; fails when any library could not be loaded, so scripts and
/// CI notice a broken plugin directory.
pub fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let registry = args.plugins.load();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&as_json(&registry))?),
        Format::Text => print_text(&registry),
    }
    for error in registry.errors() {
        eprintln!("error: {error}");
    }
    Ok(if registry.errors().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn as_json(registry: &Registry) -> serde_json::Value {
    let drivers: Vec<_> = registry
        .drivers()
        .map(|d| {
            json!({
                "kind": d.kind.name(),
                "name": d.name,
                "description": d.description,
                "library": d.library.name,
                "version": d.library.version,
                "file": d.library.path,
            })
        })
        .collect();
    let errors: Vec<_> = registry
        .errors()
        .iter()
        .map(|e| json!({ "file": e.path(), "reason": e.reason_code(), "message": e.to_string() }))
        .collect();
    json!({ "drivers": drivers, "errors": errors })
}

fn print_text(registry: &Registry) {
    let rows: Vec<[String; 5]> = registry
        .drivers()
        .map(|d| {
            [
                d.kind.name().to_owned(),
                d.name.clone(),
                d.library.version.clone(),
                d.library.path.display().to_string(),
                d.description.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no drivers loaded");
        return;
    }
    let header = ["KIND", "NAME", "VERSION", "FILE", "DESCRIPTION"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
}
