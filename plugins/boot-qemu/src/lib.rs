//! Boot driver `qemu`: the board is a QEMU process this driver starts.
//!
//! The command line is LAVA's: the device configuration's `actions.boot.methods.qemu.
//! parameters` (`command`, `options`, `extra`), then the `image_arg` of each image the job
//! deployed, with the host's paths in place of `{kernel}`, `{ramdisk}`, ... (see
//! [`command_line`]); `boot_options` are the installers' and never passed. QEMU runs on a pseudo-terminal with its
//! serial port on stdio (`-nographic`), and that terminal becomes the job's console; QEMU
//! ends when the job closes it. Then the usual login and prompt handling follows.
//!
//! As LAVA's `boot-qemu-image` > `execute-qemu`, the start of QEMU is an action of the
//! boot's own, recorded with what LAVA records of it: QEMU's version and the host's
//! architecture (from Debian's `qemu-system-x86`/`-arm` package where the job's `context:
//! arch` has one, else `qemu-system-ARCH --version` and `uname -m`) and the job's
//! architecture (the host's `_job_arch`).

use std::time::{Duration, Instant};

use basalt_plugin_api::login::{log_in, read_boot_action};
use basalt_plugin_api::pty::PtyConsole;
use basalt_plugin_api::{console_box, export_plugin, BootDriver, BootSession, Log, PluginError};
use serde_json::Value;

const DRIVER: &str = "boot qemu";

/// The driver, built from the device's qemu section.
pub struct QemuBoot {
    config: Value,
    _log: Log,
}

/// Builds the driver from the device's `actions.boot.methods.qemu` (JSON).
pub fn new_qemu_boot(config: &str, log: Log) -> Result<QemuBoot, PluginError> {
    let config: Value = serde_json::from_str(config)
        .map_err(|e| PluginError::invalid_config(format!("{DRIVER}: bad configuration: {e}")))?;
    if config
        .pointer("/parameters/command")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER}: the device's actions.boot.methods.qemu.parameters has no command \
             (e.g. qemu-system-x86_64); is the device type a qemu template?"
        )));
    }
    Ok(QemuBoot { config, _log: log })
}

/// The shell command that starts the guest, built as LAVA's `CallQemuAction` builds it: the
/// device's `command`, its `options` and `extra` (the job context's `extra_options`), then
/// each deployed image's `image_arg` in deploy order with `{KEY}` placeholders (the image's
/// own key, lower case as the job writes it) and `{NFS_SERVER_IP}` filled. An image without
/// an `image_arg` is not passed to QEMU (LAVA warns and leaves it out too); the warnings are
/// returned with the command.
pub fn command_line(config: &Value, action: &Value) -> (String, Vec<String>) {
    let parameters = config.get("parameters").cloned().unwrap_or(Value::Null);
    let mut words: Vec<String> = vec![parameters
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()];
    for list in ["options", "extra"] {
        // Each item is a fragment of a command line as the template wrote it.
        if let Some(items) = parameters.get(list).and_then(Value::as_array) {
            words.extend(items.iter().map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }));
        }
    }
    let deployed = action
        .get("_deployed")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let image_args = action
        .get("_image_args")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut substitutions: Vec<(String, String)> = deployed
        .iter()
        .filter(|(key, _)| image_args.contains_key(*key))
        .filter_map(|(key, file)| Some((format!("{{{key}}}"), file.as_str()?.to_owned())))
        .collect();
    if let Some(server) = action.get("_server_ip").and_then(Value::as_str) {
        substitutions.push(("{NFS_SERVER_IP}".into(), server.to_owned()));
    }
    let mut warnings = Vec::new();
    for key in deployed.keys() {
        // LAVA never passes these as images.
        if matches!(key.as_str(), "uefi" | "nfsrootfs") {
            continue;
        }
        let Some(arg) = image_args.get(key).and_then(Value::as_str) else {
            warnings.push(format!("Missing image arg for {key}"));
            continue;
        };
        let mut filled = arg.to_owned();
        for (placeholder, value) in &substitutions {
            filled = filled.replace(placeholder.as_str(), value);
        }
        words.push(filled);
    }
    // LAVA's qcow2 test overlay: the guest disk the deploy built, when no image took the
    // overlay (the host says so by passing it).
    if let Some(guest) = action.get("_guest_drive") {
        let field = |name: &str| guest.get(name).and_then(Value::as_str).unwrap_or_default();
        words.push(format!(
            "-drive format=qcow2,file={},media=disk,if={},id={}",
            field("file"),
            field("interface"),
            field("driveid")
        ));
    }
    (words.join(" "), warnings)
}

/// QEMU's version and the host's architecture, as LAVA finds them: the Debian package of the
/// job's architecture's QEMU (`qemu-system-x86` for amd64, `qemu-system-arm` for the arms),
/// else `qemu-system-ARCH --version` (its fourth word) and `uname -m`. `None` when neither
/// answers.
fn qemu_version(job_arch: &str) -> Option<(String, String)> {
    let output = |program: &str, args: &[&str]| -> Option<String> {
        let out = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let package = match job_arch {
        "amd64" | "x86_64" => Some("qemu-system-x86"),
        "arm64" | "arm" | "armhf" | "aarch64" => Some("qemu-system-arm"),
        _ => None,
    };
    if let Some(package) = package {
        let version = output("dpkg-query", &["-W", "-f=${Version}", package]);
        let arch = output("dpkg-query", &["-W", "-f=${Architecture}", package]);
        if let (Some(version), Some(arch)) = (version, arch) {
            return Some((version, arch));
        }
    }
    let binary = match job_arch {
        "arm64" => "qemu-system-aarch64".to_owned(),
        other => format!("qemu-system-{other}"),
    };
    let version = output(&binary, &["--version"])?
        .split_whitespace()
        .nth(3)?
        .to_owned();
    Some((version, output("uname", &["-m"])?))
}

impl BootDriver for QemuBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let deadline = Instant::now() + timeout;
        let (login, action) = read_boot_action(DRIVER, action)?;
        let (command, warnings) = command_line(&self.config, &action);
        for warning in warnings {
            session.log(
                basalt_plugin_api::LogLevel::WARNING,
                &format!("{DRIVER}: {warning}"),
            );
        }
        if action.get("_guest_drive").is_some() {
            session.info(&format!(
                "{DRIVER}: Extending command line for qcow2 test overlay"
            ));
        }
        session.info(&format!("{DRIVER}: Boot command: {command}"));
        let job_arch = action
            .get("_job_arch")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        session.action("boot-qemu-image", deadline, |session, _| {
            session.action("execute-qemu", deadline, |session, results| {
                if let Some((version, host_arch)) = qemu_version(&job_arch) {
                    session.info(&format!(
                        "{DRIVER}: qemu installed at version {version}, host architecture {host_arch}"
                    ));
                    results.insert("qemu_version".into(), Value::from(version));
                    results.insert("host_arch".into(), Value::from(host_arch));
                    results.insert("job_arch".into(), Value::from(job_arch.clone()));
                }
                let console = PtyConsole::spawn(&command)?;
                session.attach_console(console_box(console))
            })
        })?;
        log_in(DRIVER, session, &login, deadline)
    }
}

export_plugin! {
    name: "boot-qemu",
    drivers: [
        boot "qemu": "Runs the device's QEMU command line with the deployed kernel/initrd/image as the board" => new_qemu_boot,
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The anchor job of the LAVA compatibility work: what lava-run 2023.01 logged for
    /// `extends qemu.jinja2`, arch amd64, no_kvm, memory 512, netdevice user,restrict=on, and
    /// a kernel with `image_arg: -kernel {kernel} -append "console=ttyS0,115200"` and a
    /// ramdisk with `image_arg: -initrd {ramdisk}`.
    #[test]
    fn the_command_line_is_the_one_lava_builds() {
        let config = json!({"parameters": {
            "command": "qemu-system-x86_64",
            "boot_options": {"root": "/dev/sda1", "console": "ttyS0,115200", "boot_order": "c"},
            "options": [
                "-nographic",
                "-net nic,model=virtio,macaddr=52:54:00:12:34:58 -net user,restrict=on",
                "-m 512",
                "-monitor none",
            ],
        }});
        let action = json!({
            "_deployed": {
                "kernel": "/var/lib/basalt/jobs/7/deploy/kernel/vmlinuz",
                "ramdisk": "/var/lib/basalt/jobs/7/deploy/ramdisk/ramdisk.cpio.gz",
                "dtb": "/var/lib/basalt/jobs/7/deploy/dtb/board.dtb",
            },
            "_image_args": {
                "kernel": "-kernel {kernel} -append \"console=ttyS0,115200\"",
                "ramdisk": "-initrd {ramdisk}",
            },
        });
        let (command, warnings) = command_line(&config, &action);
        assert_eq!(
            command,
            "qemu-system-x86_64 -nographic -net nic,model=virtio,macaddr=52:54:00:12:34:58 \
             -net user,restrict=on -m 512 -monitor none \
             -kernel /var/lib/basalt/jobs/7/deploy/kernel/vmlinuz -append \"console=ttyS0,115200\" \
             -initrd /var/lib/basalt/jobs/7/deploy/ramdisk/ramdisk.cpio.gz"
        );
        assert_eq!(warnings, ["Missing image arg for dtb"]);
    }

    /// The guest disk comes last, as LAVA's `CallQemuAction` appends it.
    #[test]
    fn the_guest_disk_is_attached_after_the_images() {
        let config =
            json!({"parameters": {"command": "qemu-system-x86_64", "options": ["-nographic"]}});
        let action = json!({
            "_deployed": {"kernel": "/jobs/1/deploy/kernel/bzImage"},
            "_image_args": {"kernel": "-kernel {kernel}"},
            "_guest_drive": {"file": "/jobs/1/deploy/guest/lava-guest.qcow2", "interface": "ide", "driveid": "lavatest"},
        });
        let (command, _) = command_line(&config, &action);
        assert_eq!(
            command,
            "qemu-system-x86_64 -nographic -kernel /jobs/1/deploy/kernel/bzImage \
             -drive format=qcow2,file=/jobs/1/deploy/guest/lava-guest.qcow2,media=disk,if=ide,id=lavatest"
        );
    }

    /// `extra` (the job's `context: extra_options`) follows the device's options.
    #[test]
    fn extra_options_follow_the_devices_options() {
        let config = json!({"parameters": {
            "command": "qemu-system-aarch64",
            "options": ["-machine virt"],
            "extra": ["-smp 2", "-device virtio-rng-pci"],
        }});
        let action = json!({
            "_deployed": {"rootfs": "/jobs/1/deploy/rootfs/rootfs.ext4"},
            "_image_args": {"rootfs": "-drive format=raw,file={rootfs}"},
        });
        assert_eq!(
            command_line(&config, &action).0,
            "qemu-system-aarch64 -machine virt -smp 2 -device virtio-rng-pci \
             -drive format=raw,file=/jobs/1/deploy/rootfs/rootfs.ext4"
        );
    }
}
