//! u-boot's own placeholders: the load addresses of the boot command LAVA picks from the
//! kernel's type (`bootz`, `booti`, `bootm`) and `{BOOTX}`, the boot command itself.

use basalt_plugin_api::bootloader::Substitutions;
use serde_json::Value;

/// Adds `{BOOTX}`, `{KERNEL_ADDR}`, `{RAMDISK_ADDR}`, `{DTB_ADDR}` and `{TEE_ADDR}` to the
/// common substitutions, from the host's `_kernel_type` and `_add_header` in the boot action
/// and the device's `parameters` (load addresses per boot command).
pub fn add_boot_command(subs: &mut Substitutions, action: &Value, parameters: Option<&Value>) {
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
    let has_ramdisk = subs.get("{RAMDISK}").is_some();
    // As LAVA: a ramdisk with a u-boot header carries its size; a raw one needs
    // `:${initrd_size}`; with neither header setting the ramdisk is not passed.
    let ramdisk_arg = match (
        has_ramdisk,
        action.get("_add_header").and_then(Value::as_str),
    ) {
        (true, Some("u-boot")) => Some(ramdisk.clone()),
        (true, Some("raw")) => Some(format!("{ramdisk}:${{initrd_size}}")),
        _ => None,
    };
    let has_dtb = subs.get("{DTB}").is_some();
    let bootx = match (ramdisk_arg, has_dtb) {
        (Some(ramdisk), true) => format!("{kind} {kernel} {ramdisk} {dtb}"),
        (Some(ramdisk), false) => format!("{kind} {kernel} {ramdisk}"),
        (None, true) => format!("{kind} {kernel} - {dtb}"),
        (None, false) => format!("{kind} {kernel}"),
    };
    subs.set("{BOOTX}", Some(bootx));
    subs.set("{KERNEL_ADDR}", Some(kernel));
    subs.set("{DTB_ADDR}", Some(dtb));
    subs.set("{RAMDISK_ADDR}", Some(ramdisk));
    subs.set("{TEE_ADDR}", Some(address("tee")));
}

/// Every placeholder a u-boot command set can use, filled for this boot.
pub fn substitutions(
    action: &Value,
    parameters: Option<&Value>,
    lava_mac: Option<String>,
) -> Substitutions {
    let mut subs = Substitutions::for_boot(action, lava_mac);
    add_boot_command(&mut subs, action, parameters);
    subs
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_plugin_api::bootloader::Missing;
    use serde_json::json;

    #[test]
    fn placeholders_fill_and_missing_files_drop_their_commands() {
        let action = json!({
            "_deployed": {"kernel": "1/kernel-zImage", "dtb": "1/dtb-am335x-boneblack.dtb"},
            "_server_ip": "10.0.0.1",
        });
        let parameters = json!({"bootz": {"kernel": "0x82000000", "ramdisk": "0x83000000", "dtb": "0x88000000"}});
        let subs = substitutions(&action, Some(&parameters), None);
        let commands: Vec<String> = [
            "tftp {KERNEL_ADDR} {KERNEL}",
            "tftp {RAMDISK_ADDR} {RAMDISK}",
            "setenv serverip {SERVER_IP}",
            "{BOOTX}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            subs.apply(&commands, Missing::DropCommand),
            [
                "tftp 0x82000000 1/kernel-zImage",
                "setenv serverip 10.0.0.1",
                "bootz 0x82000000 - 0x88000000"
            ]
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
            let subs = substitutions(&action, Some(&parameters), None);
            assert_eq!(subs.get("{BOOTX}"), Some(expected));
        }
    }
}
