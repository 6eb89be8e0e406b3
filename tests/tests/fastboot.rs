//! LAVA's HiKey sample job (`docs__hi6220-hikey.yaml`: five images flashed with fastboot, two
//! of them followed by a hard reset, then `boot: method: fastboot`) run by `basalt run` with
//! Debian's real fastboot client against a simulated board: `simfastboot` speaks fastboot over
//! TCP (`fastboot_serial_number: tcp:127.0.0.1:PORT`) and `simboard` is its console. The
//! sample's docker blocks are dropped (the client is the worker's) and its Android test is
//! replaced by a shell test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use basalt_e2e::{case, lava_fixtures, results, test_program, tool_available, Basalt, TestDir};
use serde_json::{json, Value};

/// Kills the simulated fastboot device when the test ends.
struct Device(Child);

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_device(dir: &TestDir, power: &Path) -> (Device, u16) {
    let fastboot = dir.mkdir("fastboot");
    let port_file = fastboot.join("port");
    let child = Command::new(test_program("simfastboot"))
        .arg("--dir")
        .arg(&fastboot)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--power")
        .arg(power)
        .spawn()
        .expect("simfastboot starts");
    let device = Device(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return (device, port);
        }
        assert!(Instant::now() < deadline, "simfastboot wrote no port");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each image's content: the boot image is an Android one (the client checks `ANDROID!`).
fn image_bytes(name: &str) -> Vec<u8> {
    let mut bytes = if name == "boot" {
        b"ANDROID!".to_vec()
    } else {
        format!("{name} partition of the simulated HiKey\n").into_bytes()
    };
    bytes.extend((0..6000u32).map(|i| (i % 251) as u8));
    bytes
}

/// The sample with local images (xz where it says so), no docker, and a shell test.
fn job_for(lava: &Path, dir: &TestDir) -> (PathBuf, Value) {
    let text = std::fs::read_to_string(lava.join("jobs/docs__hi6220-hikey.yaml")).unwrap();
    let mut job = basalt::yaml11::from_str(&text).unwrap();
    let mut actions = Vec::new();
    for action in job["actions"].as_array().unwrap() {
        if let Some(deploy) = action.get("deploy") {
            let mut deploy = deploy.clone();
            deploy.as_object_mut().unwrap().remove("docker");
            for (name, image) in deploy["images"].as_object_mut().unwrap() {
                let image = image.as_object_mut().unwrap();
                let raw = dir.write(&format!("images/{name}.img"), image_bytes(name));
                let path = if image.get("compression").and_then(Value::as_str) == Some("xz") {
                    let status = Command::new("xz").arg("-kf").arg(&raw).status().unwrap();
                    assert!(status.success());
                    raw.with_extension("img.xz")
                } else {
                    raw
                };
                // The sample's checksum is of its own image.
                image.remove("sha256sum");
                image.insert("url".into(), json!(format!("file://{}", path.display())));
            }
            actions.push(json!({"deploy": deploy}));
        } else if let Some(boot) = action.get("boot") {
            let mut boot = boot.clone();
            boot.as_object_mut().unwrap().remove("docker");
            boot["prompts"] = json!(["root@hikey:~# "]);
            boot["auto_login"] = json!({"login_prompt": "login: ", "username": "root"});
            boot["timeout"] = json!({"minutes": 2});
            actions.push(json!({"boot": boot}));
        }
    }
    actions.push(json!({"test": {
        "timeout": {"minutes": 2},
        "definitions": [{
            "from": "inline", "name": "after-fastboot", "path": "inline/after.yaml",
            "repository": {
                "metadata": {"format": "Lava-Test Test Definition 1.0", "name": "after-fastboot"},
                "run": {"steps": ["lava-test-case booted --result pass"]},
            },
        }],
    }}));
    job["actions"] = Value::Array(actions);
    job["timeouts"] = json!({"job": {"minutes": 5}, "action": {"minutes": 2}});
    let mut yaml = String::new();
    for (key, value) in job.as_object().unwrap() {
        yaml.push_str(&format!("{key}: {value}\n"));
    }
    (dir.write("job.yaml", yaml), job)
}

/// A HiKey whose fastboot serial is the simulated device. A hard reset leaves the board in
/// fastboot mode, silent on its console; the fastboot device's boot and reboot power it on.
fn dictionary(dir: &TestDir, state: &Path, power: &Path, port: u16) -> PathBuf {
    dir.write(
        "hikey-01.jinja2",
        format!(
            "{{% extends 'hi6220-hikey.jinja2' %}}
{{% set fastboot_serial_number = 'tcp:127.0.0.1:{port}' %}}
{{% set connection_command = '{simboard} --state {state} --hostname hikey' %}}
{{% set hard_reset_command = 'echo off > {power}' %}}
{{% set power_on_command = 'echo off > {power}' %}}
{{% set power_off_command = 'echo off > {power}' %}}
{{% set lava_test_results_dir = '{dir}/lava-%s' %}}
",
            simboard = test_program("simboard").display(),
            state = state.display(),
            power = power.display(),
            dir = dir.path().display(),
        ),
    )
}

#[test]
fn lavas_hikey_sample_flashes_every_image_and_boots_with_the_real_fastboot_client() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    if !tool_available("fastboot") {
        return;
    }
    let dir = TestDir::new();
    let state = dir.mkdir("board");
    let power = state.join("power");
    let (_device, port) = start_device(&dir, &power);
    let (job_file, job) = job_for(&lava, &dir);
    let dictionary = dictionary(&dir, &state, &power, port);
    let out = dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--device"])
        .arg(&dictionary)
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(&job_file)
        .timeout(Duration::from_secs(240))
        .run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    let commands =
        std::fs::read_to_string(dir.path().join("fastboot/fastboot.log")).unwrap_or_default();
    assert!(output.status.success(), "{output}\n{log}\n{commands}");
    // Every image reached its partition byte for byte (xz ones decompressed first).
    let images = job["actions"][0]["deploy"]["images"].as_object().unwrap();
    for name in images.keys() {
        let flashed = std::fs::read(dir.path().join("fastboot/partitions").join(name))
            .unwrap_or_else(|e| panic!("{name} was not flashed ({e})\n{commands}"));
        assert_eq!(flashed, image_bytes(name), "{name}");
    }
    // In the device type's flash_cmds_order, each flash its own download, and the boot
    // image booted with `fastboot boot`.
    let flashes: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.strip_prefix("flash:"))
        .collect();
    assert_eq!(flashes, ["ptable", "boot", "cache", "system", "userdata"]);
    assert!(commands.lines().any(|l| l == "boot"), "{commands}");
    assert_eq!(
        std::fs::read(dir.path().join("fastboot/booted-image")).unwrap(),
        image_bytes("boot")
    );
    // LAVA's command lines: the serial first, the device's options after the command.
    assert!(
        log.contains(&format!(
            "fastboot: fastboot -s tcp:127.0.0.1:{port} flash ptable "
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("fastboot: fastboot -s tcp:127.0.0.1:{port} boot ")),
        "{log}"
    );
    let results = results(&out);
    assert_eq!(
        case(&results, "0_after-fastboot", "booted")["result"],
        "pass"
    );
}

/// A partition the board refuses (its fastboot answers FAIL) ends the job Incomplete with
/// the flash named, before anything boots.
#[test]
fn a_partition_the_board_refuses_fails_the_deploy_naming_it() {
    if lava_fixtures().is_none() || !tool_available("fastboot") {
        return;
    }
    let dir = TestDir::new();
    let state = dir.mkdir("board");
    let power = state.join("power");
    let (_device, port) = start_device(&dir, &power);
    let image = dir.write("images/odd.img", image_bytes("odd"));
    let job = dir.write(
        "job.yaml",
        format!(
            "job_name: refused partition
device_type: hi6220-hikey
visibility: public
timeouts: {{job: {{minutes: 2}}, action: {{minutes: 1}}}}
actions:
- deploy:
    to: fastboot
    images:
      'no such partition': {{url: 'file://{}'}}
",
            image.display()
        ),
    );
    let out = dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--device"])
        .arg(dictionary(&dir, &state, &power, port))
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(&job)
        .timeout(Duration::from_secs(120))
        .run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("Unable to flash"), "{log}");
    assert!(log.contains("bad partition name"), "{log}");
    assert!(!dir.path().join("fastboot/partitions").exists());
}
