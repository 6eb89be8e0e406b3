//! LAVA's own sample jobs for the bootloader boot methods (GRUB, iPXE, barebox, depthcharge,
//! u-boot), each run by `basalt run` on a simulated board of the job's device type: LAVA's
//! device-type template (../shared/lava/device-types) with one of LAVA's test dictionaries,
//! whose console is `simboard` showing that bootloader.
//!
//! What the board was sent is compared line by line with the command set of LAVA's own
//! rendering of that dictionary (../shared/lava/expected, rendered by Python's Jinja2), filled
//! here as LAVA's `BootloaderCommandOverlay` fills it: a known placeholder without a value
//! drops its command, others are replaced by the worker's address and the files' paths below
//! the TFTP root.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_e2e::{lava_fixtures, test_program, tool_available, Basalt, TestDir};
use serde_json::{json, Map, Value};

/// The address the board reaches the worker at.
const SERVER_IP: &str = "10.0.0.9";
/// The job's name in the TFTP and NFS directories.
const JOB_ID: &str = "42";

/// One sample job and the board it runs on.
struct Sample {
    /// The job in ../shared/lava/jobs.
    job: &'static str,
    /// LAVA's test dictionary in ../shared/lava/devices (and its rendering in expected/).
    device: &'static str,
    /// A dictionary of our own instead, for device types LAVA has no test dictionary of; it
    /// is rendered here with LAVA's templates.
    dictionary: Option<&'static str>,
    /// The device type, where the sample names one this dictionary does not extend.
    device_type: Option<&'static str>,
    /// simboard's `--bootloader`.
    loader: &'static str,
    /// The shell prompt the board shows, one the job's `prompts` match.
    prompt: &'static str,
    /// Whether the board asks for a login (the job has `auto_login`).
    login: bool,
}

/// What one run left behind.
struct Run {
    dir: TestDir,
    out: PathBuf,
    /// LAVA's rendering of the dictionary.
    config: Value,
    /// The sample job as run (artifacts local).
    job: Value,
    /// What `basalt run` said.
    output: basalt_e2e::Output,
}

impl Run {
    /// The lines typed at the board's bootloader.
    fn typed(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("board/bootloader.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.out.join("output.yaml")).unwrap_or_default()
    }

    fn boot(&self) -> &Map<String, Value> {
        self.job["actions"]
            .as_array()
            .and_then(|a| a.iter().find_map(|a| a.get("boot")))
            .and_then(Value::as_object)
            .expect("the sample has a boot action")
    }

    /// The command set the boot action names, from LAVA's rendering.
    fn lava_commands(&self) -> Vec<String> {
        let method = self.boot()["method"].as_str().unwrap();
        let set = self.boot()["commands"].as_str().unwrap();
        self.config["actions"]["boot"]["methods"][method][set]["commands"]
            .as_array()
            .expect("LAVA's rendering has the command set")
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }

    /// Whether the deploy has artifact `key`.
    fn deployed(&self, key: &str) -> bool {
        self.job["actions"]
            .as_array()
            .and_then(|a| a.iter().find_map(|a| a.get("deploy")))
            .is_some_and(|d| d.get(key).is_some())
    }
}

/// LAVA's `substitute(commands, values, drop=True)`: values in order; a `None` one drops the
/// command naming it; placeholders not in the list stay.
fn lava_substitute(commands: &[String], values: &[(&str, Option<String>)]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|command| {
            let mut line = command.clone();
            for (key, value) in values {
                match value {
                    Some(v) if !v.is_empty() => line = line.replace(key, v),
                    _ if line.contains(key) => return None,
                    _ => {}
                }
            }
            Some(line)
        })
        .collect()
}

/// The file an artifact's URL names, made locally with content of its kind.
fn local_artifact(dir: &TestDir, key: &str, artifact: &Map<String, Value>) -> PathBuf {
    let url = artifact["url"].as_str().unwrap();
    let name = url.rsplit('/').next().unwrap();
    let path = dir.path().join("images").join(key).join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tree = dir.mkdir(&format!("trees/{key}"));
    match key {
        "ramdisk" => {
            let mut ramdisk = common::gz_ramdisk(&["init", "bin/sh"]);
            if artifact.get("header").and_then(Value::as_str) == Some("u-boot") {
                std::fs::write(dir.path().join("ramdisk.raw"), &ramdisk).unwrap();
                let status = std::process::Command::new("mkimage")
                    .args(["-A", "arm", "-T", "ramdisk", "-C", "none", "-d"])
                    .arg(dir.path().join("ramdisk.raw"))
                    .arg(&path)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
                ramdisk = std::fs::read(&path).unwrap();
            }
            std::fs::write(&path, ramdisk).unwrap();
        }
        "modules" | "nfsrootfs" => {
            std::fs::create_dir_all(tree.join("lib/modules/6.1.0")).unwrap();
            std::fs::write(tree.join("lib/modules/6.1.0/modules.dep"), "").unwrap();
            let flag = match artifact.get("compression").and_then(Value::as_str) {
                Some("xz") => "-cJf",
                _ => "-czf",
            };
            let status = std::process::Command::new("tar")
                .arg(flag)
                .arg(&path)
                .arg("-C")
                .arg(&tree)
                .arg(".")
                .status()
                .unwrap();
            assert!(status.success());
        }
        _ => std::fs::write(&path, format!("{key} image for a simulated board\n")).unwrap(),
    }
    path
}

/// The sample's deploy and boot, with its artifacts made local, as a job file (YAML whose
/// values are JSON flow collections).
fn job_for(
    sample: &Sample,
    lava: &Path,
    dir: &TestDir,
    change: impl Fn(&mut Map<String, Value>),
) -> (PathBuf, Value) {
    let text = std::fs::read_to_string(lava.join("jobs").join(sample.job)).unwrap();
    let mut job = basalt::yaml11::from_str(&text).unwrap();
    let mut actions = Vec::new();
    for action in job["actions"].as_array().unwrap() {
        if let Some(deploy) = action.get("deploy").and_then(Value::as_object) {
            let mut deploy = deploy.clone();
            for (key, value) in deploy.iter_mut() {
                let Some(artifact) = value.as_object_mut() else {
                    continue;
                };
                if artifact.contains_key("url") {
                    let path = local_artifact(dir, key, artifact);
                    artifact.insert("url".into(), json!(format!("file://{}", path.display())));
                    // The local stand-in is not the file the job's checksum is of.
                    for sum in ["md5sum", "sha256sum", "sha512sum"] {
                        artifact.remove(sum);
                    }
                }
            }
            actions.push(json!({"deploy": deploy}));
        } else if let Some(boot) = action.get("boot").and_then(Value::as_object) {
            let mut boot = boot.clone();
            boot.insert("timeout".into(), json!({"minutes": 2}));
            change(&mut boot);
            actions.push(json!({"boot": boot}));
        }
        // Test actions clone repositories from the internet; the boot is what is checked.
    }
    job["actions"] = Value::Array(actions);
    job["timeouts"] = json!({"job": {"minutes": 5}, "action": {"minutes": 2}});
    if let Some(device_type) = sample.device_type {
        job["device_type"] = json!(device_type);
    }
    let yaml = basalt_e2e::job_yaml(&job);
    (dir.write("job.yaml", yaml), job)
}

/// LAVA's test dictionary with the simulated board's console and power.
fn dictionary_for(sample: &Sample, lava: &Path, dir: &TestDir) -> PathBuf {
    let lava_dict = match sample.dictionary {
        Some(text) => text.to_owned(),
        None => std::fs::read_to_string(
            lava.join("devices")
                .join(format!("{}.jinja2", sample.device)),
        )
        .unwrap(),
    };
    let state = dir.mkdir("board");
    let power = state.join("power");
    let tftp = dir.path().join("tftp");
    std::fs::write(state.join("prompt"), sample.prompt).unwrap();
    if !sample.login {
        std::fs::write(state.join("autologin"), "").unwrap();
    }
    let console = format!(
        "{} --state {} --bootloader {} --tftp-root {}",
        test_program("simboard").display(),
        state.display(),
        sample.loader,
        tftp.display(),
    );
    dir.write(
        &format!("{}.jinja2", sample.device),
        format!(
            "{lava_dict}
{{% set connection_list = [] %}}
{{% set connection_command = \"{console}\" %}}
{{% set power_on_command = 'echo on $(date +%s%N) > {p}' %}}
{{% set hard_reset_command = 'echo on $(date +%s%N) > {p}' %}}
{{% set power_off_command = 'echo off > {p}' %}}
{{# LAVA's x86 type types at 500 ms per character; the simulated board needs no delay, but
the delay is still applied, one millisecond per character. #}}
{{% set boot_character_delay = 1 %}}
",
            p = power.display(),
        ),
    )
}

fn run(sample: &Sample) -> Option<Run> {
    let run = run_with(sample, |_| {})?;
    assert!(
        run.output.status.success(),
        "{}\nthe board was sent: {:#?}\n{}",
        run.output,
        run.typed(),
        run.log()
    );
    Some(run)
}

/// Runs the sample with its boot action changed by `change`.
fn run_with(sample: &Sample, change: impl Fn(&mut Map<String, Value>)) -> Option<Run> {
    let lava = lava_fixtures()?;
    let dir = TestDir::new();
    let (job_file, job) = job_for(sample, &lava, &dir, change);
    run_job(sample, &lava, dir, job_file, job)
}

/// Runs `job` (written to `job_file` in `dir`) on the sample's board.
fn run_job(
    sample: &Sample,
    lava: &Path,
    dir: TestDir,
    job_file: PathBuf,
    job: Value,
) -> Option<Run> {
    let lava = lava.to_path_buf();
    let dictionary = dictionary_for(sample, &lava, &dir);
    let out = dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--device"])
        .arg(&dictionary)
        .arg("--device-types")
        .arg(lava.join("device-types"))
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg("--tftp-root")
        .arg(dir.mkdir("tftp"))
        .arg("--nfs-root")
        .arg(dir.mkdir("nfs"))
        .arg("--job-id")
        .arg(JOB_ID)
        .arg("--server-ip")
        .arg(SERVER_IP)
        .arg(&job_file)
        .timeout(Duration::from_secs(240))
        .run();
    let config = match sample.dictionary {
        Some(text) => lava_rendering(&lava, sample.device, text),
        None => {
            let text = std::fs::read_to_string(
                lava.join("expected")
                    .join(format!("{}.json", sample.device)),
            )
            .unwrap();
            serde_json::from_str::<Value>(&text).unwrap()["config"].clone()
        }
    };
    Some(Run {
        dir,
        out,
        config,
        job,
        output,
    })
}

/// Our own dictionary rendered with LAVA's templates (which Basalt renders as LAVA does).
fn lava_rendering(lava: &Path, device: &str, dictionary: &str) -> Value {
    let dir = TestDir::new();
    dir.write(&format!("{device}.jinja2"), dictionary);
    let engine = basalt::template::TemplateEngine::new(basalt::template::SearchPath::new(vec![
        dir.path().to_path_buf(),
        lava.join("device-types"),
    ]));
    engine
        .render(
            &format!("{device}.jinja2"),
            &json!({"scheduled_device_name": device}),
        )
        .unwrap()
        .config
}

/// The values LAVA's overlay gives the common placeholders for this run.
fn common_values(run: &Run, method: &str) -> Vec<(&'static str, Option<String>)> {
    let file = |key: &str, name: &str| run.deployed(key).then(|| format!("{JOB_ID}/{key}/{name}"));
    let kernel_name = run.job["actions"][0]["deploy"]["kernel"]["url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .map(str::to_owned)
        .unwrap_or_default();
    let dtb_name = run.job["actions"][0]["deploy"]["dtb"]["url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .map(str::to_owned)
        .unwrap_or_default();
    let lava_mac = run.config["actions"]["boot"]["methods"][method]["parameters"]["lava_mac"]
        .as_str()
        .map(str::to_owned);
    let nfs = run.deployed("nfsrootfs").then(|| {
        run.dir
            .path()
            .join("nfs")
            .join(JOB_ID)
            .display()
            .to_string()
    });
    let mut values = vec![
        ("{SERVER_IP}", Some(SERVER_IP.to_owned())),
        ("{PRESEED_CONFIG}", None),
        ("{PRESEED_LOCAL}", None),
        ("{DTB}", file("dtb", &dtb_name)),
        ("{RAMDISK}", file("ramdisk", "ramdisk.cpio.gz")),
        ("{INITRD}", file("ramdisk", "ramdisk.cpio.gz")),
        ("{KERNEL}", file("kernel", &kernel_name)),
        ("{LAVA_MAC}", lava_mac),
        ("{TEE}", None),
        ("{DTB_BASE_ADDR}", None),
        ("{DTB_BASE_RESIZE}", None),
        ("{APPLY_DTBO_COMMANDS}", None),
        ("{LAVA_DISPATCHER_IP}", Some(SERVER_IP.to_owned())),
        ("{LAVA_JOB_ID}", Some(JOB_ID.to_owned())),
    ];
    if nfs.is_some() {
        values.push(("{NFSROOTFS}", nfs));
        values.push(("{NFS_SERVER_IP}", Some(SERVER_IP.to_owned())));
    }
    values.push(("{ROOT}", None));
    values.push(("{ROOT_PART}", None));
    values
}

fn assert_sent_lavas_commands(sample: &Sample) -> Option<Run> {
    let run = run(sample)?;
    let method = run.boot()["method"].as_str().unwrap().to_owned();
    let expected = lava_substitute(&run.lava_commands(), &common_values(&run, &method));
    assert_eq!(run.typed(), expected, "{}", run.log());
    assert!(
        run.log().contains("Sending with 1 millisecond of delay"),
        "{}",
        run.log()
    );
    Some(run)
}

#[test]
fn lavas_ipxe_sample_boots_with_ctrl_b_and_the_x86_templates_commands() {
    let sample = Sample {
        job: "lava_dispatcher__ipxe-ramdisk.yaml",
        device: "x86-02",
        dictionary: None,
        device_type: None,
        loader: "ipxe",
        prompt: "/ # ",
        login: false,
    };
    let Some(run) = assert_sent_lavas_commands(&sample) else {
        return;
    };
    assert!(run.log().contains("Ctrl-B"), "{}", run.log());
}

#[test]
fn lavas_ipxe_bootscript_sample_chains_a_script_of_the_templates_commands() {
    let sample = Sample {
        job: "lava_dispatcher__ipxe-ramdisk-bootscript.yaml",
        device: "x86-02",
        dictionary: None,
        device_type: None,
        loader: "ipxe",
        prompt: "/ # ",
        login: false,
    };
    let Some(run) = run(&sample) else {
        return;
    };
    let script = format!("{JOB_ID}/kernel/script.ipxe");
    assert_eq!(
        run.typed(),
        [
            "dhcp net0".to_owned(),
            format!("chain tftp://{SERVER_IP}/{script}")
        ]
    );
    // The board ran the script's lines (simboard's chain reads it from the TFTP root and
    // boots only when its `kernel` and `boot` lines came).
    let log = run.log();
    assert!(
        log.contains(&format!("tftp://{SERVER_IP}/{script}... ok")),
        "{log}"
    );
}

#[test]
fn lavas_grub_sample_boots_from_the_command_line_with_the_d02_templates_commands() {
    let sample = Sample {
        job: "lava_dispatcher__grub-ramdisk.yaml",
        device: "d02-01",
        dictionary: None,
        device_type: None,
        loader: "grub",
        prompt: "/ # ",
        login: false,
    };
    assert_sent_lavas_commands(&sample);
}

/// LAVA's grub-efi samples (an arm64 server whose UEFI menu starts GRUB from the network):
/// the firmware's countdown is stopped with the uefi-menu's interrupt string, its "LAVA PXE
/// Grub" entry picked by its number from the menu on screen, then GRUB gets mustang's
/// command set.
#[test]
fn lavas_grub_efi_samples_pick_grub_in_the_uefi_menu_and_send_the_mustang_templates_commands() {
    for (job, prompt) in [
        ("docs__mustang-grub-efi.yaml", "root@stretch:~# "),
        (
            "lava_dispatcher__mustang-grub-efi-nfs.yaml",
            "root@jessie:~# ",
        ),
    ] {
        let sample = Sample {
            job,
            device: "mustang-grub-efi-01",
            dictionary: Some("{% extends 'mustang-grub-efi.jinja2' %}\n"),
            device_type: Some("mustang-grub-efi"),
            loader: "grub-efi",
            prompt,
            login: true,
        };
        let Some(run) = run(&sample) else {
            return;
        };
        let commands = lava_substitute(&run.lava_commands(), &common_values(&run, "grub-efi"));
        // "LAVA PXE Grub" is the second entry of the simulated board's menu.
        let mut expected = vec!["2".to_owned()];
        expected.extend(commands);
        assert_eq!(run.typed(), expected, "{job}: {}", run.log());
        let log = run.log();
        assert!(log.contains("Selecting option 2 (LAVA PXE Grub)"), "{log}");
        assert!(log.contains("Sending with 1 millisecond of delay"), "{log}");
    }
}

/// A HiKey whose grub method is LAVA's sequence (type hi6220-hikey-bl, the boot of LAVA's
/// hikey-bl sample): the board was left in fastboot mode by its flash, so the boot neither
/// resets it nor types commands; it waits for "Android Fastboot mode", sends the fastboot
/// deploy's interrupt string and logs in to the installed system.
#[test]
fn a_grub_sequence_leaves_fastboot_mode_without_a_reset_or_commands() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    let sample = Sample {
        job: "docs__hi6220-hikey-bl.yaml",
        device: "hi6220-hikey-bl-01",
        dictionary: None,
        device_type: None,
        loader: "fastboot-grub",
        prompt: "console:/ $ ",
        login: false,
    };
    let dir = TestDir::new();
    // The sample's last boot, as LAVA's hikey-bl health check has it.
    let text = std::fs::read_to_string(lava.join("jobs").join(sample.job)).unwrap();
    let sample_job = basalt::yaml11::from_str(&text).unwrap();
    let boot = sample_job["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.get("boot"))
        .find(|b| b["method"] == "grub")
        .unwrap()
        .clone();
    let mut boot = boot.as_object().unwrap().clone();
    boot.insert("timeout".into(), json!({"minutes": 2}));
    let job = json!({
        "device_type": "hi6220-hikey-bl",
        "job_name": "grub sequence",
        "visibility": "public",
        "timeouts": {"job": {"minutes": 5}, "action": {"minutes": 2}},
        "actions": [{"boot": boot}],
    });
    let yaml = basalt_e2e::job_yaml(&job);
    let job_file = dir.write("job.yaml", yaml);
    // Powered on and in fastboot mode before the job starts, as the flash left it.
    std::fs::create_dir_all(dir.path().join("board")).unwrap();
    std::fs::write(dir.path().join("board/power"), "on 1").unwrap();
    let Some(run) = run_job(&sample, &lava, dir, job_file, job) else {
        return;
    };
    let log = run.log();
    assert!(run.output.status.success(), "{}\n{log}", run.output);
    assert_eq!(run.typed(), ["(fastboot mode left)"], "{log}");
    assert!(log.contains("sending ' ' to interrupt fastboot"), "{log}");
    assert!(!log.contains("resetting the board"), "{log}");
}

#[test]
fn lavas_barebox_samples_boot_a_ramdisk_and_an_nfs_root() {
    for (job, prompt, login) in [
        (
            "lava_dispatcher__barebox-ramdisk.yaml",
            "root@debian:~# ",
            false,
        ),
        ("lava_dispatcher__barebox.yaml", "root@jessie:~# ", true),
    ] {
        let sample = Sample {
            job,
            device: "bbb-03-barebox",
            dictionary: None,
            device_type: None,
            loader: "barebox",
            prompt,
            login,
        };
        assert_sent_lavas_commands(&sample);
    }
}

#[test]
fn lavas_depthcharge_sample_tftpboots_a_fit_image_and_the_command_line_file() {
    if !tool_available("mkimage") {
        return;
    }
    let sample = Sample {
        job: "lava_dispatcher__depthcharge.yaml",
        device: "rk3288-veyron-jaq-01",
        dictionary: None,
        device_type: Some("rk3288-veyron-jaq"),
        loader: "depthcharge",
        prompt: "root@jessie:~# ",
        login: false,
    };
    let Some(run) = run(&sample) else {
        return;
    };
    let mut values = common_values(&run, "depthcharge");
    // depthcharge's own pass: the FIT image, the command line file, no separate ramdisk.
    values.push((
        "{DEPTHCHARGE_KERNEL}",
        Some(format!("{JOB_ID}/kernel/image.itb")),
    ));
    values.push(("{CMDLINE}", Some(format!("{JOB_ID}/kernel/cmdline"))));
    let expected: Vec<String> = lava_substitute(&run.lava_commands(), &values)
        .into_iter()
        .map(|c| c.replace("{DEPTHCHARGE_RAMDISK}", ""))
        .collect();
    assert_eq!(run.typed(), expected, "{}", run.log());
    // The board read both files: a FIT image, and the command line LAVA writes from the
    // set's `cmdline` (placeholders filled).
    let cmdline = run.config["actions"]["boot"]["methods"]["depthcharge"]["nfs"]["cmdline"]
        .as_str()
        .unwrap()
        .to_owned();
    let cmdline = lava_substitute(&[cmdline], &common_values(&run, "depthcharge")).remove(0);
    let log = run.log();
    assert!(log.contains("FIT image with kernel"), "{log}");
    assert!(log.contains(&format!("Command line: {cmdline}")), "{log}");
}

#[test]
fn a_bootloader_error_message_ends_the_boot_as_an_infrastructure_error_naming_it() {
    let sample = Sample {
        job: "lava_dispatcher__grub-ramdisk.yaml",
        device: "d02-01",
        dictionary: None,
        device_type: None,
        loader: "grub",
        prompt: "/ # ",
        login: false,
    };
    // The job's own commands, as LAVA allows: `boot` before any `linux` makes GRUB say
    // "error: you need to load the kernel first.", one of constants.grub.error-messages.
    let Some(run) = run_with(&sample, |boot| {
        boot.insert("commands".into(), json!(["net_bootp", "boot"]));
    }) else {
        return;
    };
    assert!(!run.output.status.success(), "{}", run.log());
    let log = run.log();
    assert!(
        log.contains("WARNING: Using boot commands supplied in the job definition"),
        "{log}"
    );
    assert!(
        log.contains(
            "matched a bootloader error message: 'error: you need to load the kernel first.'"
        ),
        "{log}"
    );
    assert!(log.contains("InfrastructureError"), "{log}");
    assert_eq!(run.typed(), ["net_bootp", "boot"]);
}
