//! Basalt's own device-type templates (`device-types/`): each renders on its own, and every
//! LAVA test dictionary whose type we ship renders against ours into a configuration the
//! validator accepts, in the shape the dispatcher reads.

use std::path::{Path, PathBuf};

mod common;

use basalt::device::{validate, DeviceConfig, Severity};
use basalt::template::{extends_target, SearchPath, TemplateEngine};
use serde_json::{json, Value};

fn ours() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-types")
}

fn assert_valid(name: &str, config: &Value) {
    let errors: Vec<String> = validate(config)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    DeviceConfig::from_value(config).unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn every_shipped_template_renders_alone_into_a_valid_configuration() {
    let engine = TemplateEngine::new(SearchPath::new(vec![ours()]));
    let mut names: Vec<String> = std::fs::read_dir(ours())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jinja2"))
        .collect();
    names.sort();
    for required in [
        "base.jinja2",
        "base-uboot.jinja2",
        "base-fastboot.jinja2",
        "qemu.jinja2",
        "qemu-aarch64.jinja2",
        "beaglebone-black.jinja2",
        "bcm2711-rpi-4-b.jinja2",
        "imx8mq-evk.jinja2",
        "x86.jinja2",
        "dragonboard-410c.jinja2",
        "hi6220-hikey.jinja2",
        "qemu-x86-uboot.jinja2",
    ] {
        assert!(names.iter().any(|n| n == required), "{required} missing");
    }
    for name in &names {
        let context = json!({"scheduled_device_name": "dut", "scheduled_device_type": name.trim_end_matches(".jinja2")});
        let rendered = engine
            .render(name, &context)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_valid(name, &rendered.config);
    }
}

#[test]
fn lava_dictionaries_of_our_types_render_against_our_templates() {
    let Some(fixtures) = common::lava_fixtures() else {
        return;
    };
    let lava = fixtures.join("devices");
    let engine = TemplateEngine::new(SearchPath::new(vec![lava.clone(), ours()]));
    let mut rendered_count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&lava)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let source = std::fs::read_to_string(&path).unwrap();
        let Some(target) = extends_target(&source) else {
            continue;
        };
        if !ours().join(&target).is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let context = json!({
            "scheduled_device_name": path.file_stem().unwrap().to_str().unwrap(),
            "scheduled_device_type": target.trim_end_matches(".jinja2"),
        });
        let rendered = engine
            .render(name, &context)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_valid(name, &rendered.config);
        rendered_count += 1;
    }
    assert!(
        rendered_count >= 20,
        "expected the qemu, x86, beaglebone-black, imx8mq-evk, dragonboard-410c and hikey \
         dictionaries to use our templates, only {rendered_count} did"
    );
}

#[test]
fn dictionary_values_reach_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bbb-lab1.jinja2"),
        "{% extends 'beaglebone-black.jinja2' %}\n\
         {% set connection_list = ['uart0', 'uart1'] %}\n\
         {% set connection_commands = {'uart0': 'telnet ser2net 7001', 'uart1': 'telnet ser2net 7002'} %}\n\
         {% set connection_tags = {'uart0': ['primary', 'telnet']} %}\n\
         {% set power_on_command = ['relay 3 on', 'sleep 1'] %}\n\
         {% set power_off_command = 'relay 3 off' %}\n\
         {% set console_device = 'ttyO0' %}\n\
         {% set bootz_kernel_addr = '0x81000000' %}\n",
    )
    .unwrap();
    let engine = TemplateEngine::new(SearchPath::new(vec![dir.path().to_path_buf(), ours()]));
    let config = engine
        .render(
            "bbb-lab1.jinja2",
            &json!({"scheduled_device_name": "bbb-lab1", "scheduled_device_type": "beaglebone-black"}),
        )
        .unwrap()
        .config;
    assert_valid("bbb-lab1", &config);
    assert_eq!(config["hostname"], "bbb-lab1");
    assert_eq!(
        config["commands"]["connections"]["uart0"],
        json!({"connect": "telnet ser2net 7001", "tags": ["primary", "telnet"]})
    );
    assert_eq!(
        config["commands"]["connections"]["uart1"]["tags"],
        json!([])
    );
    assert_eq!(
        config["commands"]["power_on"],
        json!(["relay 3 on", "sleep 1"])
    );
    assert_eq!(config["parameters"]["bootz"]["kernel"], "0x81000000");
    assert_eq!(config["parameters"]["bootm"]["kernel"], "0x82000000");
    let ramdisk = &config["actions"]["boot"]["methods"]["u-boot"]["ramdisk"]["commands"];
    let commands: Vec<&str> = ramdisk
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(commands.last(), Some(&"{BOOTX}"));
    assert!(commands.contains(&"setenv bootargs 'console=ttyO0,115200n8 root=/dev/ram0 ip=dhcp'"));
}

#[test]
fn qemu_follows_the_job_architecture() {
    let engine = TemplateEngine::new(SearchPath::new(vec![ours()]));
    let render = |template: &str, context: Value| {
        engine.render(template, &context).unwrap().config["actions"]["boot"]["methods"]["qemu"]
            ["parameters"]
            .clone()
    };
    let x86 = render("qemu.jinja2", json!({}));
    assert_eq!(x86["command"], "qemu-system-x86_64");
    assert!(x86["options"]
        .as_array()
        .unwrap()
        .contains(&json!("-enable-kvm")));
    let arm = render("qemu.jinja2", json!({"arch": "arm64"}));
    assert_eq!(arm["command"], "qemu-system-aarch64");
    assert_eq!(arm["boot_options"]["console"], "ttyAMA0,115200");
    assert!(!arm["options"]
        .as_array()
        .unwrap()
        .contains(&json!("-enable-kvm")));
    let aarch64 = render("qemu-aarch64.jinja2", json!({}));
    assert_eq!(aarch64["command"], "qemu-system-aarch64");
    let tcg = render("qemu.jinja2", json!({"no_kvm": true}));
    assert!(!tcg["options"]
        .as_array()
        .unwrap()
        .contains(&json!("-enable-kvm")));
}

#[test]
fn an_x86_uboot_board_boots_with_zboot_and_its_pdu_comes_from_the_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("uboot-01.jinja2"),
        "{% extends 'qemu-x86-uboot.jinja2' %}\n\
         {% set connection_command = 'telnet 127.0.0.1 18001' %}\n\
         {% set pdu_hostname = 'lab-pdu' %}\n\
         {% set pdu_port = 1 %}\n\
         {% set pdu_daemon_url = 'http://127.0.0.1:18421' %}\n\
         {% set base_ip_args = '' %}\n",
    )
    .unwrap();
    let engine = TemplateEngine::new(SearchPath::new(vec![dir.path().to_path_buf(), ours()]));
    let config = engine
        .render(
            "uboot-01.jinja2",
            &json!({"scheduled_device_name": "uboot-01", "scheduled_device_type": "qemu-x86-uboot"}),
        )
        .unwrap()
        .config;
    assert_valid("uboot-01", &config);
    assert_eq!(
        config["power"],
        json!({"driver": "pdudaemon", "url": "http://127.0.0.1:18421", "hostname": "lab-pdu", "port": "1"})
    );
    let commands: Vec<&str> = config["actions"]["boot"]["methods"]["u-boot"]["ramdisk"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        commands.last(),
        Some(&"zboot {KERNEL_ADDR} 0 {RAMDISK_ADDR} ${initrd_size}")
    );
    assert!(commands.contains(&"setenv bootargs 'console=ttyS0,115200n8 root=/dev/ram0'"));
    assert!(commands.contains(&"tftp {KERNEL_ADDR} {KERNEL}"));
    // Without pdu_hostname there is no power: mapping (the power commands apply).
    assert!(engine
        .render(
            "beaglebone-black.jinja2",
            &json!({"scheduled_device_name": "b", "scheduled_device_type": "beaglebone-black"}),
        )
        .unwrap()
        .config
        .get("power")
        .is_none());
}

/// Our depthcharge and barebox types give LAVA's test boards what LAVA's own templates give
/// them: the boot method's section (each command and command line, down to a double space),
/// the deploy parameters (FIT architecture), the load address, and every constant LAVA's base
/// sets (bootloader prompts, final and error messages of every method).
#[test]
fn the_depthcharge_and_barebox_boards_render_as_lavas_templates_render_them() {
    let Some(fixtures) = common::lava_fixtures() else {
        return;
    };
    let engine = TemplateEngine::new(SearchPath::new(vec![fixtures.join("devices"), ours()]));
    for (device, device_type, pointers) in [
        (
            "rk3288-veyron-jaq-01",
            "rk3288-veyron-jaq",
            &[
                "/actions/boot/methods/depthcharge",
                "/actions/deploy/parameters",
                "/parameters/load_address",
            ][..],
        ),
        (
            "bbb-03-barebox",
            "beaglebone-black-barebox",
            &[
                "/actions/boot/methods/barebox",
                "/actions/deploy/parameters",
            ][..],
        ),
    ] {
        let ours = engine
            .render(
                &format!("{device}.jinja2"),
                &json!({"scheduled_device_name": device, "scheduled_device_type": device_type}),
            )
            .unwrap()
            .config;
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join(format!("expected/{device}.json"))).unwrap(),
        )
        .unwrap();
        let lava = &expected["config"];
        for pointer in pointers {
            assert_eq!(
                ours.pointer(pointer),
                lava.pointer(pointer),
                "{device}: {pointer}"
            );
        }
        for (key, value) in lava["constants"].as_object().unwrap() {
            assert_eq!(&ours["constants"][key], value, "{device}: constants.{key}");
        }
    }
}

/// Our GRUB family gives an x86 GRUB board what LAVA's `base-grub` and `d2500cc` give it,
/// for the settings that change GRUB's commands: the default board, a named card, EFI GRUB
/// with a configured card, with `efinet` and with a static address, a dtb, a job's kernel
/// arguments and a fixed console.
#[test]
fn grub_boards_render_as_lavas_templates_render_them() {
    let Some(fixtures) = common::lava_fixtures() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let variants = [
        "",
        "{% set net_interface = 'efinet1' %}",
        "{% set efi_grub = True %}",
        "{% set efi_grub = True %}{% set efinet = True %}{% set pxe_net_configured = False %}",
        "{% set efi_grub = True %}{% set static_ip = '10.1.1.9' %}{% set static_gateway = '10.1.1.1' %}\
         {% set static_netmask = '255.255.255.0' %}{% set static_dns = '10.1.1.2' %}",
        "{% set has_dtb = True %}{% set console_device = 'ttyS0' %}{% set baud_rate = 9600 %}",
        "{% set efinet = True %}{% set static_ip = '10.1.1.9' %}{% set static_gateway = '10.1.1.1' %}\
         {% set static_netmask = '255.255.255.0' %}{% set static_dns = '10.1.1.2' %}{% set has_dtb = True %}",
        "{% set extra_kernel_args = 'quiet loglevel=3' %}{% set has_nodebooter = True %}",
        "{% set grub_installed_device = '(hd0,gpt2)' %}{% set grub_needs_interrupt = False %}",
    ];
    for device_type in ["base-grub", "d2500cc"] {
        for (n, settings) in variants.iter().enumerate() {
            let name = format!("{device_type}-{n}");
            std::fs::write(
                dir.path().join(format!("{name}.jinja2")),
                format!("{{% extends '{device_type}.jinja2' %}}\n{settings}\n"),
            )
            .unwrap();
            let context =
                json!({"scheduled_device_name": name, "scheduled_device_type": device_type});
            let render = |types: PathBuf| {
                TemplateEngine::new(SearchPath::new(vec![dir.path().to_path_buf(), types]))
                    .render(&format!("{name}.jinja2"), &context)
                    .unwrap()
                    .config
            };
            let ours = render(ours());
            let lava = render(fixtures.join("device-types"));
            assert_valid(&name, &ours);
            for pointer in [
                "/actions/boot/methods",
                "/actions/deploy/methods",
                "/constants/grub",
                "/constants/grub-efi",
            ] {
                assert_eq!(
                    ours.pointer(pointer),
                    lava.pointer(pointer),
                    "{name} ({settings}): {pointer}"
                );
            }
        }
    }
}
