//! `basalt device-types` and `basalt devices`: rendering and checking dictionaries as an
//! admin would, with the shipped templates and with templates dropped into a directory.

use basalt_e2e::{Basalt, TestDir};

const BBB: &str = "{% extends 'beaglebone-black.jinja2' %}
{% set connection_command = 'telnet localhost 7001' %}
{% set power_on_command = '/bin/true' %}
{% set power_off_command = '/bin/true' %}
{% set hard_reset_command = '/bin/true' %}
";

#[test]
fn render_prints_yaml_or_the_parsed_configuration() {
    let dir = TestDir::new();
    let dict = dir.write("bbb-07.jinja2", BBB);
    let yaml = Basalt::new(["devices", "render"])
        .arg(&dict)
        .run()
        .success();
    assert!(yaml.stdout.contains("hostname: 'bbb-07'"), "{yaml}");
    assert!(
        yaml.stdout.contains("connect: telnet localhost 7001"),
        "{yaml}"
    );
    let json = Basalt::new(["devices", "render", "--format", "json"])
        .arg(&dict)
        .run()
        .success();
    let config = json.json();
    assert_eq!(config["devicetype"], "beaglebone-black");
    assert_eq!(config["commands"]["power_on"], "/bin/true");
    assert!(config["actions"]["boot"]["methods"]["u-boot"].is_object());
}

#[test]
fn a_job_context_reaches_the_templates() {
    let dir = TestDir::new();
    let dict = dir.write("vm1.jinja2", "{% extends 'qemu.jinja2' %}\n");
    let job = dir.write(
        "job.yaml",
        "job_name: arm test\ndevice_type: qemu\ncontext:\n  arch: arm64\nactions: []\n",
    );
    let output = Basalt::new(["devices", "render", "--format", "json", "--context"])
        .arg(&job)
        .arg(&dict)
        .run()
        .success();
    assert_eq!(
        output.json()["actions"]["boot"]["methods"]["qemu"]["parameters"]["command"],
        "qemu-system-aarch64"
    );
}

#[test]
fn check_passes_a_good_dictionary_and_reads_the_board_live() {
    let dir = TestDir::new();
    let dict = dir.write(
        "bbb-08.jinja2",
        "{% extends 'beaglebone-black.jinja2' %}
{% set connection_command = \"sh -c 'echo U-Boot SPL; sleep 5'\" %}
{% set power_on_command = '/bin/true' %}
{% set power_off_command = '/bin/true' %}
",
    );
    let output = Basalt::new(["devices", "check", "--live", "--timeout", "10"])
        .arg(&dict)
        .run()
        .success();
    assert!(
        output.stdout.contains("ok: power: driver 'command'"),
        "{output}"
    );
    assert!(
        output
            .stdout
            .contains("ok: live power: the board is unknown"),
        "{output}"
    );
    assert!(
        output.stdout.contains("ok: live console: opened"),
        "{output}"
    );
    assert!(output.stdout.contains("ready"), "{output}");
    assert!(!output.stdout.contains("error:"), "{output}");
}

#[test]
fn check_reports_every_problem_with_its_path_and_fails() {
    let dir = TestDir::new();
    let dict = dir.write(
        "bbb-09.jinja2",
        "{% extends 'beaglebone-black.jinja2' %}
{% set connection_list = ['uart0'] %}
{% set power_on_command = '/bin/true' %}
{% set deploy_character_delay = 'slow' %}
",
    );
    let output = Basalt::new(["devices", "check"]).arg(&dict).run().failure();
    assert!(
        output
            .stdout
            .contains("error: commands.connections.uart0.connect: must be the console command; set connection_commands['uart0'] in the device dictionary (found nothing)"),
        "{output}"
    );
    assert!(
        output.stdout.contains("error: character_delays.deploy"),
        "{output}"
    );
    assert!(
        output
            .stdout
            .contains("warning: commands: has only one of power_on and power_off"),
        "{output}"
    );
    assert!(output.stdout.contains("2 error(s)"), "{output}");
}

#[test]
fn an_unknown_device_type_says_where_to_drop_the_template() {
    let dir = TestDir::new();
    let types = dir.mkdir("admin-types");
    let dict = dir.write("x1.jinja2", "{% extends 'acme-board.jinja2' %}\n");
    let output = Basalt::new(["devices", "check", "--device-types"])
        .arg(&types)
        .arg(&dict)
        .run()
        .failure();
    assert!(
        output
            .stdout
            .contains("device type acme-board has no template: drop acme-board.jinja2 into"),
        "{output}"
    );
    assert!(output.stdout.contains("admin-types"), "{output}");

    // Dropping the template in makes the same dictionary work, with no restart of anything.
    std::fs::write(
        types.join("acme-board.jinja2"),
        "{% extends 'base-uboot.jinja2' %}\n{% set kernel_addr = '0x1000' %}\n\
         {% set ramdisk_addr = '0x2000' %}\n{% set dtb_addr = '0x3000' %}\n",
    )
    .unwrap();
    let output = Basalt::new(["devices", "render", "--format", "json", "--device-types"])
        .arg(&types)
        .arg(&dict)
        .run()
        .success();
    assert_eq!(output.json()["parameters"]["bootz"]["kernel"], "0x1000");
}

#[test]
fn device_types_list_shows_overrides_and_reports_broken_templates() {
    let dir = TestDir::new();
    let types = dir.mkdir("admin-types");
    std::fs::write(
        types.join("qemu.jinja2"),
        "{% extends 'base.jinja2' %}\n{# the lab's own qemu #}\n",
    )
    .unwrap();
    std::fs::write(
        types.join("broken-board.jinja2"),
        "{% extends 'base.jinja2' %}\n{% set x = %}\n",
    )
    .unwrap();
    let output = Basalt::new(["device-types", "list", "--format", "json", "--device-types"])
        .arg(&types)
        .run()
        .failure();
    let list = output.json();
    let entry = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed:\n{output}"))
    };
    assert!(entry("qemu")["file"]
        .as_str()
        .unwrap()
        .contains("admin-types"));
    assert_eq!(entry("qemu")["overrides"].as_array().unwrap().len(), 1);
    assert!(entry("beaglebone-black")["error"].is_null());
    let error = entry("broken-board")["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("broken-board.jinja2:2:"), "{error}");
    assert!(
        output
            .stderr
            .contains("broken-board.jinja2: broken-board.jinja2:2: syntax error"),
        "{output}"
    );

    let show = Basalt::new(["device-types", "show", "qemu-aarch64"])
        .run()
        .success();
    assert!(
        show.stdout
            .contains("extends: qemu-aarch64 -> qemu -> base"),
        "{show}"
    );
    assert!(show.stdout.contains("valid configuration"), "{show}");
}

/// `basalt device-types list | head` with head gone: the command ends quietly (SIGPIPE, as
/// `ls` does), without a panic and a backtrace on the terminal.
#[test]
fn a_report_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let output = std::process::Command::new(basalt_e2e::basalt_bin())
        .args(["device-types", "list"])
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(output.status.signal(), Some(13), "{:?}", output.status);
}
