//! `basalt device-types add` and the master's `device-types list`.

use std::process::ExitCode;

use serde_json::json;

use super::{field, print_table, MasterArgs};
use crate::cli::Format;

/// Registers a device type on the master (its template must be on the master's path).
pub fn add(name: &str, description: &str, master: &MasterArgs) -> anyhow::Result<ExitCode> {
    master.client().post(
        "/api/v1/device-types",
        &json!({ "name": name, "description": description }),
    )?;
    println!("device type {name} added");
    Ok(ExitCode::SUCCESS)
}

/// Lists the master's device types.
pub fn list(format: Format, master: &MasterArgs) -> anyhow::Result<ExitCode> {
    let types = master.client().get("/api/v1/device-types")?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&types)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = types
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            ["name", "devices", "template"]
                .iter()
                .map(|f| field(t, f))
                .collect()
        })
        .collect();
    print_table(&["NAME", "DEVICES", "TEMPLATE"], &rows);
    Ok(ExitCode::SUCCESS)
}
