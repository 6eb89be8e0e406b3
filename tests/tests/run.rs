//! `basalt run` end to end: whole LAVA jobs against the simulated board (tests/src/bin/
//! simboard.rs) on a real pty via connection-command, powered by power-command.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basalt_e2e::simlab::{SimBoard, SimJob};
use basalt_e2e::{case, results, test_program, Basalt, TestDir};
use serde_json::Value;

struct Lab {
    dir: TestDir,
    board: SimBoard,
}

impl Lab {
    /// A beaglebone-black `sim-01` whose console is the simulated board run with
    /// `board_args`.
    fn new(board_args: &str) -> Self {
        let dir = TestDir::new();
        let board = SimBoard::write(dir.path(), "sim-01", &test_program("simboard"), board_args)
            .expect("the simulated board's files");
        Self { dir, board }
    }

    /// The board's dictionary.
    fn dictionary(&self) -> &Path {
        &self.board.dictionary
    }

    /// A job deploying over TFTP whose test runs `steps`, with a boot timeout.
    fn job(&self, steps: &[&str], boot_timeout: u32) -> PathBuf {
        let job = SimJob {
            deploy_to: "tftp",
            action_minutes: 1,
            boot_seconds: boot_timeout,
            ..SimJob::new("simboard job", steps)
        };
        self.board
            .write_job(self.dir.path(), "job.yaml", &job)
            .expect("the job file")
    }

    /// Runs a job as a worker with a TFTP root and an NFS export directory would.
    fn run(&self, job: &Path) -> (basalt_e2e::Output, PathBuf) {
        let out = self.dir.path().join("out");
        let output = Basalt::new(["run", "--quiet", "--device"])
            .arg(self.dictionary())
            .arg("--output-dir")
            .arg(&out)
            .arg("--local-file-dir")
            .arg(self.dir.path())
            .arg("--tftp-root")
            .arg(self.dir.mkdir("tftp"))
            .arg("--nfs-root")
            .arg(self.dir.mkdir("nfs"))
            .arg(job)
            .timeout(Duration::from_secs(240))
            .run();
        (output, out)
    }

    /// Starts a job in the background and waits until its test reported `case`.
    fn start_until_case(
        &self,
        dict: &Path,
        job: &Path,
        case: &str,
    ) -> (std::process::Child, PathBuf) {
        let out = self.dir.path().join("out");
        let mut child = Basalt::new(["run", "--quiet", "--device"])
            .arg(dict)
            .arg("--output-dir")
            .arg(&out)
            .arg("--local-file-dir")
            .arg(self.dir.path())
            .arg("--tftp-root")
            .arg(self.dir.mkdir("tftp"))
            .arg(job)
            .spawn(self.dir.path());
        let deadline = Instant::now() + Duration::from_secs(120);
        let marker = format!("\"case\": \"{case}\"");
        loop {
            let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
            if log.contains(&marker) {
                return (child, out);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("basalt run ended before the test ran: {status}\n{log}");
            }
            assert!(Instant::now() < deadline, "the test never started:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the outlet was told, in order.
    fn power_actions(&self) -> Vec<String> {
        self.board.power_actions()
    }
}

/// Waits for a spawned process to end, failing with `what` after `limit`.
fn wait_for_exit(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job log, parsed as LAVA logs are read: a YAML list of {dt, lvl, msg}.
fn log_entries(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    let entries = basalt::yaml11::from_str(&text).unwrap();
    let entries = entries.as_array().cloned().unwrap();
    for entry in &entries {
        assert!(
            entry["dt"].is_string() && entry["lvl"].is_string(),
            "{entry}"
        );
        assert!(!entry["msg"].is_null(), "{entry}");
    }
    entries
}

#[test]
fn a_passing_job_completes_with_its_results() {
    let lab = Lab::new("");
    let job = lab.job(
        &[
            "lava-test-case uname --shell uname -s",
            "lava-test-case speed --result pass --measurement 12.5 --units MB/s",
            "lava-test-set start net",
            "lava-test-case ping --result pass",
            "lava-test-set stop net",
        ],
        60,
    );
    let (output, out) = lab.run(&job);
    let output = output.success();
    assert_eq!(output.stdout.trim(), "Complete", "{output}");
    let results = results(&out);
    assert_eq!(case(&results, "0_smoke", "uname")["result"], "pass");
    assert_eq!(case(&results, "0_smoke", "speed")["measurement"], 12.5);
    assert_eq!(case(&results, "0_smoke", "speed")["units"], "MB/s");
    assert_eq!(case(&results, "0_smoke", "ping")["detail"], "net");
    assert_eq!(case(&results, "lava", "job")["result"], "pass");
    // As LAVA records actions: those with results of their own (the definition's overlay
    // steps, at their levels under the deploy), none for an action that only passed.
    let runscript = case(&results, "lava", "test-runscript-overlay");
    assert_eq!(runscript["result"], "pass");
    assert_eq!(runscript["extra"]["name"], "smoke");
    assert_eq!(runscript["level"], "1.1.1.4");
    // The definition's uuid names its repository action's level, as LAVA's does.
    let uuid = runscript["extra"]["uuid"].as_str().unwrap_or_default();
    assert!(uuid.ends_with("_1.1.1.1"), "{runscript}");
    assert!(
        !results.iter().any(|r| r["name"] == "minimal-boot"),
        "{results:#?}"
    );
    // The kernel's messages were scanned on the way to the prompt, and were clean.
    assert_eq!(
        case(&results, "lava", "login-action")["extra"]["success"],
        "No kernel warnings or errors detected."
    );
    assert_eq!(case(&results, "lava", "kernel-messages")["result"], "pass");
    // The boot's reset, LAVA's reset-device > pdu-reboot under minimal-boot.
    let reboot = case(&results, "lava", "pdu-reboot");
    assert_eq!(reboot["extra"]["status"], "success");
    assert_eq!(reboot["level"], "2.1.1");
    let entries = log_entries(&out);
    assert!(entries.iter().any(|e| e["lvl"] == "target"
        && e["msg"]
            .as_str()
            .is_some_and(|m| m.contains("Linux version 6.1.0-simboard"))));
    assert!(entries
        .iter()
        .any(|e| e["lvl"] == "results" && e["msg"]["case"] == "speed"));
    let junit = std::fs::read_to_string(out.join("results.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"0_smoke\" tests=\"3\" failures=\"0\""),
        "{junit}"
    );
    assert!(out.join("deploy").read_dir().unwrap().count() == 1);
    // Reset for the boot, and always off at the end.
    assert_eq!(lab.power_actions(), ["reset", "off"]);
}

#[test]
fn a_u_boot_job_interrupts_autoboot_and_sends_the_device_commands() {
    let lab = Lab::new("--countdown 5");
    lab.dir.write("board.dtb", b"a device tree");
    let rootfs = lab.dir.mkdir("rootfs");
    std::fs::write(rootfs.join("etc-issue"), "Simboard Linux\n").unwrap();
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(lab.dir.path().join("rootfs.tar.gz"))
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let job = lab.dir.write(
        "uboot-job.yaml",
        format!(
            "job_name: simboard u-boot
device_type: beaglebone-black
timeouts:
  job: {{minutes: 4}}
  action: {{minutes: 1}}
visibility: public
actions:
- deploy:
    to: tftp
    kernel:
      url: file://{dir}/kernel.img
      type: zimage
    dtb:
      url: file://{dir}/board.dtb
    nfsrootfs:
      url: file://{dir}/rootfs.tar.gz
- boot:
    method: u-boot
    commands: nfs
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@simboard:~# ']
- test:
    definitions:
    - from: inline
      name: after-uboot
      path: inline/after.yaml
      repository:
        metadata: {{format: Lava-Test Test Definition 1.0, name: after-uboot}}
        run:
          steps: ['lava-test-case booted --result pass']
",
            dir = lab.dir.path().display()
        ),
    );
    let (output, out) = lab.run(&job);
    output.success();
    let entries = log_entries(&out);
    let sent: Vec<&str> = entries
        .iter()
        .filter(|e| e["lvl"] == "input")
        .filter_map(|e| e["msg"].as_str())
        .collect();
    // Files are loaded by their names under the TFTP root, the NFS root is the extracted
    // tree, and commands for files the job did not deploy (a ramdisk) are left out.
    assert!(
        sent.contains(&"tftp 0x82000000 out/kernel/kernel.img\n"),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"tftp 0x88000000 out/dtb/board.dtb\n"),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"bootz 0x82000000 - 0x88000000\n"),
        "{sent:?}"
    );
    // As in LAVA, only commands naming a placeholder without a value are dropped:
    // `setenv initrd_size ${filesize}` names none and is still sent.
    assert!(!sent.iter().any(|s| s.contains("RAMDISK")), "{sent:?}");
    assert!(
        sent.contains(&"setenv initrd_size ${filesize}\n"),
        "{sent:?}"
    );
    let nfs = lab.dir.path().join("nfs/out");
    let bootargs = sent
        .iter()
        .find(|s| s.starts_with("setenv bootargs"))
        .unwrap();
    assert!(
        bootargs.contains(&format!("nfsroot=127.0.0.1:{},tcp,hard", nfs.display())),
        "{bootargs}"
    );
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(log.contains("Extracted nfsroot to"), "{log}");
    // The job's files leave the servers' directories when it ends.
    assert!(!lab.dir.path().join("tftp/out").exists());
    assert!(!nfs.exists());
    let results = results(&out);
    assert_eq!(case(&results, "0_after-uboot", "booted")["result"], "pass");
}

#[test]
fn a_failing_test_case_still_completes_the_job() {
    let lab = Lab::new("");
    let job = lab.job(
        &[
            "lava-test-case works --shell true",
            "lava-test-case broken --shell false",
        ],
        60,
    );
    let (output, out) = lab.run(&job);
    output.success();
    let results = results(&out);
    assert_eq!(case(&results, "0_smoke", "works")["result"], "pass");
    assert_eq!(case(&results, "0_smoke", "broken")["result"], "fail");
    assert_eq!(case(&results, "lava", "job")["result"], "pass");
    let junit = std::fs::read_to_string(out.join("results.xml")).unwrap();
    assert!(junit.contains("failures=\"1\""), "{junit}");
}

/// A kernel that panics on its way to the login prompt ends the job at once with LAVA's
/// job error, the panic in the `kernel-messages` record (LAVA's `LinuxKernelMessages`).
#[test]
fn a_kernel_panic_before_the_prompt_ends_the_job_with_the_panic_recorded() {
    let lab = Lab::new("--never-boot");
    let job = lab.job(&["lava-test-case never --result pass"], 10);
    let started = Instant::now();
    let (output, out) = lab.run(&job);
    // `basalt run` exits 11 for a job error.
    assert_eq!(output.status.code(), Some(11), "{output}");
    assert!(output.stdout.starts_with("Incomplete JobError"), "{output}");
    // Not the boot's timeout: the panic's end line ends the wait.
    assert!(started.elapsed() < Duration::from_secs(60));
    let result = std::fs::read_to_string(out.join("result.yaml")).unwrap();
    assert!(result.contains("JobError"), "{result}");
    assert!(
        result.contains("Kernel panic - not syncing: VFS"),
        "{result}"
    );
    let results = results(&out);
    let messages = case(&results, "lava", "kernel-messages");
    assert_eq!(messages["result"], "fail");
    assert_eq!(messages["extra"]["extra"][0]["kind"], "panic");
    let login = case(&results, "lava", "login-action");
    assert_eq!(login["result"], "fail");
    assert_eq!(messages["level"], login["level"]);
    let boot = case(&results, "lava", "minimal-boot");
    assert_eq!(boot["result"], "fail");
    assert_eq!(boot["level"], "2");
    assert!(
        boot["extra"]["fail"]
            .as_str()
            .unwrap()
            .contains("Kernel panic"),
        "{boot}"
    );
    assert_eq!(case(&results, "lava", "job")["result"], "fail");
    assert_eq!(lab.power_actions().last().map(String::as_str), Some("off"));
    log_entries(&out);
}

/// The job's `failure_message` seen on the way to the prompt ends the boot as LAVA ends it:
/// a job error naming it, and a `custom-error` in the kernel message record.
#[test]
fn the_jobs_failure_message_before_the_prompt_fails_the_boot() {
    let lab = Lab::new("");
    let job = lab.job(&["lava-test-case never --result pass"], 60);
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "    prompts: ['root@simboard:~# ']\n",
        "    prompts: ['root@simboard:~# ']\n    failure_message: 'Serial: 8250'\n",
    );
    assert!(text.contains("failure_message"), "{text}");
    std::fs::write(&job, text).unwrap();
    let (output, out) = lab.run(&job);
    assert_eq!(output.status.code(), Some(11), "{output}");
    assert!(
        output
            .stdout
            .contains("Matched job-specific failure message: 'Serial: 8250'"),
        "{output}"
    );
    let results = results(&out);
    let messages = case(&results, "lava", "kernel-messages");
    assert_eq!(messages["result"], "fail");
    assert_eq!(messages["extra"]["extra"][0]["message"], "kernel-messages");
    assert!(
        !results.iter().any(|r| r["suite"] == "0_smoke"),
        "{results:#?}"
    );
}

/// A kernel WARNING on the way to the prompt is recorded, from its `cut here` line to its
/// end marker, and the job goes on: LAVA's kernel message scan. A `WARNING:` whose end marker
/// never comes before the login prompt is dropped, and the scan stops at the prompt.
#[test]
fn a_kernel_warning_before_the_prompt_is_recorded_and_the_job_goes_on() {
    let lab = Lab::new("--kernel-warning");
    let job = lab.job(&["lava-test-case after --result pass"], 60);
    let (output, out) = lab.run(&job);
    output.success();
    let results = results(&out);
    let messages = case(&results, "lava", "kernel-messages");
    assert_eq!(messages["result"], "pass");
    let found = &messages["extra"]["extra"];
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{messages}");
    assert_eq!(found[0]["kind"], "warning");
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("------------[ cut here ]------------"),
        "{message}"
    );
    assert!(
        message.contains("WARNING: CPU: 0 PID: 1 at drivers/simboard/sim.c:42"),
        "{message}"
    );
    assert!(
        message.ends_with("---[ end trace 0000000000000000 ]---"),
        "{message:?}"
    );
    // lava-dispatcher 2023.01 lists them under `fail` of the login action's results.
    assert_eq!(
        case(&results, "lava", "login-action")["extra"]["fail"],
        *found
    );
    assert_eq!(case(&results, "0_smoke", "after")["result"], "pass");
}

#[test]
fn a_job_canceled_mid_test_powers_off_and_says_canceled() {
    let lab = Lab::new("");
    let job = lab.job(&["lava-test-case before --result pass", "sleep 120"], 60);
    let (mut child, out) = lab.start_until_case(lab.dictionary(), &job, "before");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_for_exit(&mut child, Duration::from_secs(60), "cancel took too long");
    assert_eq!(status.code(), Some(15));
    let result = std::fs::read_to_string(out.join("result.yaml")).unwrap();
    let result = basalt::yaml11::from_str(&result).unwrap();
    assert_eq!(result["status"], "Canceled", "{result}");
    // Quoted, so YAML 1.1 reads a string (a plain `off` is the boolean false).
    assert_eq!(result["power_state"], "unknown", "{result}");
    assert_eq!(lab.power_actions().last().map(String::as_str), Some("off"));
    let results = results(&out);
    assert_eq!(case(&results, "0_smoke", "before")["result"], "pass");
    log_entries(&out);
}

/// A gzip-compressed newc ramdisk holding `names` (one byte each), as a distribution's is.
/// The anchor job: the form LAVA users write for qemu (ramdisk `compression: gz`, `format:
/// cpio.newc`, `overlays: {lava: true}`, kernel `image_arg` with `-append`), on the
/// dictionary lava-run 2023.01 ran it with. QEMU gets the command lava-run logged, the
/// ramdisk the LAVA overlay, and the job completes.
#[test]
fn a_qemu_job_runs_the_command_line_lava_builds_with_the_overlay_in_its_ramdisk() {
    let dir = TestDir::new();
    let bin = dir.mkdir("fake-bin");
    let args_file = dir.path().join("qemu-args");
    // The overlay's directory on the "guest", which is this machine's file system.
    let board_dir = format!("{}/lava-7", dir.path().display());
    // Stands in for QEMU: records its command line, "boots" the ramdisk it was given (the
    // overlay's part of it is all the guest's shell needs: it runs on this machine), prints a
    // boot, gives a shell.
    let fake = dir.write(
        "fake-bin/qemu-system-x86_64",
        format!(
            "#!/bin/sh\necho \"$@\" > {args}\n\
             while [ $# -gt 0 ]; do [ \"$1\" = -initrd ] && initrd=\"$2\"; shift; done\n\
             zcat \"$initrd\" | (cd / && cpio -idm --quiet '{overlay}/*')\n\
             echo 'SeaBIOS (version 1.16.2)'\n\
             echo '[    0.000000] Linux version 6.1.0 (guest)'\nprintf 'qemu login: '\nread user\n\
             PS1='root@qemu:~# ' exec /bin/sh -i\n",
            args = args_file.display(),
            overlay = board_dir.trim_start_matches('/'),
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.write("vmlinuz", b"kernel");
    dir.write(
        "ramdisk.cpio.gz",
        common::gz_ramdisk(&["init", "bin/busybox"]),
    );
    let dict = dir.write(
        "vm-01.jinja2",
        "{% extends 'qemu.jinja2' %}\n{% set arch = 'amd64' %}\n{% set no_kvm = True %}\n\
         {% set memory = 512 %}\n{% set netdevice = 'user,restrict=on' %}\n\
         {% set lava_test_results_dir = 'DIR/lava-%s' %}\n"
            .replace("DIR", &dir.path().display().to_string()),
    );
    let job = dir.write(
        "job.yaml",
        format!(
            "job_name: qemu guest
device_type: qemu
context: {{arch: amd64}}
timeouts:
  job: {{minutes: 3}}
  action: {{minutes: 1}}
visibility: public
actions:
- deploy:
    to: tmpfs
    images:
      kernel:
        image_arg: -kernel {{kernel}} -append \"console=ttyS0,115200\"
        url: 'file://{d}/vmlinuz'
      ramdisk:
        image_arg: -initrd {{ramdisk}}
        url: 'file://{d}/ramdisk.cpio.gz'
        compression: gz
        format: cpio.newc
        overlays:
          lava: true
- boot:
    method: qemu
    media: tmpfs
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@qemu:~# ']
- test:
    definitions:
    - from: inline
      name: guest
      path: inline/guest.yaml
      repository:
        metadata: {{format: Lava-Test Test Definition 1.0, name: guest}}
        run:
          steps: ['lava-test-case in-guest --shell true']
",
            d = dir.path().display()
        ),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--job-id", "7", "--device"])
        .arg(&dict)
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(&job)
        .env("PATH", path)
        .timeout(Duration::from_secs(120))
        .run()
        .success();
    assert_eq!(output.stdout.trim(), "Complete", "{output}");
    let args = std::fs::read_to_string(&args_file).unwrap();
    // What lava-run 2023.01 logged for this job and device (the shell took the quotes).
    assert_eq!(
        args.trim_end(),
        format!(
            "-nographic -net nic,model=virtio,macaddr=52:54:00:12:34:58 -net user,restrict=on \
             -m 512 -monitor none -kernel {o}/deploy/kernel/vmlinuz -append console=ttyS0,115200 \
             -initrd {o}/deploy/ramdisk/ramdisk.cpio.gz",
            o = out.display()
        )
    );
    let names = basalt::dispatcher::archive::ramdisk_names(
        &out.join("deploy/ramdisk/ramdisk.cpio.gz"),
        false,
    )
    .unwrap();
    assert_eq!(names[..2], ["init", "bin"], "{names:?}");
    assert!(
        names.contains(&format!(
            "{}/bin/lava-test-case",
            board_dir.trim_start_matches('/')
        )),
        "{names:?}"
    );
    let results = results(&out);
    assert_eq!(case(&results, "0_guest", "in-guest")["result"], "pass");
}

#[test]
fn user_commands_retries_git_definitions_and_interactive_tests() {
    let lab = Lab::new("");
    let flag = lab.dir.path().join("flaky-flag");
    let marks = lab.dir.path().join("marks");
    // The dictionary gains two user commands: one that fails once, one with an undo.
    let dict = lab.dictionary();
    let mut text = std::fs::read_to_string(dict).unwrap();
    text.push_str(&format!(
        "{{% set user_commands = {{'flaky': {{'do': 'test -f {f} || {{ touch {f}; exit 1; }}'}}, \
         'mark': {{'do': 'echo done >> {m}', 'undo': 'echo undone >> {m}'}}}} %}}\n",
        f = flag.display(),
        m = marks.display()
    ));
    std::fs::write(dict, text).unwrap();
    // A local git repository holding a test definition.
    let repo = lab.dir.mkdir("tests-repo");
    std::fs::write(
        repo.join("smoke.yaml"),
        "metadata: {format: Lava-Test Test Definition 1.0, name: from-git}\n\
         params: {GREETING: hello}\n\
         run:\n  steps:\n    - lava-test-case greeting --shell test \"$GREETING\" = hello\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=basalt",
                "-c",
                "user.email=basalt@localhost",
            ])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "smoke.yaml"]);
    git(&["commit", "-q", "-m", "smoke"]);
    let job = lab.dir.write(
        "job2.yaml",
        format!(
            "job_name: commands and tests
device_type: beaglebone-black
timeouts:
  job: {{minutes: 4}}
  action: {{minutes: 1}}
visibility: public
actions:
- command:
    name: flaky
    failure_retry: 2
- command:
    name: mark
- boot:
    method: minimal
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@simboard:~# ']
- test:
    definitions:
    - from: git
      repository: {repo}
      path: smoke.yaml
      name: from-git
- test:
    interactive:
    - name: shell-check
      prompts: ['root@simboard:~# ']
      script:
      - name: says-hello
        command: echo hello-$((40+2))
        successes:
        - message: hello-42
        failures:
        - message: not found
",
            repo = repo.display()
        ),
    );
    let (output, out) = lab.run(&job);
    output.success();
    let results = results(&out);
    assert_eq!(case(&results, "0_from-git", "greeting")["result"], "pass");
    assert_eq!(
        case(&results, "1_shell-check", "says-hello")["result"],
        "pass"
    );
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(log.contains("user-command (2 of 2)"), "{log}");
    assert!(log.contains("Retrying: "), "{log}");
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "done\nundone\n");
}

/// LAVA's `repeat:` runs an action that many times whatever each run gives: a command that
/// always passes runs twice and the job goes on; one whose first run fails still runs three
/// times, and then fails the job with LAVA's "3 retries out of 3 failed".
#[test]
fn repeat_runs_every_time_and_fails_at_the_end_when_a_run_failed() {
    let lab = Lab::new("");
    let always = lab.dir.path().join("always-runs");
    let first = lab.dir.path().join("first-fails-runs");
    let dict = lab.dictionary();
    let mut text = std::fs::read_to_string(dict).unwrap();
    text.push_str(&format!(
        "{{% set user_commands = {{'always': {{'do': 'echo run >> {a}'}}, \
         'first-fails': {{'do': 'echo run >> {f}; [ $(wc -l < {f}) -gt 1 ]'}}}} %}}\n",
        a = always.display(),
        f = first.display()
    ));
    std::fs::write(dict, text).unwrap();
    let job = lab.dir.write(
        "repeat.yaml",
        "job_name: repeat
device_type: beaglebone-black
timeouts:
  job: {minutes: 2}
  action: {minutes: 1}
visibility: public
actions:
- command:
    name: always
    repeat: 2
- command:
    name: first-fails
    repeat: 3
",
    );
    let (output, out) = lab.run(&job);
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    assert!(!output.status.success(), "{log}");
    let runs = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!((runs(&always), runs(&first)), (2, 3), "{log}");
    assert!(
        log.contains("user-command failed: 1 of 3 attempts."),
        "{log}"
    );
    assert!(
        log.contains("3 retries out of 3 failed for user-command"),
        "{log}"
    );
}

#[test]
fn a_second_sigterm_forces_a_job_whose_cleanup_hangs() {
    let lab = Lab::new("");
    let dict = lab.dictionary();
    let mut text = std::fs::read_to_string(dict).unwrap();
    text.push_str("{% set power_off_command = 'sleep 60' %}\n");
    std::fs::write(dict, text).unwrap();
    let job = lab.job(&["lava-test-case before --result pass", "sleep 120"], 60);
    let (mut child, _out) = lab.start_until_case(dict, &job, "before");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // The clean cancel now hangs in the power-off command; a second signal ends it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the hanging power-off should still run"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_for_exit(
        &mut child,
        Duration::from_secs(10),
        "the second SIGTERM did not force it",
    );
    assert_eq!(status.code(), Some(1));
}

/// A job whose log fills the disk ends Incomplete with the reason, its log whole lines up to
/// there, and the board powered off: never Complete on a log with a hole in it.
#[test]
fn a_job_whose_log_cannot_be_written_ends_incomplete_and_says_why() {
    let lab = Lab::new("");
    let job = lab.job(
        &[
            "for i in $(seq 1 3000); do echo \"line $i of a chatty test that fills the disk\"; done",
            "lava-test-case after --result pass",
        ],
        60,
    );
    let out = lab.dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--device"])
        .arg(lab.dictionary())
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(lab.dir.path())
        .arg("--tftp-root")
        .arg(lab.dir.mkdir("tftp"))
        .arg(&job)
        .max_file_size(64 * 1024)
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(output.status.code(), Some(10), "{output}");
    assert!(
        output
            .stdout
            .starts_with("Incomplete InfrastructureError: the job log"),
        "{output}"
    );
    assert!(output.stdout.contains("cannot be written"), "{output}");
    let text = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(text.len() <= 64 * 1024 && text.ends_with('\n'));
    let entries = log_entries(&out);
    assert!(
        !entries.iter().any(|e| e["msg"] == "Job finished correctly"),
        "the log must not claim completion"
    );
    let result =
        basalt::yaml11::from_str(&std::fs::read_to_string(out.join("result.yaml")).unwrap())
            .unwrap();
    assert_eq!(result["status"], "Incomplete", "{result}");
    assert_eq!(result["error_type"], "InfrastructureError", "{result}");
    assert_eq!(lab.power_actions().last().map(String::as_str), Some("off"));
}

/// `compression: gz` (made by gzip) with the checksum of the compressed file, as LAVA's
/// jobs give them: the kernel lands decompressed, named without `.gz`, and the job passes; a
/// truncated archive fails the job naming the artifact.
#[test]
fn a_compressed_kernel_is_decompressed_and_a_truncated_one_fails_the_job() {
    let lab = Lab::new("");
    let kernel = lab.dir.path().join("kernel.img");
    let original = std::fs::read(&kernel).unwrap();
    let status = std::process::Command::new("gzip")
        .args(["-k", "-f"])
        .arg(&kernel)
        .status()
        .unwrap();
    assert!(status.success());
    let packed = lab.dir.path().join("kernel.img.gz");
    let sum = std::process::Command::new("sha256sum")
        .arg(&packed)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let job = lab.job(&["lava-test-case booted --result pass"], 60);
    let text = std::fs::read_to_string(&job).unwrap().replace(
        &format!("url: file://{}", kernel.display()),
        &format!(
            "url: file://{}\n      compression: gz\n      sha256sum: '{sum}'",
            packed.display()
        ),
    );
    std::fs::write(&job, &text).unwrap();
    let (output, out) = lab.run(&job);
    output.success();
    assert_eq!(
        std::fs::read(out.join("deploy/kernel/kernel.img")).unwrap(),
        original
    );
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(log.contains("decompressed"), "{log}");

    let bytes = std::fs::read(&packed).unwrap();
    std::fs::write(&packed, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(
        &job,
        text.replace(&format!("sha256sum: '{sum}'"), "md5sum: null"),
    )
    .unwrap();
    let (output, out) = lab.run(&job);
    assert_eq!(output.status.code(), Some(11), "a JobError: {output}");
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(log.contains("kernel: the gz data of"), "{log}");
    assert!(log.contains("corrupt or truncated"), "{log}");
}
