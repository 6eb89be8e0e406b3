//! The LAVA test shell on a board with a real shell (the simulated board runs `/bin/sh -i`):
//! the overlay sent over the console, every helper of LAVA's overlay called the way test
//! definitions call it, and the result records LAVA makes of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_e2e::simlab::SimBoard;
use basalt_e2e::{case, results, test_program, Basalt, TestDir};

struct Lab {
    dir: TestDir,
    board: SimBoard,
}

/// The boot action of most jobs here: power on, log in as root.
const LOGIN_BOOT: &str = "- boot:
    method: minimal
    auto_login: {login_prompt: 'login: ', username: root}
    prompts: ['root@simboard:~# ']
";

impl Lab {
    /// A board whose dictionary also gives the facts the helpers print.
    fn new() -> Self {
        let dir = TestDir::new();
        let board = SimBoard::write(dir.path(), "sim-01", &test_program("simboard"), "")
            .expect("the simulated board's files");
        let mut text = std::fs::read_to_string(&board.dictionary).unwrap();
        text.push_str(
            "{% set device_ip = '10.1.2.3' %}\n{% set device_mac = '52:54:00:aa:bb:cc' %}\n\
             {% set static_info = [{'board_id': 'b-1'}, {'probe_channel': '2', 'probe_ip': '10.9.9.9'}] %}\n\
             {% set storage_info = [{'SATA': '/dev/disk/by-id/ata-1'}, {'UMS': '/dev/disk/by-id/usb-2'}] %}\n",
        );
        std::fs::write(&board.dictionary, text).unwrap();
        Self { dir, board }
    }

    /// Runs a job of `tests` (the YAML of its test actions) after a deploy and a boot that
    /// logs in.
    fn run(&self, tests: &str) -> (basalt_e2e::Output, PathBuf) {
        self.run_with_boot(tests, LOGIN_BOOT)
    }

    /// As [`Lab::run`], with `boot` as the boot action (YAML, `- boot:` and its keys).
    fn run_with_boot(&self, tests: &str, boot: &str) -> (basalt_e2e::Output, PathBuf) {
        let job = self.dir.write(
            "job.yaml",
            format!(
                "job_name: test shell
device_type: beaglebone-black
timeouts:
  job: {{minutes: 4}}
  action: {{minutes: 2}}
visibility: public
actions:
- deploy:
    to: tmpfs
    kernel:
      url: file://{kernel}
{boot}{tests}",
                kernel = self.board.kernel.display()
            ),
        );
        self.run_job(&job)
    }

    /// Runs the job file `job` as job 41, the worker at 127.0.0.1.
    fn run_job(&self, job: &Path) -> (basalt_e2e::Output, PathBuf) {
        let out = self.dir.path().join("out");
        let output = Basalt::new([
            "run",
            "--quiet",
            "--job-id",
            "41",
            "--server-ip",
            "127.0.0.1",
        ])
        .arg("--device")
        .arg(&self.board.dictionary)
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(self.dir.path())
        .arg(job)
        .timeout(Duration::from_secs(240))
        .run();
        (output, out)
    }

    fn board_dir(&self) -> String {
        format!("{}/lava-41", self.dir.path().display())
    }
}

/// One definition whose steps use every helper, one that reads what the runner left, one
/// with `expected:` and a `parse:` pattern, and one with an install step: each helper's
/// output and signal is checked through the result it produces.
#[test]
fn every_helper_of_the_overlay_works_on_a_real_shell_and_gives_lavas_records() {
    let lab = Lab::new();
    let tests = r#"- test:
    definitions:
    - from: inline
      name: every-helper
      path: inline/every-helper.yaml
      parameters: {GREETING: hello}
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: every-helper}
        params: {GREETING: unset, OTHER: kept}
        install:
          steps: [touch installed-by-install-sh]
        run:
          steps:
          - lava-test-case recorded --result pass
          - lava-test-case measured --result pass --measurement 42.5 --units ms
          - lava-test-case shell-passes --shell test "$GREETING" = hello
          - lava-test-case shell-fails --shell false
          - lava-test-case params --shell test "$OTHER" = kept
          - test -f installed-by-install-sh && lava-test-case install-ran --result pass
          - lava-test-set start set-a
          - lava-test-case in-set --result skip
          - lava-test-set stop
          - lava-test-case after-set --result unknown
          - lava-test-reference referenced --result fail --reference https://example.org/log/1
          - lava-test-event board-ready
          - lava-test-feedback --namespace common
          - test "$(lava-target-ip)" = 10.1.2.3 && lava-test-case target-ip --result pass
          - test "$(lava-target-mac)" = 52:54:00:aa:bb:cc && lava-test-case target-mac --result pass
          - test "$(lava-probe-ip)" = 10.9.9.9 && lava-test-case probe-ip --result pass
          - test "$(lava-probe-channel)" = 2 && lava-test-case probe-channel --result pass
          - test "$(lava-target-storage UMS)" = /dev/disk/by-id/usb-2 && lava-test-case storage-method --result pass
          - lava-target-storage | grep -q "SATA" && lava-test-case storage-all --result pass
          - if lava-target-storage NVME; then exit 1; fi; lava-test-case storage-missing --result pass
          - test "$(lava-echo-ipv4)" = "Specify the interface to query" && lava-test-case echo-ipv4-usage --result pass
          - test -n "$(lava-os-build)" && lava-test-case os-build --result pass
          - lava-installed-packages | grep -q "cannot obtain list" && lava-test-case installed-packages --result pass
          - lava-install-packages curl | grep -q "^- curl$" && lava-test-case install-packages --result pass
          - lava-add-keys 0xDEADBEEF | grep -q "cannot add key" && lava-test-case add-keys --result pass
          - lava-add-sources http://deb.example.org | grep -q "^- http://deb.example.org$" && lava-test-case add-sources --result pass
          - lava-background-process-start ticker --cmd "echo tick >> $LAVA_RESULT_DIR/ticks"
          - sleep 2
          - lava-background-process-stop ticker
          - test -s "$LAVA_RESULT_DIR/ticks" && lava-test-case background --result pass
          - test "$(cat "$LAVA_RESULT_DIR/results/recorded/result")" = pass && lava-test-case result-files --result pass
          - lava-test-case 2>/dev/null || lava-test-case usage --result pass
    - from: inline
      name: after
      path: after.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: after}
        run:
          steps:
          - test "$(cat ../../results/0_every-helper-*/return_code)" = 0 && lava-test-case return-code --result pass
          - test "$(cat ../../results/0_every-helper-*/install_return_code)" = 0 && lava-test-case install-return-code --result pass
          - test "$TESTRUN_ID" = 1_after && lava-test-case testrun-id --result pass
          - test "$(cat uuid)" = 41_1.1.1.5 && lava-test-case uuid --result pass
- test:
    definitions:
    - from: inline
      name: patterns
      path: patterns.yaml
      expected: [parsed-one, signalled, never-reported]
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: patterns}
        parse:
          pattern: '^(?P<test_case_id>[a-z-]+): (?P<result>PASS|FAIL)'
        run:
          steps:
          - "echo 'parsed-one: PASS'"
          - lava-test-case signalled --result pass
          - lava-test-case unexpected --result pass
"#;
    let (output, out) = lab.run(tests);
    let output = output.success();
    assert_eq!(output.stdout.trim(), "Complete", "{output}");
    let results = results(&out);
    let suite = "0_every-helper";
    let result = |name: &str| case(&results, suite, name)["result"].clone();
    for name in [
        "recorded",
        "measured",
        "shell-passes",
        "params",
        "install-ran",
        "target-ip",
        "target-mac",
        "probe-ip",
        "probe-channel",
        "storage-method",
        "storage-all",
        "storage-missing",
        "echo-ipv4-usage",
        "os-build",
        "installed-packages",
        "install-packages",
        "add-keys",
        "add-sources",
        "background",
        "result-files",
        "usage",
    ] {
        assert_eq!(result(name), "pass", "{name}: {results:#?}");
    }
    assert_eq!(result("shell-fails"), "fail");
    assert_eq!(result("after-set"), "unknown");
    let measured = case(&results, suite, "measured");
    assert_eq!(measured["measurement"], 42.5);
    assert_eq!(measured["units"], "ms");
    let in_set = case(&results, suite, "in-set");
    assert_eq!(in_set["result"], "skip");
    assert_eq!(in_set["set"], "set-a");
    assert!(case(&results, suite, "after-set").get("set").is_none());
    let referenced = case(&results, suite, "referenced");
    assert_eq!(referenced["result"], "fail");
    assert_eq!(referenced["reference"], "https://example.org/log/1");
    // A --shell case spans its STARTTC and ENDTC lines; a recorded one is a single line.
    let shell = case(&results, suite, "shell-passes");
    let (start, end) = (
        shell["starttc"].as_u64().unwrap(),
        shell["endtc"].as_u64().unwrap(),
    );
    assert!(start < end, "{shell}");
    let recorded = case(&results, suite, "recorded");
    assert_eq!(recorded["starttc"], recorded["endtc"]);
    for name in ["return-code", "install-return-code", "testrun-id", "uuid"] {
        assert_eq!(case(&results, "1_after", name)["result"], "pass", "{name}");
    }
    // The lava suite's record of each definition run.
    let run = case(&results, "lava", suite);
    assert_eq!(run["result"], "pass");
    assert_eq!(run["uuid"], "41_1.1.1.1");
    assert_eq!(run["path"], "inline/every-helper.yaml");
    assert_eq!(run["revision"], "unspecified");
    assert_eq!(run["namespace"], "common");
    assert!(run["duration"].as_str().unwrap().parse::<f64>().unwrap() >= 2.0);
    // Pattern matches, expected cases: a missing one fails with LAVA's reason, an unexpected
    // one is forced to fail.
    assert_eq!(case(&results, "2_patterns", "parsed-one")["result"], "pass");
    assert_eq!(case(&results, "2_patterns", "signalled")["result"], "pass");
    assert_eq!(case(&results, "2_patterns", "unexpected")["result"], "fail");
    let missing = case(&results, "2_patterns", "never-reported");
    assert_eq!(missing["result"], "fail");
    assert_eq!(
        missing["level"], "4.1",
        "lava-test-shell's level, as LAVA's"
    );
    assert_eq!(
        missing["extra"]["reason"],
        "missing expected test cases are reported as 'fail' by LAVA."
    );
    // The overlay is where LAVA puts it, with every helper.
    let bin = Path::new(&lab.board_dir()).join("bin");
    assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 22);
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(
        log.contains("event: board-ready"),
        "the TESTEVENT is logged"
    );
    assert!(log.contains("Sending the LAVA overlay over the console"));
    assert!(log.contains(&format!(
        "{}/bin/lava-test-runner {}/0",
        lab.board_dir(),
        lab.board_dir()
    )));
}

/// `lava-test-raise` ends the job with a TestError carrying its message, and a definition
/// that never reaches its ENDRUN is recorded as a failed run.
#[test]
fn lava_test_raise_ends_the_job_with_a_test_error() {
    let lab = Lab::new();
    let tests = r#"- test:
    definitions:
    - from: inline
      name: raising
      path: raising.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: raising}
        run:
          steps:
          - lava-test-case before --result pass
          - lava-test-raise the board lost its network
          - lava-test-case never --result pass
"#;
    let (output, out) = lab.run(tests);
    assert_eq!(output.status.code(), Some(12), "{output}");
    assert!(
        output
            .stdout
            .starts_with("Incomplete TestError: the board lost its network"),
        "{output}"
    );
    let results = results(&out);
    assert_eq!(case(&results, "0_raising", "before")["result"], "pass");
    assert!(!results.iter().any(|c| c["name"] == "never"));
    assert_eq!(case(&results, "lava", "0_raising")["result"], "fail");
}

/// A failing install.sh skips its definition's run and fails the action, as LAVA's
/// INSTALL_FAIL does.
#[test]
fn a_failing_install_step_skips_the_run_and_fails_the_action() {
    let lab = Lab::new();
    let tests = r#"- test:
    definitions:
    - from: inline
      name: broken-install
      path: broken.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: broken-install}
        install:
          steps: ['false']
        run:
          steps: ['lava-test-case ran --result pass']
"#;
    let (output, out) = lab.run(tests);
    assert_eq!(output.status.code(), Some(12), "{output}");
    assert!(
        output.stdout.contains("Unable to start test stage 0"),
        "{output}"
    );
    assert!(!results(&out).iter().any(|c| c["name"] == "ran"));
}

/// `monitors:` watch a board that has no shell (as RTOS images have): between the start and
/// end messages, each match of the pattern is a result, named as LAVA names them.
#[test]
fn monitors_record_what_the_console_prints_without_a_shell() {
    let lab = Lab::new();
    let tests = r#"- test:
    monitors:
    - name: Kernel Boot
      start: Booting Linux
      end: Welcome to Simboard Linux
      pattern: '(?P<test_case_id>Serial|Freeing unused kernel memory): (?P<result>8250|1024K)'
      fixupdict: {'8250': pass, 1024K: fail}
"#;
    let (output, out) = lab.run_with_boot(tests, "- boot:\n    method: minimal\n");
    let output = output.success();
    assert_eq!(output.stdout.trim(), "Complete", "{output}");
    let results = results(&out);
    assert_eq!(case(&results, "kernel-boot", "serial")["result"], "pass");
    let freeing = case(&results, "kernel-boot", "freeing_unused_kernel_memory");
    assert_eq!(freeing["result"], "fail");
    assert_eq!(
        freeing["level"], "3.1",
        "lava-test-monitor's level, as LAVA's"
    );
}

/// LAVA's `transfer_overlay`: the board downloads the overlay from the worker with the job's
/// `download_command` (the real wget here) and unpacks it with its `unpack_command`.
#[test]
fn transfer_overlay_has_the_board_download_and_unpack_the_overlay() {
    let lab = Lab::new();
    let tests = r#"- test:
    definitions:
    - from: inline
      name: fetched
      path: fetched.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: fetched}
        run: {steps: ['lava-test-case over-http --result pass']}
"#;
    let home = lab.dir.mkdir("home");
    let boot = format!(
        "{LOGIN_BOOT}    transfer_overlay:\n      download_command: cd {} && wget -q\n      unpack_command: tar -C / -xzf\n",
        home.display()
    );
    let (output, out) = lab.run_with_boot(tests, &boot);
    let output = output.success();
    assert_eq!(output.stdout.trim(), "Complete", "{output}");
    assert_eq!(
        case(&results(&out), "0_fetched", "over-http")["result"],
        "pass"
    );
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap();
    assert!(
        log.contains("Transferring the LAVA overlay from http://127.0.0.1:"),
        "{log}"
    );
    assert!(!log.contains("over the console"), "sent once, over HTTP");
    assert!(
        home.join("overlay.tar.gz").exists(),
        "wget saved it where it was told"
    );
}
