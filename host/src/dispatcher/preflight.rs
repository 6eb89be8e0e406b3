//! Everything checked before a job touches the board: the device configuration, the
//! pipeline (methods the device offers, timeouts), each deploy method's own checks against
//! the worker, and the drivers the job needs, built from their configuration (a boot
//! plugin refuses a device section it cannot use here, not at boot time). `basalt run`
//! runs it first, `basalt run --validate` runs only it, `basalt jobs describe` shows its
//! pipeline; so a job the dry run accepts cannot later fail for a missing capability.

use basalt_plugin_api::{DriverKind, Log};
use serde_json::Value;

use super::deploy::{self, Facilities};
use super::failure::Failure;
use crate::device_drivers::{connection_driver, power_driver};
use crate::failure::FailureClass;
use crate::job::{ActionKind, JobDefinition};
use crate::pipeline::{build_pipeline, Pipeline};
use crate::plugins::{Connection, PowerDriver, Registry};

/// What a job starts with once the checks passed.
pub struct Ready {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The board's power driver, if it has power control.
    pub power: Option<PowerDriver>,
    /// The board's console driver, if the job needs a console and the device has one.
    pub connection: Option<Connection>,
}

/// A boot method's configuration as its plugin gets it: the method's section of the device
/// configuration plus the device's constants, parameters and character delays (prompts, error
/// messages, load addresses, typing speed) that boot methods read.
pub fn boot_config(device: &Value, method: &str) -> Value {
    let mut config = device
        .pointer(&format!("/actions/boot/methods/{method}"))
        .cloned()
        .unwrap_or(Value::Null);
    // A method whose section is a list (fastboot's sequence) gets it as `sequence`.
    if let Value::Array(sequence) = config {
        config = serde_json::json!({ "sequence": sequence });
    }
    if let Value::Object(section) = &mut config {
        // What fastboot needs of the device: its client's serial and options, and whether a
        // hard reset (rather than fastboot itself) brings the board into fastboot mode.
        for key in [
            "adb_serial_number",
            "fastboot_serial_number",
            "fastboot_options",
            "fastboot_auto_detection",
        ] {
            if let Some(value) = device.get(key) {
                section.insert(format!("_{key}"), value.clone());
            }
        }
        section.insert(
            "_hard_reset".into(),
            Value::Bool(crate::device_drivers::has_hard_reset(device)),
        );
        if let Some(via) = fastboot_via_uboot(device) {
            section.insert(
                basalt_plugin_api::bootloader::FASTBOOT_VIA_UBOOT.into(),
                via,
            );
        }
        // Sections of other methods a boot passes through: the UEFI firmware menu in front
        // of grub-efi, and the fastboot deploy whose interrupt a grub sequence waits for.
        for (key, source) in [
            ("_constants", "/constants"),
            ("_parameters", "/parameters"),
            ("_character_delays", "/character_delays"),
            ("_uefi_menu", "/actions/boot/methods/uefi-menu"),
            ("_fastboot_deploy", "/actions/deploy/methods/fastboot"),
            ("_docker_methods", "/actions/test/methods/docker"),
        ] {
            if let Some(value) = device.pointer(source) {
                section.insert(key.into(), value.clone());
            }
        }
    }
    config
}

/// For a board that enters fastboot mode through u-boot (`fastboot_via_uboot: true`), the
/// two u-boot sections that dialogue reads: `{boot: …, deploy: …}`.
pub fn fastboot_via_uboot(device: &Value) -> Option<Value> {
    if device.get("fastboot_via_uboot").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let section = |pointer: &str| device.pointer(pointer).cloned().unwrap_or(Value::Null);
    Some(serde_json::json!({
        "boot": section("/actions/boot/methods/u-boot"),
        "deploy": section("/actions/deploy/methods/u-boot"),
    }))
}

/// Runs every check; `log` makes the log each driver built here writes to.
pub fn preflight(
    job: &JobDefinition,
    device: &Value,
    registry: &Registry,
    facilities: &Facilities,
    log: &dyn Fn() -> Log,
) -> Result<Ready, Failure> {
    let problems: Vec<String> = crate::device::validate(device)
        .into_iter()
        .filter(|p| p.severity == crate::device::Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(Failure::new(
            FailureClass::Configuration,
            format!(
                "the device configuration is invalid: {}",
                problems.join("; ")
            ),
        ));
    }
    let pipeline = build_pipeline(job, device).map_err(|e| Failure::job(e.to_string()))?;
    for stage in &pipeline.stages {
        let action = &job.actions[stage.job_index];
        let method = action.method().unwrap_or_default();
        match stage.kind {
            ActionKind::Deploy => {
                let found = deploy::find(method).map_err(|f| {
                    Failure::new(f.class, format!("actions[{}]: {}", action.index, f.message))
                })?;
                (found.check)(&action.params, device, facilities).map_err(|f| {
                    Failure::new(f.class, format!("actions[{}]: {}", action.index, f.message))
                })?;
            }
            ActionKind::Boot => {
                if registry.get(DriverKind::Boot, method).is_none() {
                    return Err(Failure::new(
                        FailureClass::Configuration,
                        format!(
                            "actions[{}]: no boot plugin provides method '{method}'; see \
                             `basalt plugins list`",
                            action.index
                        ),
                    ));
                }
                // Built and dropped: the plugin checks the device's section now.
                registry
                    .boot(method, &boot_config(device, method).to_string(), log())
                    .map_err(|e| {
                        let failure = Failure::from(e);
                        Failure::new(
                            failure.class,
                            format!("actions[{}]: {}", action.index, failure.message),
                        )
                    })?;
            }
            ActionKind::Test | ActionKind::Command => {}
        }
    }
    let power = match power_driver(device) {
        Ok(choice) => Some(registry.power(&choice.driver, &choice.config, log())?),
        Err(_) => None,
    };
    let needs_console = pipeline
        .stages
        .iter()
        .any(|s| matches!(s.kind, ActionKind::Boot | ActionKind::Test));
    // A device without a console connection may still boot with a method that opens its
    // own (qemu); that is checked when the console is first needed.
    let connection = match connection_driver(device) {
        Ok(choice) if needs_console => {
            Some(registry.connection(&choice.driver, &choice.config, log())?)
        }
        _ => None,
    };
    Ok(Ready {
        pipeline,
        power,
        connection,
    })
}
