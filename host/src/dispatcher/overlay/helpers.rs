//! The helpers of the LAVA overlay's `bin/`: the commands test definitions call
//! (`lava-test-case`, `lava-test-set`, …) and the runner that starts them.
//!
//! The scripts are files next to this module (written for Basalt, with LAVA's names,
//! arguments, output and signals). Each is written to the board with the device's shell as
//! its first line (`#!` + `lava_test_sh_cmd`) and, for the ones that print board facts, the
//! facts from the device dictionary; a distribution's own versions (chosen by the deploy's
//! `os:`) replace the generic ones of the same name.

use serde_json::Value;

/// Every helper LAVA's overlay carries, in its generic form.
const GENERIC: &[(&str, &str)] = &[
    ("lava-add-keys", include_str!("helpers/lava-add-keys")),
    ("lava-add-sources", include_str!("helpers/lava-add-sources")),
    (
        "lava-background-process-start",
        include_str!("helpers/lava-background-process-start"),
    ),
    (
        "lava-background-process-stop",
        include_str!("helpers/lava-background-process-stop"),
    ),
    (
        "lava-common-functions",
        include_str!("helpers/lava-common-functions"),
    ),
    ("lava-echo-ipv4", include_str!("helpers/lava-echo-ipv4")),
    (
        "lava-install-packages",
        include_str!("helpers/lava-install-packages"),
    ),
    (
        "lava-installed-packages",
        include_str!("helpers/lava-installed-packages"),
    ),
    ("lava-os-build", include_str!("helpers/lava-os-build")),
    (
        "lava-probe-channel",
        include_str!("helpers/lava-probe-channel"),
    ),
    ("lava-probe-ip", include_str!("helpers/lava-probe-ip")),
    ("lava-target-ip", include_str!("helpers/lava-target-ip")),
    ("lava-target-mac", include_str!("helpers/lava-target-mac")),
    (
        "lava-target-storage",
        include_str!("helpers/lava-target-storage"),
    ),
    ("lava-test-case", include_str!("helpers/lava-test-case")),
    ("lava-test-event", include_str!("helpers/lava-test-event")),
    (
        "lava-test-feedback",
        include_str!("helpers/lava-test-feedback"),
    ),
    ("lava-test-raise", include_str!("helpers/lava-test-raise")),
    (
        "lava-test-reference",
        include_str!("helpers/lava-test-reference"),
    ),
    ("lava-test-runner", include_str!("helpers/lava-test-runner")),
    ("lava-test-set", include_str!("helpers/lava-test-set")),
    ("lava-test-shell", include_str!("helpers/lava-test-shell")),
];

const DEBIAN: &[(&str, &str)] = &[
    (
        "lava-add-keys",
        include_str!("helpers/debian/lava-add-keys"),
    ),
    (
        "lava-add-sources",
        include_str!("helpers/debian/lava-add-sources"),
    ),
    (
        "lava-install-packages",
        include_str!("helpers/debian/lava-install-packages"),
    ),
    (
        "lava-installed-packages",
        include_str!("helpers/debian/lava-installed-packages"),
    ),
    (
        "lava-os-build",
        include_str!("helpers/debian/lava-os-build"),
    ),
];

const FEDORA: &[(&str, &str)] = &[
    (
        "lava-install-packages",
        include_str!("helpers/fedora/lava-install-packages"),
    ),
    (
        "lava-installed-packages",
        include_str!("helpers/fedora/lava-installed-packages"),
    ),
    (
        "lava-os-build",
        include_str!("helpers/fedora/lava-os-build"),
    ),
];

const OE: &[(&str, &str)] = &[
    (
        "lava-install-packages",
        include_str!("helpers/oe/lava-install-packages"),
    ),
    (
        "lava-installed-packages",
        include_str!("helpers/oe/lava-installed-packages"),
    ),
];

/// The distribution-specific helpers for a distribution LAVA knows (`distro` of its
/// deployment data).
fn distro_helpers(distro: &str) -> &'static [(&'static str, &'static str)] {
    match distro {
        "debian" | "ubuntu" | "apertis" => DEBIAN,
        "fedora" | "centos" => FEDORA,
        "oe" => OE,
        _ => &[],
    }
}

/// The names of every helper, sorted.
#[cfg(test)]
pub fn names() -> Vec<&'static str> {
    GENERIC.iter().map(|(name, _)| *name).collect()
}

/// `bin/`'s files for a board: name → content, each starting `#!SHELL`.
pub fn bin_files(sh_cmd: &str, distro: Option<&str>, device: &Value) -> Vec<(String, String)> {
    let overrides = distro.map(distro_helpers).unwrap_or(&[]);
    GENERIC
        .iter()
        .map(|(name, generic)| {
            let body = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map_or(*generic, |(_, body)| *body);
            let facts = facts_for(name, device);
            (name.to_string(), format!("#!{sh_cmd}\n\n{facts}{body}"))
        })
        .collect()
}

/// The lines a helper that prints board facts starts with.
fn facts_for(name: &str, device: &Value) -> String {
    let text = |pointer: &str| {
        device
            .pointer(pointer)
            .map(crate::data::text)
            .unwrap_or_default()
    };
    let probe = |key: &str| {
        device
            .get("static_info")
            .and_then(Value::as_array)
            .and_then(|infos| {
                infos
                    .iter()
                    .find(|i| i.get("probe_channel").is_some() && i.get("probe_ip").is_some())
            })
            .and_then(|info| info.get(key))
            .map(crate::data::text)
            .unwrap_or_default()
    };
    match name {
        "lava-target-mac" => assign(
            "TARGET_DEVICE_MAC",
            &text("/parameters/interfaces/target/mac"),
        ),
        "lava-target-ip" => assign(
            "TARGET_DEVICE_IP",
            &text("/parameters/interfaces/target/ip"),
        ),
        "lava-probe-ip" => assign("PROBE_DEVICE_IP", &probe("probe_ip")),
        "lava-probe-channel" => assign("PROBE_DEVICE_CHANNEL", &probe("probe_channel")),
        "lava-target-storage" => {
            // `\t` and `\n` stay escapes: the helper hands the value to printf.
            let mut storage = String::new();
            if let Some(infos) = device.get("storage_info").and_then(Value::as_array) {
                for info in infos.iter().filter_map(Value::as_object) {
                    for (method, id) in info {
                        let id = crate::data::text(id);
                        storage.push_str(&format!("\\t{method}\\t{id}\\n"));
                    }
                }
            }
            format!(
                "LAVA_STORAGE=\"{}\"\n",
                storage.replace(['"', '`', '$'], "")
            )
        }
        _ => String::new(),
    }
}

fn assign(name: &str, value: &str) -> String {
    format!(
        "{name}={}\n",
        crate::dispatcher::shell::single_quoted(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_overlay_has_every_helper_lava_ships() {
        assert_eq!(
            names(),
            [
                "lava-add-keys",
                "lava-add-sources",
                "lava-background-process-start",
                "lava-background-process-stop",
                "lava-common-functions",
                "lava-echo-ipv4",
                "lava-install-packages",
                "lava-installed-packages",
                "lava-os-build",
                "lava-probe-channel",
                "lava-probe-ip",
                "lava-target-ip",
                "lava-target-mac",
                "lava-target-storage",
                "lava-test-case",
                "lava-test-event",
                "lava-test-feedback",
                "lava-test-raise",
                "lava-test-reference",
                "lava-test-runner",
                "lava-test-set",
                "lava-test-shell",
            ]
        );
    }

    #[test]
    fn helpers_start_with_the_devices_shell_and_carry_its_facts() {
        let device = json!({
            "parameters": {"interfaces": {"target": {"ip": "10.0.0.5", "mac": "52:54:00:12:34:56"}}},
            "static_info": [{"board_id": "x"}, {"probe_channel": "1", "probe_ip": "10.0.0.9"}],
            "storage_info": [{"SATA": "/dev/disk/by-id/ata-1"}],
        });
        let files = bin_files("/bin/bash", Some("debian"), &device);
        let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(files
            .iter()
            .all(|(_, body)| body.starts_with("#!/bin/bash\n\n")));
        assert!(file("lava-target-ip").contains("TARGET_DEVICE_IP='10.0.0.5'\n"));
        assert!(file("lava-target-mac").contains("TARGET_DEVICE_MAC='52:54:00:12:34:56'\n"));
        assert!(file("lava-probe-ip").contains("PROBE_DEVICE_IP='10.0.0.9'\n"));
        assert!(file("lava-probe-channel").contains("PROBE_DEVICE_CHANNEL='1'\n"));
        assert!(file("lava-target-storage")
            .contains("LAVA_STORAGE=\"\\tSATA\\t/dev/disk/by-id/ata-1\\n\"\n"));
        assert!(file("lava-install-packages").contains("apt-get install"));
        let generic = bin_files("/bin/sh", None, &json!({}));
        let install = &generic
            .iter()
            .find(|(n, _)| n == "lava-install-packages")
            .unwrap()
            .1;
        assert!(install.contains("unsupported distro"));
    }
}
