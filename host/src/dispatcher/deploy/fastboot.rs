//! The `fastboot` deploy (LAVA's `FastbootAction`): the job's `images:` are downloaded, the
//! board is put into fastboot mode (u-boot's `fastboot` command on its console for a
//! `fastboot_via_uboot` board, a hard reset where the device has one, else `adb -s
//! ADB_SERIAL reboot-bootloader` when the adb server lists it or `fastboot
//! reboot-bootloader` when `fastboot devices` does), and each image is flashed to the
//! partition of its name with Debian's fastboot client, in the device's `flash_cmds_order`
//! (images it does not list follow, by name), each followed by its `reboot:`.
//!
//! Every call is LAVA's `fastboot -s SERIAL <command…> <fastboot_options…>`: the device's
//! options come after the command, as LAVA puts them; the client runs without a shell, on
//! the worker or, with `docker:`, in a container of the job's image
//! (`basalt_plugin_api::fastboot`). The files stay where they were
//! downloaded; `fastboot` boots read them from there.

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value};

use basalt_plugin_api::bootloader::{Method, UbootFastboot};
use basalt_plugin_api::fastboot::{Client, Docker, RebootIntoFastboot, UNSET_SERIAL};

use super::artifacts::{self, Layout};
use super::{missing, DeployContext, Facilities};
use crate::dispatcher::actions::Place;
use crate::dispatcher::failure::Failure;

/// The `reboot:` values LAVA accepts on an image.
const REBOOTS: &[&str] = &[
    "hard-reset",
    "fastboot-reboot",
    "fastboot-reboot-bootloader",
    "fastboot-reboot-fastboot",
];

/// The device's fastboot serial and options, read as LAVA reads them.
struct Target {
    /// Empty until `fastboot devices` found the board, for an auto-detected one.
    serial: String,
    options: Vec<String>,
    /// The serial is unset and found by `fastboot devices` (`fastboot_auto_detection`).
    detect: bool,
    /// The container the client runs in, where the deploy says `docker:`.
    docker: Option<Docker>,
    /// How the board is asked into fastboot mode, for a board with neither u-boot's
    /// `fastboot` nor a hard reset (and a serial to ask it by).
    reboot: Option<RebootIntoFastboot>,
}

impl Target {
    fn of(device: &Value) -> Result<Self, Failure> {
        let mut serial = device
            .get("fastboot_serial_number")
            .map(crate::data::text)
            .unwrap_or_default();
        let auto = device
            .get("fastboot_auto_detection")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // LAVA detects only an unset serial; one the dictionary sets is kept.
        let detect = auto && (serial.is_empty() || serial == UNSET_SERIAL);
        if detect {
            serial.clear();
        } else if serial.is_empty() {
            return Err(missing("device fastboot serial number missing"));
        } else if serial == UNSET_SERIAL {
            return Err(missing(
                "device fastboot serial number unset (fastboot_serial_number is 0000000000)",
            ));
        }
        let options = match device.get("fastboot_options") {
            None => return Err(missing("device fastboot options missing")),
            Some(Value::Array(items)) => items.iter().map(crate::data::text).collect(),
            Some(_) => return Err(missing("device fastboot options is not a list")),
        };
        let asked =
            !detect && !uses_console(device) && !crate::device_drivers::has_hard_reset(device);
        let reboot = asked
            .then(|| RebootIntoFastboot::new(device.get("adb_serial_number")))
            .transpose()
            .map_err(Failure::from)?;
        Ok(Self {
            serial,
            options,
            detect,
            docker: None,
            reboot,
        })
    }

    /// The client LAVA runs: `fastboot -s SERIAL <words…> <options…>`, here or in the
    /// deploy's container.
    fn client(&self) -> Client {
        Client {
            serial: self.serial.clone(),
            options: self.options.clone(),
            docker: self.docker.clone(),
        }
    }
}

/// The deploy's `docker:`, with the device's docker options.
fn docker_of(
    params: &Map<String, Value>,
    device: &Value,
    job_id: &str,
) -> Result<Option<Docker>, Failure> {
    Docker::from_action(
        &Value::Object(params.clone()),
        device.pointer("/actions/test/methods/docker"),
        job_id,
    )
    .map_err(Failure::from)
}

fn images(params: &Map<String, Value>) -> Result<&Map<String, Value>, Failure> {
    params
        .get("images")
        .and_then(Value::as_object)
        .ok_or_else(|| Failure::job("a fastboot deploy needs images: {partition: {url: …}}"))
}

/// Checks a fastboot deploy against the device and the worker.
pub fn check(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    if docker_of(params, device, "0")?.is_some() && facilities.docker.is_none() {
        return Err(missing(
            "the deploy runs fastboot inside docker (docker:), and this worker has no docker CLI",
        ));
    }
    if uses_console(device) {
        uboot_fastboot(device)?;
    }
    if device
        .pointer("/actions/deploy/connections/fastboot")
        .is_none()
    {
        return Err(missing(
            "Device not configured to support fastboot deployment connections.",
        ));
    }
    if device.get("flash_cmds_order").is_none() {
        return Err(missing("device flash commands order missing"));
    }
    Target::of(device)?;
    for (name, image) in images(params)? {
        crate::job::confine::file_name(name)
            .map_err(|e| Failure::job(format!("images: {name}: {e}")))?;
        if let Some(reboot) = image.get("reboot") {
            let reboot = reboot.as_str().unwrap_or_default();
            if !REBOOTS.contains(&reboot) {
                return Err(Failure::job(format!(
                    "images: {name}: reboot: '{reboot}' is not one of {}",
                    REBOOTS.join(", ")
                )));
            }
        }
    }
    if facilities.fastboot.is_none() && !params.contains_key("docker") {
        return Err(missing(
            "a fastboot deploy needs the fastboot client on this worker (Debian's fastboot)",
        ));
    }
    Ok(())
}

/// The order LAVA flashes in: the device's `flash_cmds_order`, then the other images (LAVA
/// takes them in Python's set order; here they come by name, the same on every run).
pub fn flash_order(device: &Value, images: &Map<String, Value>) -> Vec<String> {
    let listed: Vec<String> = device
        .get("flash_cmds_order")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(crate::data::text).collect())
        .unwrap_or_default();
    let mut order: Vec<String> = listed
        .iter()
        .filter(|name| images.contains_key(name.as_str()))
        .cloned()
        .collect();
    let mut rest: Vec<String> = images
        .keys()
        .filter(|name| !listed.contains(name))
        .cloned()
        .collect();
    rest.sort();
    order.extend(rest);
    order
}

/// Runs a fastboot deploy.
pub fn run(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    let mut target = Target::of(ctx.device)?;
    target.docker = docker_of(ctx.params, ctx.device, &ctx.servers.job_id)?;
    let images = images(ctx.params)?;
    // LAVA's `apply-overlay: true`: the overlay into the image before it is flashed.
    let apply = |key: &str, params: &Value, file: &Path| {
        if params.get("apply-overlay").and_then(Value::as_bool) != Some(true)
            || ctx.overlay.is_none()
        {
            return Ok(());
        }
        let sparse = params.get("sparse").and_then(Value::as_bool) != Some(false);
        let name = match sparse {
            true => "apply-overlay-sparse-image",
            false => "apply-overlay-image",
        };
        ctx.log.action(name, Place::Child, ctx.deadline, |_| {
            super::images::apply_overlay(ctx, key, params, file)
        })
    };
    let deployed = artifacts::fetch_then(ctx, &ctx.deploy_dir(), Layout::PerKey, &apply)?;
    if let Some(docker) = &target.docker {
        docker
            .prepare(ctx.deadline, &ctx.log.plugin_log())
            .map_err(Failure::from)?;
    }
    enter_fastboot(ctx, &target)?;
    if target.detect {
        target.serial = basalt_plugin_api::fastboot::detect(
            &target.client(),
            ctx.deadline,
            &ctx.log.plugin_log(),
        )
        .map_err(Failure::from)?;
    }
    let skip_boot = ctx
        .device
        .pointer("/actions/boot/methods/fastboot")
        .and_then(Value::as_array)
        .is_some_and(|sequence| sequence.iter().any(|s| s == "no-flash-boot"));
    for name in flash_order(ctx.device, images) {
        let Some(file) = deployed.get(&name).and_then(Value::as_str) else {
            continue;
        };
        if skip_boot && name == "boot" {
            ctx.log
                .info("Skipping the boot partition: the device boots it with no-flash-boot");
            continue;
        }
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        ctx.log.info(&format!("{size} bytes"));
        fastboot(
            ctx,
            &target,
            &["flash", &name, file],
            &[file],
            "Unable to flash",
        )?;
        match images[&name].get("reboot").and_then(Value::as_str) {
            Some("fastboot-reboot") => {
                ctx.log.info("fastboot rebooting device.");
                fastboot(ctx, &target, &["reboot"], &[], "Unable to reboot")?;
            }
            Some("fastboot-reboot-bootloader") => {
                ctx.log.info("fastboot reboot into bootloader.");
                fastboot(
                    ctx,
                    &target,
                    &["reboot-bootloader"],
                    &[],
                    "Unable to reboot",
                )?;
            }
            Some("fastboot-reboot-fastboot") => {
                ctx.log.info("fastboot reboot into fastboot.");
                fastboot(
                    ctx,
                    &target,
                    &["reboot", "fastboot"],
                    &[],
                    "Unable to reboot",
                )?;
            }
            Some("hard-reset") => hard_reset(ctx)?,
            _ => {}
        }
    }
    Ok(deployed)
}

/// Whether the deploy needs the board's console: a board that enters fastboot mode through
/// u-boot (`fastboot_via_uboot: true`).
pub fn uses_console(device: &Value) -> bool {
    device.get("fastboot_via_uboot").and_then(Value::as_bool) == Some(true)
}

/// The u-boot dialogue that puts a `fastboot_via_uboot` board into fastboot mode.
fn uboot_fastboot(device: &Value) -> Result<UbootFastboot, Failure> {
    let config = crate::dispatcher::preflight::boot_config(device, "u-boot");
    let uboot = Method::from_config("fastboot deploy", "u-boot", &config.to_string())
        .and_then(|uboot| {
            UbootFastboot::new(
                uboot,
                device
                    .pointer("/actions/deploy/methods/u-boot")
                    .unwrap_or(&Value::Null),
            )
        })
        .map_err(|e| missing(e.message()))?;
    Ok(uboot)
}

/// LAVA's three ways into fastboot mode: through u-boot's `fastboot` command where the
/// device says so, a hard reset through the device's power control, else asking the board
/// with adb or fastboot ([`RebootIntoFastboot`]).
fn enter_fastboot(ctx: &DeployContext<'_>, target: &Target) -> Result<(), Failure> {
    if uses_console(ctx.device) {
        let dialogue = uboot_fastboot(ctx.device)?;
        let Some(console) = ctx.console else {
            return Err(Failure::infrastructure("the console is not open"));
        };
        let mut console = console.borrow_mut();
        let log = ctx.log.plugin_log();
        let mut host = crate::console::ConsoleBootHost::new(&mut console, ctx.power, &log);
        let mut session = basalt_plugin_api::BootSession::over(&mut host);
        return dialogue
            .enter(&mut session, ctx.deadline)
            .map_err(Failure::from);
    }
    if crate::device_drivers::has_hard_reset(ctx.device) {
        if let Some(pre_power) = ctx
            .device
            .pointer("/commands/pre_power_command")
            .and_then(Value::as_str)
        {
            super::run_on_worker(ctx, "pre_power_command", pre_power, "Unable to run")?;
        }
        return hard_reset(ctx);
    }
    match &target.reboot {
        Some(reboot) => reboot
            .enter(&target.client(), ctx.deadline, &ctx.log.plugin_log())
            .map_err(Failure::from),
        // An auto-detected board has no serial to be asked by yet.
        None => Ok(()),
    }
}

fn hard_reset(ctx: &DeployContext<'_>) -> Result<(), Failure> {
    let Some(power) = ctx.power else {
        return Err(missing(
            "this device has no power control to hard-reset it into fastboot mode",
        ));
    };
    ctx.log.info("fastboot: resetting the board (hard_reset)");
    power
        .reboot(ctx.deadline.saturating_duration_since(Instant::now()))
        .map_err(|e| Failure::infrastructure(format!("Unable to reboot: {e}")))
}

fn fastboot(
    ctx: &DeployContext<'_>,
    target: &Target,
    words: &[&str],
    files: &[&str],
    failing: &str,
) -> Result<(), Failure> {
    target
        .client()
        .run(words, files, ctx.deadline, &ctx.log.plugin_log())
        .map(drop)
        .map_err(|e| Failure::infrastructure(format!("{failing}: {}", e.message())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_flash_in_the_devices_order_then_by_name_with_options_after_the_command() {
        let device = json!({
            "flash_cmds_order": ["ptable", "boot", "system", "userdata"],
            "fastboot_serial_number": "usb:2-1.2",
            "adb_serial_number": "R58M12345",
            "fastboot_options": ["-S", "256M"],
        });
        let images =
            json!({"userdata": {}, "zz-extra": {}, "boot": {}, "aa-extra": {}, "ptable": {}});
        assert_eq!(
            flash_order(&device, images.as_object().unwrap()),
            ["ptable", "boot", "userdata", "aa-extra", "zz-extra"]
        );
        let target = Target::of(&device).unwrap();
        assert_eq!(
            target
                .client()
                .argv(&["flash", "boot", "/tmp/x/boot.img"])
                .join(" "),
            "fastboot -s usb:2-1.2 flash boot /tmp/x/boot.img -S 256M"
        );
    }

    #[test]
    fn an_unset_serial_and_bad_options_are_refused_as_lava_refuses_them() {
        let unset = json!({"fastboot_serial_number": "0000000000", "fastboot_options": []});
        assert!(Target::of(&unset).is_err_and(|f| f.message.contains("unset")));
        // With auto-detection an unset serial is found later; a set one is kept.
        let auto = json!({"fastboot_serial_number": "0000000000", "fastboot_options": [],
                          "fastboot_auto_detection": true});
        assert!(Target::of(&auto).is_ok_and(|t| t.detect && t.serial.is_empty()));
        let set = json!({"fastboot_serial_number": "1bc92320", "fastboot_options": [],
                         "fastboot_auto_detection": true, "commands": {"hard_reset": "reset"}});
        assert!(Target::of(&set).is_ok_and(|t| !t.detect && t.serial == "1bc92320"));
        let options = json!({"fastboot_serial_number": "1bc92320", "fastboot_options": "-S 256M"});
        assert!(Target::of(&options).is_err_and(|f| f.message.contains("not a list")));
        // A board asked into fastboot mode (no hard reset, no u-boot) needs its adb serial.
        let phone = json!({"fastboot_serial_number": "1bc92320", "fastboot_options": [],
                           "adb_serial_number": "0000000000"});
        assert!(Target::of(&phone).is_err_and(|f| f.message == "device adb serial number unset"));
        let device = json!({
            "fastboot_serial_number": "1bc92320", "fastboot_options": [], "flash_cmds_order": [],
            "adb_serial_number": "1bc92320",
            "actions": {"deploy": {"connections": {"fastboot": null}}},
        });
        let params =
            json!({"to": "fastboot", "images": {"boot": {"url": "file:///b", "reboot": "soft"}}});
        let with_client = Facilities {
            fastboot: Some("/usr/bin/fastboot".into()),
            ..Facilities::default()
        };
        let error = check(params.as_object().unwrap(), &device, &with_client).unwrap_err();
        assert!(
            error.message.contains("reboot: 'soft'"),
            "{}",
            error.message
        );
        let params = json!({"to": "fastboot", "images": {"boot": {"url": "file:///b"}}});
        let error =
            check(params.as_object().unwrap(), &device, &Facilities::default()).unwrap_err();
        assert!(
            error.message.contains("Debian's fastboot"),
            "{}",
            error.message
        );
        check(params.as_object().unwrap(), &device, &with_client).unwrap();
    }
}
