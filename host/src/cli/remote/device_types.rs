//! `basalt device-types add` and the master's `device-types list`.

use std::process::ExitCode;

use serde_json::json;

use super::{field, print_table, MasterArgs};
use crate::cli::device_types::{AddArgs, ScheduleArgs, UpdateArgs};
use crate::cli::Format;

/// The schedule flags that were given, as JSON members.
fn schedule_body(schedule: &ScheduleArgs) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    if let Some(n) = schedule.health_frequency {
        body.insert("health_frequency".into(), json!(n));
    }
    if let Some(d) = &schedule.health_denominator {
        body.insert("health_denominator".into(), json!(d));
    }
    if let Some(off) = schedule.health_disabled {
        body.insert("health_disabled".into(), json!(off));
    }
    body
}

/// Registers a device type on the master (its template must be on the master's path).
pub fn add(args: &AddArgs) -> anyhow::Result<ExitCode> {
    let mut body = schedule_body(&args.schedule);
    body.insert("name".into(), json!(args.name));
    body.insert("description".into(), json!(args.description));
    args.master
        .client()
        .post("/api/v1/device-types", &serde_json::Value::Object(body))?;
    println!("device type {} added", args.name);
    Ok(ExitCode::SUCCESS)
}

/// Changes a device type on the master.
pub fn update(args: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let mut body = schedule_body(&args.schedule);
    if let Some(description) = &args.description {
        body.insert("description".into(), json!(description));
    }
    let answer = args.master.client().send_json(
        "PATCH",
        &format!("/api/v1/device-types/{}", args.name),
        &serde_json::Value::Object(body),
    )?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
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
            let health = if t["health_check"] != true {
                "none".to_owned()
            } else if t["health_disabled"] == true {
                "disabled".to_owned()
            } else {
                format!(
                    "every {} {}",
                    field(t, "health_frequency"),
                    field(t, "health_denominator")
                )
            };
            let mut row: Vec<String> = ["name", "devices", "template"]
                .iter()
                .map(|f| field(t, f))
                .collect();
            row.insert(2, health);
            row
        })
        .collect();
    print_table(&["NAME", "DEVICES", "HEALTH CHECK", "TEMPLATE"], &rows);
    Ok(ExitCode::SUCCESS)
}
