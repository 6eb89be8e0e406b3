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
    let (device, port, _) = start_simfastboot(dir, Some(power), false);
    (device, port)
}

/// `simfastboot` in `DIR/fastboot`, its console powered through `power`, and with `phone` a
/// phone running Android with adbd: the device, its fastboot port and its adb port.
fn start_simfastboot(dir: &TestDir, power: Option<&Path>, phone: bool) -> (Device, u16, u16) {
    let fastboot = dir.mkdir("fastboot");
    let port_file = fastboot.join("port");
    let adb_port_file = fastboot.join("adb-port");
    let mut command = Command::new(test_program("simfastboot"));
    command
        .arg("--dir")
        .arg(&fastboot)
        .arg("--port-file")
        .arg(&port_file);
    if let Some(power) = power {
        command.arg("--power").arg(power);
    }
    if phone {
        command.arg("--adb-port-file").arg(&adb_port_file);
    }
    let device = Device(command.spawn().expect("simfastboot starts"));
    let port = |file: &Path| -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(port) = std::fs::read_to_string(file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "simfastboot wrote no {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let fastboot_port = port(&port_file);
    let adb_port = if phone { port(&adb_port_file) } else { 0 };
    (device, fastboot_port, adb_port)
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

/// A sample with local images (xz or gz where it says so), its `docker:` blocks kept only
/// with `docker`, a login on a board called `hostname`, and a shell test.
fn job_for(
    lava: &Path,
    dir: &TestDir,
    sample: &str,
    hostname: &str,
    docker: bool,
) -> (PathBuf, Value) {
    let text = std::fs::read_to_string(lava.join("jobs").join(sample)).unwrap();
    let mut job = basalt::yaml11::from_str(&text).unwrap();
    let mut actions = Vec::new();
    for action in job["actions"].as_array().unwrap() {
        if let Some(deploy) = action.get("deploy") {
            let mut deploy = deploy.clone();
            if !docker {
                deploy.as_object_mut().unwrap().remove("docker");
            }
            for (name, image) in deploy["images"].as_object_mut().unwrap() {
                let image = image.as_object_mut().unwrap();
                let raw = dir.write(&format!("images/{name}.img"), image_bytes(name));
                let path = match image.get("compression").and_then(Value::as_str) {
                    Some(tool @ ("xz" | "gz")) => {
                        let program = if tool == "xz" { "xz" } else { "gzip" };
                        let status = Command::new(program).arg("-kf").arg(&raw).status().unwrap();
                        assert!(status.success());
                        raw.with_extension(format!("img.{tool}"))
                    }
                    _ => raw,
                };
                // The sample's checksum is of its own image.
                image.remove("sha256sum");
                image.insert("url".into(), json!(format!("file://{}", path.display())));
            }
            actions.push(json!({"deploy": deploy}));
        } else if let Some(boot) = action.get("boot") {
            let mut boot = boot.clone();
            if !docker {
                boot.as_object_mut().unwrap().remove("docker");
            }
            boot["prompts"] = json!([format!("root@{hostname}:~# ")]);
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
    let yaml = basalt_e2e::job_yaml(&job);
    (dir.write("job.yaml", yaml), job)
}

/// A board of `device_type` whose fastboot serial is the simulated device and whose console
/// is `simboard` showing `hostname`; `power_on` is what its power-on and hard reset write to
/// the power file (`off`, a board a reset leaves in fastboot mode, silent until fastboot
/// boots it; a new token, a board that boots its bootloader).
struct Board<'a> {
    device_type: &'a str,
    hostname: &'a str,
    power_on: &'a str,
}

/// The HiKey: a hard reset leaves it in fastboot mode, silent on its console; the fastboot
/// device's boot and reboot power it on.
const HIKEY: Board = Board {
    device_type: "hi6220-hikey",
    hostname: "hikey",
    power_on: "off",
};

/// The board's dictionary; `extra` are lines of the test's own after the board's.
fn dictionary(
    dir: &TestDir,
    board: &Board,
    state: &Path,
    power: &Path,
    port: u16,
    extra: &str,
) -> PathBuf {
    let on = format!("echo {} > {}", board.power_on, power.display());
    dir.write(
        &format!("{}-01.jinja2", board.hostname),
        format!(
            "{{% extends '{device_type}.jinja2' %}}
{{% set fastboot_serial_number = 'tcp:127.0.0.1:{port}' %}}
{{% set connection_command = '{simboard} --state {state} --hostname {hostname}' %}}
{{% set hard_reset_command = '{on}' %}}
{{% set power_on_command = '{on}' %}}
{{% set power_off_command = 'echo off > {power}' %}}
{{% set lava_test_results_dir = '{dir}/lava-%s' %}}
{extra}",
            device_type = board.device_type,
            hostname = board.hostname,
            simboard = test_program("simboard").display(),
            state = state.display(),
            power = power.display(),
            dir = dir.path().display(),
        ),
    )
}

/// A HiKey job whose only action flashes one local image to `partition`, within `minutes`
/// (its deploy within one minute less).
fn one_image_job(dir: &TestDir, name: &str, partition: &str, minutes: u32) -> PathBuf {
    let image = dir.write("images/one.img", image_bytes(partition));
    dir.write(
        "job.yaml",
        format!(
            "job_name: {name}
device_type: hi6220-hikey
visibility: public
timeouts: {{job: {{minutes: {minutes}}}, action: {{minutes: {action}}}}}
actions:
- deploy:
    to: fastboot
    images:
      '{partition}': {{url: 'file://{image}'}}
",
            action = minutes - 1,
            image = image.display()
        ),
    )
}

/// `basalt run` of `job` on the board `dictionary` describes (our device types, or those of
/// `device_types`); the job's output goes to `DIR/out`, which is returned with its log.
fn run_job(
    dir: &TestDir,
    dictionary: &Path,
    device_types: Option<&Path>,
    job: &Path,
    env: &[(&str, String)],
) -> (basalt_e2e::Output, PathBuf, String) {
    let out = dir.path().join("out");
    let mut run = Basalt::new(["run", "--quiet", "--device"]);
    run = run.arg(dictionary);
    if let Some(types) = device_types {
        run = run.arg("--device-types").arg(types);
    }
    for (key, value) in env {
        run = run.env(key, value);
    }
    let output = run
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(job)
        .timeout(Duration::from_secs(240))
        .run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    (output, out, log)
}

#[test]
fn lavas_hikey_sample_flashes_every_image_and_boots_with_the_real_fastboot_client() {
    if lava_fixtures().is_some() && tool_available("fastboot") {
        hikey_sample(None);
    }
}

/// The same sample with its `docker:` blocks, as LAVA runs it: every fastboot command in a
/// container of the image the job names (`lavalabteam/adb-fastboot`, `local: true`), here
/// one holding Debian's fastboot client, on a docker daemon of the test's own; the board's
/// dictionary gives the containers the host's network (`docker_shell_extra_arguments`).
#[test]
fn lavas_hikey_sample_runs_fastboot_in_the_docker_image_the_job_names() {
    if lava_fixtures().is_none() || !tool_available("fastboot") || !tool_available("dockerd") {
        return;
    }
    let dir = TestDir::new();
    let daemon = DockerDaemon::start(&dir);
    daemon.import_fastboot_image(&dir, "lavalabteam/adb-fastboot");
    let log = hikey_sample(Some(&daemon));
    assert!(
        log.contains("Image lavalabteam/adb-fastboot exists locally"),
        "{log}"
    );
    assert!(log.contains("docker: docker exec lava-"), "{log}");
    assert!(log.contains("--network=host"), "{log}");
}

/// A docker daemon of the test's own: its socket, data and state below the test's
/// directory, no iptables or bridge (containers get the host's network or none).
struct DockerDaemon {
    child: Child,
    host: String,
    root: PathBuf,
}

impl DockerDaemon {
    fn start(dir: &TestDir) -> Self {
        let root = dir.mkdir("docker");
        let host = format!("unix://{}", root.join("docker.sock").display());
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["--host", &host])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=vfs"])
            .stdout(std::fs::File::create(root.join("dockerd.log")).unwrap())
            .stderr(std::fs::File::create(root.join("dockerd.err")).unwrap())
            .spawn()
            .expect("dockerd starts");
        let daemon = Self { child, host, root };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.docker(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(daemon.root.join("dockerd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(["--host", &self.host])
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// An image of Debian's fastboot client, the libraries it links and `sleep`, nothing else.
    fn import_fastboot_image(&self, dir: &TestDir, name: &str) {
        let root = dir.mkdir("fastboot-image");
        let client = std::fs::canonicalize(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("fastboot"))
                .find(|p| p.is_file())
                .unwrap(),
        )
        .unwrap();
        let ldd = Command::new("ldd").arg(&client).output().unwrap();
        // LAVA keeps each container alive with `sleep infinity`: busybox's applet.
        let mut files = vec![
            (client, PathBuf::from("usr/bin/fastboot")),
            (PathBuf::from("/bin/busybox"), PathBuf::from("bin/sleep")),
        ];
        for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
            if word.starts_with('/') {
                let library = PathBuf::from(word);
                files.push((
                    library.clone(),
                    library.strip_prefix("/").unwrap().to_path_buf(),
                ));
            }
        }
        for (from, to) in files {
            let to = root.join(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
        let tarball = dir.path().join("fastboot-image.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(tar.success(), "tar of the image");
        let tarball = tarball.display().to_string();
        let import = self.docker(&["import", &tarball, name]);
        assert!(import.status.success(), "docker import: {import:?}");
    }
}

impl Drop for DockerDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd leaves its default network namespace mounted in its exec root.
        let _ = Command::new("umount")
            .arg(self.root.join("exec/netns/default"))
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// LAVA's HiKey sample on the simulated HiKey, its fastboot client on the worker or in
/// `docker`'s containers; returns the job's log.
fn hikey_sample(docker: Option<&DockerDaemon>) -> String {
    let lava = lava_fixtures().unwrap();
    let dir = TestDir::new();
    let state = dir.mkdir("board");
    let power = state.join("power");
    let (_device, port) = start_device(&dir, &power);
    let (job_file, job) = job_for(
        &lava,
        &dir,
        "docs__hi6220-hikey.yaml",
        "hikey",
        docker.is_some(),
    );
    let extra = match docker {
        Some(_) => "{% set docker_shell_extra_arguments = '--network=host' %}\n",
        None => "",
    };
    let dictionary = dictionary(&dir, &HIKEY, &state, &power, port, extra);
    let (output, out, log) = run_job(
        &dir,
        &dictionary,
        None,
        &job_file,
        &docker
            .map(|d| vec![("DOCKER_HOST", d.host.clone())])
            .unwrap_or_default(),
    );
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
        log.contains(&format!("fastboot -s tcp:127.0.0.1:{port} flash ptable ")),
        "{log}"
    );
    assert!(
        log.contains(&format!("fastboot -s tcp:127.0.0.1:{port} boot ")),
        "{log}"
    );
    let results = results(&out);
    assert_eq!(
        case(&results, "0_after-fastboot", "booted")["result"],
        "pass"
    );
    log
}

/// LAVA's x15 sample: an x15 enters fastboot mode through u-boot (`fastboot_via_uboot`, set
/// by LAVA's x15 type): the deploy resets it, stops u-boot and types the u-boot deploy's
/// `fastboot 1`, then Debian's fastboot client flashes userdata (gz, decompressed first); the
/// u-boot boot that follows runs the template's mmc commands.
/// What an x15 run left: its directory, its log and the lines typed at u-boot.
struct X15Run {
    dir: TestDir,
    log: String,
    typed: String,
}

/// LAVA's x15 sample on a simulated x15 (u-boot on its console, fastboot over TCP), with its
/// boot action changed by `change`.
fn run_x15(lava: &Path, change: impl Fn(&mut Value)) -> X15Run {
    let dir = TestDir::new();
    let state = dir.mkdir("board");
    let power = state.join("power");
    let (_device, port) = start_device(&dir, &power);
    let (job_file, mut job) = job_for(lava, &dir, "lava_dispatcher__x15-uboot.yaml", "x15", false);
    change(&mut job["actions"][1]["boot"]);
    let yaml = basalt_e2e::job_yaml(&job);
    std::fs::write(&job_file, yaml).unwrap();
    let x15 = Board {
        device_type: "x15",
        hostname: "x15",
        power_on: "on $(date +%s%N)",
    };
    let dictionary = dictionary(&dir, &x15, &state, &power, port, "");
    let (output, out, log) = run_job(
        &dir,
        &dictionary,
        Some(&lava.join("device-types")),
        &job_file,
        &[],
    );
    let typed = std::fs::read_to_string(state.join("bootloader.log")).unwrap_or_default();
    assert!(output.status.success(), "{output}\n{log}\n{typed}");
    let flashed = std::fs::read(dir.path().join("fastboot/partitions/userdata")).unwrap();
    assert_eq!(flashed, image_bytes("userdata"));
    let results = results(&out);
    assert_eq!(
        case(&results, "0_after-fastboot", "booted")["result"],
        "pass"
    );
    X15Run { dir, log, typed }
}

/// LAVA's x15 sample: an x15 enters fastboot mode through u-boot (`fastboot_via_uboot`, set
/// by LAVA's x15 type): the deploy resets it, stops u-boot and types the u-boot deploy's
/// `fastboot 1`, then Debian's fastboot client flashes userdata (gz, decompressed first); the
/// u-boot boot that follows runs the template's mmc commands.
#[test]
fn lavas_x15_sample_enters_fastboot_through_u_boot_and_flashes_userdata() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    if !tool_available("fastboot") {
        return;
    }
    let run = run_x15(&lava, |_| {});
    assert!(
        run.log.contains("entering fastboot mode through u-boot"),
        "{}",
        run.log
    );
    // u-boot's fastboot command first (the deploy), then x15's mmc commands (the boot).
    assert_eq!(
        run.typed.lines().collect::<Vec<_>>(),
        [
            "fastboot 1",
            "run findfdt",
            "setenv console ttyS2,115200n8",
            "setenv mmcdev 1",
            "setenv bootpart 1:e",
            "run mmcboot",
        ],
        "{}",
        run.log
    );
}

/// The same board booted with `method: fastboot`: the boot enters fastboot mode through
/// u-boot again, then follows x15's fastboot sequence (`reboot`), and the board comes up
/// on its own.
#[test]
fn a_fastboot_boot_of_an_x15_enters_fastboot_through_u_boot_then_reboots() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    if !tool_available("fastboot") {
        return;
    }
    let run = run_x15(&lava, |boot| {
        boot["method"] = json!("fastboot");
        boot.as_object_mut().unwrap().remove("commands");
    });
    assert_eq!(
        run.typed.lines().collect::<Vec<_>>(),
        ["fastboot 1", "fastboot 1"],
        "{}",
        run.log
    );
    let commands =
        std::fs::read_to_string(run.dir.path().join("fastboot/fastboot.log")).unwrap_or_default();
    assert!(commands.lines().any(|l| l == "reboot"), "{commands}");
}

/// A HiKey whose dictionary leaves the serial unset and asks for auto-detection passes the
/// checks, and after its reset the deploy asks Debian's fastboot client `fastboot devices`,
/// as LAVA does, 10 times 3 s apart; a board that never shows up (here none is on USB) ends
/// the job with LAVA's FastbootDeviceNotFound.
#[test]
fn an_auto_detected_board_that_never_shows_up_ends_the_job_with_fastboot_device_not_found() {
    if lava_fixtures().is_none() || !tool_available("fastboot") {
        return;
    }
    let dir = TestDir::new();
    let state = dir.mkdir("board");
    let power = state.join("power");
    let job = one_image_job(&dir, "auto-detected", "boot", 3);
    let dictionary = dictionary(
        &dir,
        &HIKEY,
        &state,
        &power,
        0,
        "{% set fastboot_serial_number = '0000000000' %}\n{% set fastboot_auto_detection = True %}\n",
    );
    let (output, _, log) = run_job(&dir, &dictionary, None, &job, &[]);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("Fastboot device not found (try 10 of 10)"),
        "{log}"
    );
    assert!(
        log.contains("FastbootDeviceNotFound: fastboot device not found"),
        "{log}"
    );
    assert!(
        !log.contains("fastboot -s"),
        "no command may name a serial: {log}"
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
    let job = one_image_job(&dir, "refused partition", "no such partition", 2);
    let dictionary = dictionary(&dir, &HIKEY, &state, &power, port, "");
    let (output, _, log) = run_job(&dir, &dictionary, None, &job, &[]);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("Unable to flash"), "{log}");
    assert!(log.contains("bad partition name"), "{log}");
    assert!(!dir.path().join("fastboot/partitions").exists());
}

/// An adb server of the test's own, on a port no other adb server uses
/// (`ANDROID_ADB_SERVER_PORT`), killed when the test ends.
struct AdbServer {
    port: String,
}

impl AdbServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port().to_string())
            .unwrap();
        let server = Self { port };
        let started = server.adb(&["start-server"]);
        assert!(started.status.success(), "{started:?}");
        server
    }

    fn adb(&self, args: &[&str]) -> std::process::Output {
        Command::new("adb")
            .args(args)
            .env("ANDROID_ADB_SERVER_PORT", &self.port)
            .output()
            .expect("adb runs")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("ANDROID_ADB_SERVER_PORT", self.port.clone())]
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = self.adb(&["kill-server"]);
    }
}

/// A phone with neither a hard reset nor u-boot (LAVA's Nexus-class devices): LAVA's
/// `EnterFastbootAction` reboots it into fastboot mode with `adb -s ADB_SERIAL
/// reboot-bootloader`, Debian's adb client and server against the simulated phone's adbd,
/// before flashing (in Android the phone answers no fastboot, and Debian's client waits for it
/// until the deploy times out). Without an adb serial the job is refused as LAVA refuses it.
#[test]
fn a_phone_in_android_is_rebooted_into_fastboot_mode_with_adb_then_flashed() {
    if lava_fixtures().is_none() || !tool_available("fastboot") || !tool_available("adb") {
        return;
    }
    let dir = TestDir::new();
    let (_device, port, adb_port) = start_simfastboot(&dir, None, true);
    let adb_serial = format!("127.0.0.1:{adb_port}");
    let phone = |adb_serial: &str| {
        dir.write(
            "phone-01.jinja2",
            format!(
                "{{% extends 'hi6220-hikey.jinja2' %}}
{{% set fastboot_serial_number = 'tcp:127.0.0.1:{port}' %}}
{{% set adb_serial_number = '{adb_serial}' %}}
"
            ),
        )
    };
    let job = one_image_job(&dir, "phone", "userdata", 3);
    let server = AdbServer::start();

    let (output, _, log) = run_job(&dir, &phone("0000000000"), None, &job, &server.env());
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("device adb serial number unset"), "{log}");

    let connected = server.adb(&["connect", &adb_serial]);
    assert!(connected.status.success(), "{connected:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&server.adb(&["devices"]).stdout)
        .contains(&format!("{adb_serial}\tdevice"))
    {
        assert!(
            Instant::now() < deadline,
            "the adb server never saw the phone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (output, _, log) = run_job(&dir, &phone(&adb_serial), None, &job, &server.env());
    let commands =
        std::fs::read_to_string(dir.path().join("fastboot/fastboot.log")).unwrap_or_default();
    assert!(output.status.success(), "{output}\n{log}\n{commands}");
    assert!(
        log.contains(&format!("adb -s {adb_serial} reboot-bootloader")),
        "{log}"
    );
    // Rebooted over adb, then flashed: the phone's log in that order.
    let rebooted = commands.find("adb: reboot:bootloader").expect(&commands);
    let flashed = commands.find("flash:userdata").expect(&commands);
    assert!(rebooted < flashed, "{commands}");
    assert_eq!(
        std::fs::read(dir.path().join("fastboot/partitions/userdata")).unwrap(),
        image_bytes("userdata")
    );
}
