//! `to: flasher`: the images downloaded, then the device's own flashing commands
//! (`actions.deploy.methods.flasher.commands`) run on the worker in the download directory,
//! with LAVA's placeholders filled: `{KEY}` for each image (its path below that directory,
//! or its URL when the image says `download: false`), the device's power commands and its
//! `device_info`/`static_info`. As LAVA does, each command is split into words (shlex) and
//! run without a shell of its own; a failure is an infrastructure error.

use std::time::Instant;

use serde_json::{Map, Value};

use super::artifacts::{self, Layout};
use super::{check_artifacts, missing, run_on_worker, DeployContext, Facilities};
use crate::dispatcher::failure::Failure;
use crate::dispatcher::shell;
use crate::pipeline::deploy_artifacts;

fn commands(device: &Value) -> Result<Vec<String>, Failure> {
    match device.pointer("/actions/deploy/methods/flasher/commands") {
        Some(Value::Array(items)) => Ok(items.iter().map(crate::data::text).collect()),
        _ => Err(missing(
            "the device's actions.deploy.methods.flasher.commands should be a list \
             (flasher_deploy_commands in its dictionary)",
        )),
    }
}

/// Checks a flasher deploy: the device's commands, the images.
pub fn check(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    commands(device)?;
    if !params.get("images").is_some_and(Value::is_object) {
        return Err(Failure::job("a flasher deploy needs images:"));
    }
    check_artifacts(params, device, facilities)
}

/// A device command as LAVA substitutes it: a string as it is, a list joined with `&&`
/// (LAVA would paste Python's list syntax), absent as empty.
fn device_command(device: &Value, name: &str) -> String {
    match device.pointer(&format!("/commands/{name}")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" && "),
        _ => String::new(),
    }
}

fn yaml_of(device: &Value, key: &str) -> String {
    let value = device.get(key).cloned().unwrap_or(Value::Array(Vec::new()));
    serde_yaml::to_string(&value).unwrap_or_default()
}

/// The placeholders and their values; empty values leave their placeholder as it is
/// (LAVA's `substitute`).
fn substitutions(
    ctx: &DeployContext<'_>,
    deployed: &Map<String, Value>,
    dir: &std::path::Path,
) -> Vec<(String, String)> {
    let mut values = Vec::new();
    for (key, image) in deploy_artifacts(ctx.params) {
        let value = match image.get("download").and_then(Value::as_bool) {
            Some(false) => image
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => deployed
                .get(&key)
                .and_then(Value::as_str)
                .map(|path| {
                    std::path::Path::new(path)
                        .strip_prefix(dir)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| path.to_owned())
                })
                .unwrap_or_default(),
        };
        values.push((format!("{{{}}}", key.to_uppercase()), value));
    }
    let device = ctx.device;
    for (placeholder, command) in [
        ("{HARD_RESET_COMMAND}", "hard_reset"),
        ("{SOFT_REBOOT_COMMAND}", "soft_reboot"),
        ("{PRE_OS_COMMAND}", "pre_os_command"),
        ("{PRE_POWER_COMMAND}", "pre_power_command"),
        ("{POWER_ON_COMMAND}", "power_on"),
        ("{POWER_OFF_COMMAND}", "power_off"),
    ] {
        values.push((placeholder.into(), device_command(device, command)));
    }
    values.push(("{DEVICE_INFO}".into(), yaml_of(device, "device_info")));
    values.push(("{STATIC_INFO}".into(), yaml_of(device, "static_info")));
    values
}

fn substitute(command: &str, values: &[(String, String)]) -> String {
    let mut filled = command.to_owned();
    for (placeholder, value) in values {
        if !value.is_empty() {
            filled = filled.replace(placeholder, value);
        }
    }
    filled
}

/// Runs a flasher deploy.
pub fn run(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    let commands = commands(ctx.device)?;
    let dir = ctx.output_dir.join("flasher");
    let layout = match ctx.params.get("uniquify").and_then(Value::as_bool) {
        Some(false) => Layout::Flat,
        _ => Layout::PerKey,
    };
    let deployed = artifacts::fetch(ctx, &dir, layout)?;
    let values = substitutions(ctx, &deployed, &dir);
    for command in commands {
        let filled = substitute(&command, &values);
        let words = shlex::split(&filled).ok_or_else(|| {
            Failure::job(format!("flasher command {filled:?}: unbalanced quotes"))
        })?;
        if words.is_empty() {
            continue;
        }
        let line = format!(
            "cd {} && exec {}",
            shell::quote(&dir.display().to_string()),
            shell::join(&words)
        );
        run_on_worker(ctx, "flasher", &line, "Unable to flash the device")?;
        if Instant::now() >= ctx.deadline {
            return Err(Failure::infrastructure("the flasher deploy timed out"));
        }
    }
    Ok(deployed)
}

#[cfg(test)]
mod tests {
    use super::super::tests::context;
    use super::*;
    use crate::dispatcher::local_files::LocalFiles;
    use serde_json::json;

    /// The device's commands run in the download directory with every placeholder filled;
    /// a failing command fails the deploy as LAVA's does.
    #[test]
    fn flasher_commands_run_with_lavas_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(images.join("fw.bin"), "firmware").unwrap();
        let record = dir.path().join("record");
        let device = json!({
            "commands": {"hard_reset": "pdu reset 3", "power_off": ["pdu off 3", "sleep 1"]},
            "static_info": [{"board_id": "0042"}],
            "actions": {"deploy": {"methods": {"flasher": {"commands": [
                format!("sh -c 'echo \"$PWD {{FIRMWARE}} {{LOADER}} [{{HARD_RESET_COMMAND}}] [{{POWER_OFF_COMMAND}}] [{{PRE_OS_COMMAND}}]\" >> {}'", record.display()),
                format!("sh -c 'cat {{FIRMWARE}} >> {}'", record.display()),
            ]}}}}
        });
        let params = json!({"to": "flasher", "images": {
            "firmware": {"url": format!("file://{}/fw.bin", images.display())},
            "loader": {"url": "http://lab/loader.bin", "download": false},
        }});
        let params = params.as_object().unwrap();
        let local = LocalFiles::new([images.clone()]);
        let (log, servers) = context::parts(dir.path());
        check(params, &device, &Facilities::default()).unwrap();
        let ctx = context::new(params, &device, dir.path(), &local, &log, &servers);
        run(&ctx).unwrap();
        let recorded = std::fs::read_to_string(&record).unwrap();
        let flasher = dir.path().join("flasher");
        assert_eq!(
            recorded,
            format!(
                "{} firmware/fw.bin http://lab/loader.bin [pdu reset 3] [pdu off 3 && sleep 1] [{{PRE_OS_COMMAND}}]\nfirmware",
                flasher.display()
            )
        );
        let failing =
            json!({"actions": {"deploy": {"methods": {"flasher": {"commands": ["false"]}}}}});
        let ctx = context::new(params, &failing, dir.path(), &local, &log, &servers);
        let error = run(&ctx).unwrap_err();
        assert!(
            error.message.starts_with("Unable to flash the device"),
            "{}",
            error.message
        );
        assert_eq!(error.class, crate::failure::FailureClass::Infrastructure);
        let error = check(params, &json!({}), &Facilities::default()).unwrap_err();
        assert!(
            error.message.contains("flasher_deploy_commands"),
            "{}",
            error.message
        );
    }
}
