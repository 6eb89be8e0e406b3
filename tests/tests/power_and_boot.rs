//! `basalt power` and `basalt boot` driving real child processes: shell commands standing in
//! for PDU commands, and a shell script standing in for a board on a console.

use basalt_e2e::{Basalt, TestDir};

/// A board: boot messages, a login with a password, then a shell that runs what it is sent.
const BOARD: &str = r#"
echo "U-Boot 2024.01 (Jan 01 2024)"
echo "Starting kernel ..."
echo "[    0.000000] Linux version 6.1.0-basalt"
printf 'board login: '
read user
printf 'Password: '
read password
if [ "$password" != "secret" ]; then echo "Login incorrect"; exit 1; fi
printf 'root@board:~# '
while read command; do
    sh -c "$command" 2>&1
    printf 'root@board:~# '
done
"#;

struct Lab {
    dir: TestDir,
}

impl Lab {
    fn new() -> Self {
        let dir = TestDir::new();
        let board = dir.write("board.sh", BOARD);
        let power_log = dir.path().join("power.log");
        let p = power_log.display();
        dir.write(
            "device.yaml",
            format!(
                r#"
commands:
  connect: sh {board}
  power_on: echo on >> {p}
  power_off: ['echo off >> {p}', 'echo off-confirmed >> {p}']
  hard_reset: echo reset >> {p}
actions:
  boot:
    methods:
      minimal:
"#,
                board = board.display()
            ),
        );
        Self { dir }
    }

    fn power_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("power.log")).unwrap_or_default()
    }

    fn device(&self) -> std::path::PathBuf {
        self.dir.path().join("device.yaml")
    }

    /// Runs `basalt boot` on this lab's device with the given boot action (YAML).
    fn boot(&self, action: &str) -> basalt_e2e::Output {
        let action = self.dir.write("boot.yaml", action);
        Basalt::new(["boot", "--timeout", "20", "--device"])
            .arg(self.device())
            .arg("--action")
            .arg(&action)
            .run()
    }
}

#[test]
fn power_operations_run_the_device_commands() {
    let lab = Lab::new();
    for operation in ["on", "off", "reboot"] {
        Basalt::new(["power", operation, "--device"])
            .arg(lab.device())
            .run()
            .success();
    }
    assert_eq!(lab.power_log(), "on\noff\noff-confirmed\nreset\n");
    let state = Basalt::new(["power", "state", "--device"])
        .arg(lab.device())
        .run()
        .success();
    assert_eq!(state.stdout.trim(), "unknown");
}

#[test]
fn a_failing_power_command_is_an_error_naming_the_command() {
    let dir = TestDir::new();
    let device = dir.write(
        "device.yaml",
        "commands:\n  power_on: echo 'pdu unreachable' >&2; exit 2\n",
    );
    let output = Basalt::new(["power", "on", "--device"])
        .arg(&device)
        .run()
        .failure();
    assert!(output.stderr.contains("exit status: 2"), "{output}");
    assert!(output.stderr.contains("pdu unreachable"), "{output}");
    let no_power = dir.write("bare.yaml", "commands:\n  connect: telnet x 1\n");
    let output = Basalt::new(["power", "on", "--device"])
        .arg(&no_power)
        .run()
        .failure();
    assert!(output.stderr.contains("power_on_command"), "{output}");
}

#[test]
fn minimal_boot_resets_logs_in_and_reaches_the_prompt() {
    let lab = Lab::new();
    let output = lab
        .boot(
            r#"
method: minimal
auto_login:
  login_prompt: 'login: '
  username: root
  password_prompt: 'Password: '
  password: secret
  login_commands: ['echo logged-in-as-$(whoami)-ok']
prompts: ['root@board:~# ']
"#,
        )
        .success();
    assert!(
        output.stdout.contains("minimal reached the prompt"),
        "{output}"
    );
    assert_eq!(lab.power_log(), "reset\n");
    // The console output is in the log, in LAVA's format, line by line.
    assert!(
        output
            .stderr
            .contains(r#""lvl": "target", "msg": "[    0.000000] Linux version 6.1.0-basalt""#),
        "{output}"
    );
    assert!(
        output.stderr.contains(r#""lvl": "input", "msg": "root\n""#),
        "{output}"
    );
    assert!(output.stderr.contains("logged-in-as-"), "{output}");
}

#[test]
fn a_board_that_refuses_the_login_fails_the_boot_with_its_output() {
    let lab = Lab::new();
    let output = lab
        .boot(
            r#"
method: minimal
reset: false
auto_login: {login_prompt: 'login: ', username: root, password_prompt: 'Password: ', password: wrong}
prompts: ['root@board:~# ']
"#,
        )
        .failure();
    assert!(output.stderr.contains("Login incorrect"), "{output}");
    assert!(output.stderr.contains("closed the console"), "{output}");
    assert_eq!(lab.power_log(), "", "reset: false must leave power alone");
}

#[test]
fn a_boot_method_the_device_lacks_is_refused_up_front() {
    let lab = Lab::new();
    let output = lab.boot("method: u-boot\ncommands: ramdisk\n").failure();
    assert!(
        output
            .stderr
            .contains("boot method 'u-boot' is not in the device configuration"),
        "{output}"
    );
}
