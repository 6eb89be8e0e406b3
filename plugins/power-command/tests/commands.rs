//! The command power driver against real child processes standing in for PDU commands.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_plugin_api::{ErrorKind, Log, MemoryLog, PowerDriver};
use basalt_power_command::new_command_power;

fn driver(commands: serde_json::Value) -> (basalt_power_command::CommandPower, Arc<MemoryLog>) {
    let memory = Arc::new(MemoryLog::default());
    let driver = new_command_power(&commands.to_string(), Log::new(memory.clone())).unwrap();
    (driver, memory)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn commands_run_in_order_and_their_output_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("outlet");
    let s = state.display();
    let (driver, log) = driver(serde_json::json!({
        "power_on": format!("echo switching on; echo on >> {s}"),
        "power_off": [format!("echo off >> {s}"), format!("echo really-off >> {s}")],
        "hard_reset": format!("echo reset >> {s}; echo to-stderr >&2"),
        "connect": "telnet localhost 7000",
    }));
    let timeout = Duration::from_secs(10);
    driver.on(timeout).unwrap();
    driver.off(timeout).unwrap();
    driver.reboot(timeout).unwrap();
    assert_eq!(read(&state), "on\noff\nreally-off\nreset\n");
    let text = log.text();
    assert!(text.contains("switching on"), "{text}");
    assert!(text.contains("to-stderr"), "{text}");
    assert!(text.contains("power command (hard_reset)"), "{text}");
}

#[test]
fn a_failing_command_is_an_infrastructure_error_quoting_its_output() {
    let (driver, _) = driver(serde_json::json!({
        "power_on": "echo 'pdu: no route to host' >&2; exit 3",
    }));
    let error = driver.on(Duration::from_secs(10)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::INFRASTRUCTURE);
    assert!(error.message().contains("exit status: 3"), "{error}");
    assert!(error.message().contains("no route to host"), "{error}");
}

#[test]
fn a_hung_command_is_killed_with_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let (driver, _) = driver(serde_json::json!({
        // The child sleeps in a grandchild so killing only `sh` would leave it behind.
        "power_off": format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
    }));
    let started = Instant::now();
    let error = driver.off(Duration::from_millis(500)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: i32 = read(&pid_file).trim().parse().unwrap();
    // The grandchild was killed with the group; give the kernel a moment to reap it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && !read(Path::new(&format!("/proc/{pid}/stat"))).contains(") Z")
    {
        assert!(
            Instant::now() < deadline,
            "sleep {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reboot_without_hard_reset_is_off_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("outlet");
    let s = state.display();
    let (driver, _) = driver(serde_json::json!({
        "power_on": format!("echo on >> {s}"),
        "power_off": format!("echo off >> {s}"),
    }));
    driver.reboot(Duration::from_secs(10)).unwrap();
    assert_eq!(read(&state), "off\non\n");
}

#[test]
fn missing_commands_say_which_dictionary_variable_to_set() {
    let (driver, _) = driver(serde_json::json!({"power_on": "true"}));
    let error = driver.off(Duration::from_secs(1)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
    assert!(error.message().contains("power_off_command"), "{error}");
    let error = new_command_power(r#"{"connect": "x"}"#, Log::discard())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
    let error = new_command_power(r#"{"power_on": 5}"#, Log::discard())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
}
