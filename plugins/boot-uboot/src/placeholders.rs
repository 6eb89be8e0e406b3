//! Filling the `{PLACEHOLDERS}` of u-boot command sets from what the job deployed.

use std::collections::HashMap;

use serde_json::Value;

/// What a boot can refer to: deployed files, load addresses, the server's address.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    values: HashMap<&'static str, String>,
}

/// Placeholders that stand for an optional deployed file: a command using one that was not
/// deployed is dropped (no `tftp {RAMDISK_ADDR} {RAMDISK}` without a ramdisk).
const OPTIONAL: &[(&str, &str)] = &[
    ("{RAMDISK}", "ramdisk"),
    ("{DTB}", "dtb"),
    ("{TEE}", "tee"),
    ("{NFSROOTFS}", "nfsrootfs"),
];

impl Deployment {
    /// Reads the host's `_deployed`, `_server_ip` and `_kernel_type` from the boot action and
    /// the load addresses from the device's `parameters`.
    pub fn from_action(action: &Value, parameters: Option<&Value>) -> Self {
        let mut values = HashMap::new();
        let deployed = action.get("_deployed").and_then(Value::as_object);
        let path = |key: &str| {
            deployed
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        for (placeholder, key) in [
            ("{KERNEL}", "kernel"),
            ("{RAMDISK}", "ramdisk"),
            ("{DTB}", "dtb"),
            ("{TEE}", "tee"),
        ] {
            // The host gives TFTP files as paths relative to the TFTP root.
            if let Some(p) = path(key) {
                values.insert(placeholder, p);
            }
        }
        if let Some(p) = path("nfsrootfs") {
            values.insert("{NFSROOTFS}", p);
        }
        let server = action
            .get("_server_ip")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1")
            .to_owned();
        values.insert("{SERVER_IP}", server.clone());
        values.insert("{NFS_SERVER_IP}", server);
        values.insert("{ROOT}", "/dev/mmcblk0p2".into());
        values.insert("{ROOT_PART}", "1".into());
        let kind = match action.get("_kernel_type").and_then(Value::as_str) {
            Some("image") => "booti",
            Some("uimage") => "bootm",
            _ => "bootz",
        };
        let address = |part: &str| {
            parameters
                .and_then(|p| p.pointer(&format!("/{kind}/{part}")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (kernel, ramdisk, dtb) = (address("kernel"), address("ramdisk"), address("dtb"));
        // As LAVA: a ramdisk with a u-boot header carries its size; a raw one needs
        // `:${initrd_size}`; with neither header setting the ramdisk is not passed.
        let ramdisk_arg = match (
            values.contains_key("{RAMDISK}"),
            action.get("_add_header").and_then(Value::as_str),
        ) {
            (true, Some("u-boot")) => Some(ramdisk.clone()),
            (true, Some("raw")) => Some(format!("{ramdisk}:${{initrd_size}}")),
            _ => None,
        };
        let bootx = match (ramdisk_arg, values.contains_key("{DTB}")) {
            (Some(ramdisk), true) => format!("{kind} {kernel} {ramdisk} {dtb}"),
            (Some(ramdisk), false) => format!("{kind} {kernel} {ramdisk}"),
            (None, true) => format!("{kind} {kernel} - {dtb}"),
            (None, false) => format!("{kind} {kernel}"),
        };
        values.insert("{KERNEL_ADDR}", kernel);
        values.insert("{RAMDISK_ADDR}", ramdisk);
        values.insert("{DTB_ADDR}", dtb);
        values.insert("{TEE_ADDR}", address("tee"));
        values.insert("{BOOTX}", bootx);
        Self { values }
    }
}

/// Fills a command's placeholders, or drops it (`None`) when it needs a file that was not
/// deployed.
pub fn substitute(command: &str, deployment: &Deployment) -> Option<String> {
    for (placeholder, _) in OPTIONAL {
        if command.contains(placeholder) && !deployment.values.contains_key(placeholder) {
            return None;
        }
    }
    if command.contains("initrd_size") && !deployment.values.contains_key("{RAMDISK}") {
        return None;
    }
    let mut filled = command.to_owned();
    for (placeholder, value) in &deployment.values {
        filled = filled.replace(placeholder, value);
    }
    Some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_fill_and_missing_files_drop_their_commands() {
        let action = json!({
            "_deployed": {"kernel": "1/kernel-zImage", "dtb": "1/dtb-am335x-boneblack.dtb"},
            "_server_ip": "10.0.0.1",
        });
        let parameters = json!({"bootz": {"kernel": "0x82000000", "ramdisk": "0x83000000", "dtb": "0x88000000"}});
        let d = Deployment::from_action(&action, Some(&parameters));
        assert_eq!(
            substitute("tftp {KERNEL_ADDR} {KERNEL}", &d).unwrap(),
            "tftp 0x82000000 1/kernel-zImage"
        );
        assert_eq!(substitute("tftp {RAMDISK_ADDR} {RAMDISK}", &d), None);
        assert_eq!(substitute("setenv initrd_size ${filesize}", &d), None);
        assert_eq!(
            substitute("setenv serverip {SERVER_IP}", &d).unwrap(),
            "setenv serverip 10.0.0.1"
        );
        assert_eq!(
            substitute("{BOOTX}", &d).unwrap(),
            "bootz 0x82000000 - 0x88000000"
        );
    }

    /// LAVA's three ramdisk forms of `{BOOTX}`, by the device's `add_header`.
    #[test]
    fn the_boot_command_passes_the_ramdisk_as_its_header_says() {
        let parameters = json!({"bootz": {"kernel": "0x82000000", "ramdisk": "0x83000000", "dtb": "0x88000000"}});
        for (header, expected) in [
            (json!("u-boot"), "bootz 0x82000000 0x83000000 0x88000000"),
            (
                json!("raw"),
                "bootz 0x82000000 0x83000000:${initrd_size} 0x88000000",
            ),
            (Value::Null, "bootz 0x82000000 - 0x88000000"),
        ] {
            let action = json!({
                "_deployed": {"kernel": "1/kernel/zImage", "ramdisk": "1/ramdisk/ramdisk.cpio.gz.uboot", "dtb": "1/dtb/board.dtb"},
                "_add_header": header,
            });
            let d = Deployment::from_action(&action, Some(&parameters));
            assert_eq!(substitute("{BOOTX}", &d).unwrap(), expected);
        }
    }
}
