//! Boot driver `qemu`: the board is a QEMU process this driver starts.
//!
//! The command line comes from the device configuration's `actions.boot.methods.qemu.
//! parameters` (`command`, `options`, `boot_options`), what the job deployed (`kernel`,
//! `initrd`/`ramdisk`, `dtb`, a disk `image`/`rootfs`) and the job's boot action
//! (`kernel_args` appended to the command line). QEMU runs on a pseudo-terminal with its
//! serial port on stdio (`-nographic`), and that terminal becomes the job's console; QEMU
//! ends when the job closes it. Then the usual login and prompt handling follows.

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

/// Quotes a word for `/bin/sh`.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r#"'"'"'"#))
}

/// The shell command that starts the guest.
pub fn command_line(config: &Value, action: &Value) -> Result<String, PluginError> {
    let parameters = config.get("parameters").cloned().unwrap_or(Value::Null);
    let mut words: Vec<String> = vec![parameters
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()];
    if let Some(options) = parameters.get("options").and_then(Value::as_array) {
        // Each option is a fragment of a command line as the template wrote it.
        words.extend(options.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    let deployed = action.get("_deployed").cloned().unwrap_or(Value::Null);
    let file = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| deployed.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let kernel = file(&["kernel"]);
    if let Some(kernel) = &kernel {
        words.push(format!("-kernel {}", quote(kernel)));
    }
    if let Some(initrd) = file(&["initrd", "ramdisk"]) {
        words.push(format!("-initrd {}", quote(&initrd)));
    }
    if let Some(dtb) = file(&["dtb"]) {
        words.push(format!("-dtb {}", quote(&dtb)));
    }
    if let Some(disk) = file(&["image", "rootfs", "disk"]) {
        words.push(format!("-drive format=raw,file={}", quote(&disk)));
    }
    if kernel.is_some() {
        let mut append: Vec<String> = parameters
            .get("boot_options")
            .and_then(Value::as_object)
            .map(|options| {
                options
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        Value::Null => k.clone(),
                        other => format!("{k}={other}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(extra) = action.get("kernel_args").and_then(Value::as_str) {
            append.push(extra.to_owned());
        }
        if !append.is_empty() {
            words.push(format!("-append {}", quote(&append.join(" "))));
        }
    } else if file(&["image", "rootfs", "disk"]).is_none() {
        return Err(PluginError::job(format!(
            "{DRIVER}: nothing to boot: deploy a kernel or a disk image before the boot"
        )));
    }
    Ok(words.join(" "))
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
        let command = command_line(&self.config, &action)?;
        session.info(&format!("{DRIVER}: {command}"));
        let console = PtyConsole::spawn(&command)?;
        session.attach_console(console_box(console))?;
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

    #[test]
    fn the_command_line_comes_from_device_and_deployment() {
        let config = json!({"parameters": {
            "command": "qemu-system-aarch64",
            "options": ["-machine virt", "-cpu cortex-a57", "-nographic", "-m 1024"],
            "boot_options": {"console": "ttyAMA0,115200", "root": "/dev/ram0"},
        }});
        let action = json!({
            "kernel_args": "quiet",
            "_deployed": {"kernel": "/jobs/7/deploy/kernel-Image", "initrd": "/jobs/7/deploy/initrd-rootfs.cpio.gz"},
        });
        assert_eq!(
            command_line(&config, &action).unwrap(),
            "qemu-system-aarch64 -machine virt -cpu cortex-a57 -nographic -m 1024 \
             -kernel /jobs/7/deploy/kernel-Image -initrd /jobs/7/deploy/initrd-rootfs.cpio.gz \
             -append 'console=ttyAMA0,115200 root=/dev/ram0 quiet'"
        );
        let error = command_line(&config, &json!({})).unwrap_err();
        assert!(error.message().contains("nothing to boot"), "{error}");
    }
}
