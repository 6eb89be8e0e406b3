//! Basalt side by side with Debian's lava-run (lava-dispatcher 2023.01): the same job, with
//! one test definition that calls every helper of LAVA's overlay a board without a network
//! can run, on the same qemu board (Debian's kernel and a busybox initramfs, TCG), rendered
//! from LAVA's qemu template. Both dispatchers must record the same test cases: names,
//! results, measurements, units, sets and references, in the same order, and both must put
//! the overlay at `/lava-<job id>` on the board. Their `lava` suites must agree too: the same
//! records of the same actions with the same results and details (the downloads' checksums,
//! qemu's version, the kernel message scan), and every action Basalt logs must be one lava-run
//! logs, under the same parent.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use basalt_e2e::{lava_fixtures, tool_available, Basalt, TestDir};
use serde_json::Value;

/// The job id both dispatchers run the job as (the board's `/lava-7`).
const JOB_ID: &str = "7";

/// The steps of the definition: every helper with a result either dispatcher can record on
/// a busybox board. `--shell` arguments are evaluated as one line, as LAVA's helper does
/// (`test -n "$(lava-os-build)"` gets two words, `sh -c "exit 3"` runs `sh -c exit 3`).
const STEPS: &[&str] = &[
    "lava-test-case shell-true --shell true",
    "lava-test-case shell-false --shell false",
    "lava-test-case measured --result pass --measurement 42.5 --units ms",
    "lava-test-case skipped --result skip",
    "lava-test-set start a-set",
    "lava-test-case in-set --result pass",
    "lava-test-set stop",
    "lava-test-case after-set --result fail --measurement 7 --units kB",
    "lava-test-reference docs --result pass --reference https://docs.kernel.org",
    "lava-test-case in-job-dir --shell test -d /lava-7",
    "lava-test-case os-build --shell test -n \"$(lava-os-build)\"",
    "lava-background-process-start ticker --cmd \"echo tick >> /tmp/ticks\"",
    "sleep 2",
    "lava-background-process-stop ticker",
    "lava-test-case background --shell test -s /tmp/ticks",
    "lava-test-case target-mac --shell lava-target-mac",
    "lava-test-case target-ip --shell lava-target-ip",
    "lava-test-case target-storage --shell lava-target-storage",
    "lava-test-case echo-ipv4 --shell lava-echo-ipv4 lo",
    "lava-test-case installed-packages --shell lava-installed-packages",
    "lava-test-case install-packages --shell lava-install-packages curl",
    "lava-test-case add-sources --shell lava-add-sources http://deb.example.org/debian",
    "lava-test-case add-keys --shell lava-add-keys 0xABCD",
    "lava-test-event marker-event",
    "lava-test-case probe-ip --shell lava-probe-ip",
    "lava-test-case probe-channel --shell lava-probe-channel",
    "lava-test-case exit-code --shell sh -c \"exit 3\"",
    "lava-test-case result-unknown --result unknown",
    "lava-test-case quoted --shell sh -c \"echo 'a b'\"",
];

/// Where Basalt records what LAVA does not, on purpose: LAVA starts a background process's
/// loop with `/bin/bash`, which a busybox board lacks, so its processes never run there and
/// the case that checks one fails; Basalt falls back to `/bin/sh`. (case, LAVA's result,
/// Basalt's result)
const DELIBERATE: &[(&str, &str, &str)] = &[("background", "fail", "pass")];

/// What each shared `lava` record of an action must agree on (its uuid and paths name each
/// dispatcher's own levels and directories): the fields of its `extra`.
const SHARED_EXTRA: &[(&str, &[&str])] = &[
    ("test-overlay", &["name", "path", "from"]),
    ("test-install-overlay", &[]),
    ("test-runscript-overlay", &["name", "path", "from"]),
    ("file-download", &["label", "size", "sha256sum"]),
    ("execute-qemu", &["qemu_version", "host_arch", "job_arch"]),
    ("kernel-messages", &["extra"]),
    ("login-action", &["success"]),
];

/// The job, its images as local files.
fn job(kernel: &Path, ramdisk: &Path) -> String {
    let steps: String = STEPS
        .iter()
        .map(|step| format!("          - {}\n", serde_json::to_string(step).unwrap()))
        .collect();
    format!(
        "job_name: side by side with lava-run
device_type: qemu
visibility: public
priority: medium
timeouts:
  job: {{minutes: 10}}
  action: {{minutes: 5}}
  connection: {{minutes: 2}}
context:
  arch: amd64
actions:
- deploy:
    to: tmpfs
    timeout: {{minutes: 2}}
    images:
      kernel:
        image_arg: -kernel {{kernel}} -append \"console=ttyS0,115200 rdinit=/init\"
        url: file://{kernel}
      ramdisk:
        image_arg: -initrd {{ramdisk}}
        url: file://{ramdisk}
        compression: gz
        format: cpio.newc
        overlays:
          lava: true
- boot:
    method: qemu
    media: tmpfs
    timeout: {{minutes: 4}}
    prompts: ['{prompt}']
- test:
    timeout: {{minutes: 4}}
    definitions:
    - from: inline
      name: side-by-side
      path: inline/side-by-side.yaml
      repository:
        metadata:
          format: Lava-Test Test Definition 1.0
          name: side-by-side
          description: the results both dispatchers record
        run:
          steps:
{steps}",
        kernel = kernel.display(),
        ramdisk = ramdisk.display(),
        prompt = basalt_e2e::board::PROMPT,
    )
}

/// The `results` records of a log in LAVA's format: one YAML flow mapping a line (`- ` before
/// each in a log file), read as LAVA's server reads them.
fn records(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| line.trim().trim_start_matches("- "))
        .filter(|line| line.contains("\"lvl\": \"results\""))
        .map(|line| {
            basalt::yaml11::from_str(line)
                .unwrap_or_else(|e| panic!("not a log line ({e}): {line}"))["msg"]
                .clone()
        })
        .collect()
}

/// The actions a log starts, `(level, name)`, in order; each must end, after its children.
fn actions(log: &str) -> Vec<(String, String)> {
    let mut started = Vec::new();
    let mut open: Vec<String> = Vec::new();
    for line in log.lines() {
        let line = line.trim().trim_start_matches("- ");
        let Ok(entry) = basalt::yaml11::from_str(line) else {
            continue;
        };
        let Some(msg) = entry["msg"].as_str() else {
            continue;
        };
        let words: Vec<&str> = msg.split_whitespace().collect();
        match words.as_slice() {
            ["start:", level, name, "(timeout", ..] => {
                started.push(((*level).to_owned(), (*name).to_owned()));
                open.push((*level).to_owned());
            }
            ["end:", level, _, "(duration", ..] => {
                assert_eq!(open.pop().as_deref(), Some(*level), "{msg}");
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "never ended: {open:?}");
    started
}

/// The name of the action `level` runs under, if any.
fn parent_name(actions: &[(String, String)], level: &str) -> Option<String> {
    let (parent, _) = level.rsplit_once('.')?;
    actions
        .iter()
        .find(|(l, _)| l == parent)
        .map(|(_, n)| n.clone())
}

/// The level a log gives the action `name` (the first of that name).
fn level_of(log: &str, name: &str) -> String {
    actions(log)
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(l, _)| l)
        .unwrap_or_default()
}

/// What both must agree on for a test case.
fn case_fields(record: &Value) -> Value {
    let mut fields = serde_json::Map::new();
    for key in [
        "definition",
        "case",
        "result",
        "measurement",
        "units",
        "set",
        "reference",
    ] {
        if let Some(value) = record.get(key) {
            fields.insert(key.into(), value.clone());
        }
    }
    Value::Object(fields)
}

#[test]
fn basalt_records_what_lava_run_records_for_every_helper_on_a_qemu_board() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    if !tool_available("lava-run") || !tool_available("qemu-system-x86_64") {
        return;
    }
    let dir = TestDir::new();
    // Local files come from a directory the worker allows (the test's).
    let kernel = dir.path().join("vmlinuz");
    std::fs::copy(basalt_e2e::board::newest_kernel().unwrap(), &kernel).unwrap();
    let ramdisk = dir.path().join("initramfs.cpio.gz");
    basalt_e2e::board::busybox_initramfs(&ramdisk).unwrap();
    let job_file = dir.write("job.yaml", job(&kernel, &ramdisk));
    let dictionary = dir.write(
        "qemu-01.jinja2",
        "{% extends 'qemu.jinja2' %}\n{% set no_kvm = True %}\n{% set memory = 512 %}\n",
    );

    // lava-run takes the device configuration a LAVA server renders with the job's context.
    let render = Basalt::new(["devices", "render"])
        .arg(&dictionary)
        .arg("--device-types")
        .arg(lava.join("device-types"))
        .arg("--format")
        .arg("yaml")
        .arg("--context")
        .arg(&job_file)
        .run();
    assert!(render.status.success(), "{render}");
    let device = dir.write("device.yaml", render.stdout.as_bytes());
    let lava_out = dir.mkdir("out-lava");
    let lava_run = Command::new("lava-run")
        .args(["--job-id", JOB_ID, "--output-dir"])
        .arg(&lava_out)
        .arg("--device")
        .arg(&device)
        .arg(&job_file)
        .output()
        .expect("lava-run starts");
    // lava-run logs to its standard error when it has no server to send the log to.
    let lava_log = String::from_utf8_lossy(&lava_run.stderr).into_owned();
    let lava_records = records(&lava_log);

    let out = dir.path().join("out-basalt");
    let output = Basalt::new(["run", "--quiet", "--job-id", JOB_ID, "--device"])
        .arg(&dictionary)
        .arg("--device-types")
        .arg(lava.join("device-types"))
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(&job_file)
        .timeout(Duration::from_secs(300))
        .run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    assert!(output.status.success(), "{output}\n{log}");
    let basalt_records = records(&log);

    for (name, records, log) in [
        ("lava-run", &lava_records, &lava_log),
        ("basalt", &basalt_records, &log),
    ] {
        let job = records
            .iter()
            .find(|r| r["definition"] == "lava" && r["case"] == "job");
        assert_eq!(
            job.map(|r| r["result"].clone()),
            Some(Value::from("pass")),
            "{name}: {log}"
        );
        let definition = records
            .iter()
            .find(|r| r["definition"] == "lava" && r["case"] == "0_side-by-side");
        assert_eq!(
            definition.map(|r| r["result"].clone()),
            Some(Value::from("pass")),
            "{name}: {log}"
        );
        // The runner was started from the job's directory on the board.
        assert!(
            log.contains("/lava-7/bin/lava-test-runner /lava-7/0"),
            "{name}: {log}"
        );
    }

    let cases = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["definition"] != "lava")
            .map(case_fields)
            .collect()
    };
    let (lava_cases, basalt_cases) = (cases(&lava_records), cases(&basalt_records));
    assert_eq!(
        lava_cases.len(),
        basalt_cases.len(),
        "{lava_cases:#?}\n{basalt_cases:#?}"
    );
    for (theirs, ours) in lava_cases.iter().zip(&basalt_cases) {
        match DELIBERATE
            .iter()
            .find(|(case, _, _)| theirs["case"] == *case)
        {
            Some((case, lava_result, basalt_result)) => {
                assert_eq!(theirs["result"], *lava_result, "lava-run's {case}");
                assert_eq!(ours["result"], *basalt_result, "basalt's {case}");
            }
            None => assert_eq!(ours, theirs),
        }
    }
    // The `lava` suite: the same action records, in the same order.
    let lava_suite = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["definition"] == "lava")
            .cloned()
            .collect()
    };
    let (lava_suite_theirs, lava_suite_ours) =
        (lava_suite(&lava_records), lava_suite(&basalt_records));
    let names = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .map(|r| r["case"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        names(&lava_suite_ours),
        names(&lava_suite_theirs),
        "{lava_suite_ours:#?}"
    );
    for (theirs, ours) in lava_suite_theirs.iter().zip(&lava_suite_ours) {
        let case = theirs["case"].as_str().unwrap_or_default();
        assert_eq!(ours["result"], theirs["result"], "{case}");
        assert_eq!(ours["namespace"], theirs["namespace"], "{case}");
        if let Some((_, fields)) = SHARED_EXTRA.iter().find(|(name, _)| *name == case) {
            for field in *fields {
                assert_eq!(
                    ours["extra"][field], theirs["extra"][field],
                    "{case}: {field}"
                );
            }
            // Both give the action's level and duration, and name the definition's uuid
            // (`<job id>_<level of its repository action>`) where LAVA does.
            assert!(
                ours["level"].as_str().is_some_and(
                    |l| l.contains('.') && l.split('.').all(|n| n.parse::<u32>().is_ok())
                ),
                "{ours}"
            );
            assert!(
                ours["duration"]
                    .as_str()
                    .is_some_and(|d| d.parse::<f64>().is_ok()),
                "{ours}"
            );
            let keys = |extra: &Value| -> Vec<String> {
                extra
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default()
            };
            let (mut their_keys, mut our_keys) = (keys(&theirs["extra"]), keys(&ours["extra"]));
            their_keys.sort();
            our_keys.sort();
            // LAVA computes every checksum of a download; Basalt those the job gives.
            their_keys.retain(|k| k != "md5sum" && k != "sha512sum");
            assert_eq!(our_keys, their_keys, "{case}");
        }
        // The boot's actions sit where LAVA's do; the deploy's count differently, Basalt
        // having no steps for the vland and multinode helpers, the qemu guest image and
        // a separate device environment.
        if ["execute-qemu", "kernel-messages", "login-action"].contains(&case) {
            assert_eq!(ours["level"], theirs["level"], "{case}");
        }
        if case == "0_side-by-side" {
            for field in ["path", "revision", "namespace"] {
                assert_eq!(ours[field], theirs[field], "{case}: {field}");
            }
            let uuid = ours["uuid"].as_str().unwrap_or_default();
            assert_eq!(
                uuid,
                format!("{JOB_ID}_{}", level_of(&log, "inline-repo-action"))
            );
        }
    }
    // Each action's start and end, with its level, LAVA's way: every one Basalt logs
    // is an action lava-run logs too, under the same parent name.
    let (their_actions, our_actions) = (actions(&lava_log), actions(&log));
    for (level, name) in &our_actions {
        let parent = parent_name(&our_actions, level);
        assert!(
            their_actions
                .iter()
                .any(|(l, n)| n == name && parent_name(&their_actions, l) == parent),
            "basalt's {level} {name} (under {parent:?}) is no action of lava-run's: {their_actions:?}"
        );
    }

    // Every helper's case is there: one per lava-test-case and lava-test-reference step.
    let expected = STEPS
        .iter()
        .filter(|s| s.starts_with("lava-test-case") || s.starts_with("lava-test-reference"))
        .count();
    assert_eq!(basalt_cases.len(), expected, "{basalt_cases:#?}");
}
