//! The command connection against real processes on a real pty.

use std::time::{Duration, Instant};

use basalt_connection_command::{new_command_connection, PtyConsole};
use basalt_plugin_api::{ConnectionDriver, Console, ErrorKind, Log};

fn connect(command: &str) -> PtyConsole {
    let config = serde_json::json!({ "command": command }).to_string();
    new_command_connection(&config, Log::discard())
        .unwrap()
        .connect(Duration::from_secs(5))
        .unwrap()
}

/// Reads until `needle` shows up, failing the test after five seconds.
fn read_until(console: &mut PtyConsole, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    while !seen.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "never saw {needle:?}; got {seen:?}"
        );
        let data = console.read(4096, Duration::from_millis(200)).unwrap();
        seen.push_str(&String::from_utf8_lossy(&data));
    }
    seen
}

#[test]
fn a_board_like_dialogue_goes_both_ways() {
    let mut console = connect(
        "printf 'board login: '; read user; printf 'welcome %s\\nroot@board:~# ' \"$user\"; \
         read cmd; echo \"ran $cmd\"",
    );
    read_until(&mut console, "board login: ");
    console.write(b"root\n").unwrap();
    let seen = read_until(&mut console, "root@board:~# ");
    assert!(seen.contains("welcome root"), "{seen:?}");
    console.write(b"uname\n").unwrap();
    read_until(&mut console, "ran uname");
}

#[test]
fn the_command_runs_on_a_raw_terminal() {
    let mut console = connect("test -t 0 && echo is-a-tty; stty -a | grep -o -- '-echo '; cat");
    // One read may bring both lines: read on to the second and look for the first in all
    // of it (reading for each on its own lost the second when it came with the first).
    let seen = read_until(&mut console, "-echo");
    assert!(seen.contains("is-a-tty"), "{seen:?}");
    console.write(b"ping\n").unwrap();
    // Raw mode: `cat` echoes the line once, with no CR added and no local echo before it.
    let seen = read_until(&mut console, "ping\n");
    assert!(!seen.contains("ping\r\n"), "{seen:?}");
    assert_eq!(seen.matches("ping").count(), 1, "{seen:?}");
}

#[test]
fn the_end_of_the_command_is_a_closed_connection() {
    let mut console = connect("echo bye");
    read_until(&mut console, "bye");
    let deadline = Instant::now() + Duration::from_secs(5);
    let error = loop {
        match console.read(4096, Duration::from_millis(200)) {
            Ok(_) => assert!(Instant::now() < deadline, "console never closed"),
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind, ErrorKind::CONNECTION_CLOSED);
    assert!(error.message().contains("echo bye"), "{error}");
}

#[test]
fn nothing_to_read_returns_empty_after_the_timeout() {
    let mut console = connect("sleep 5");
    let started = Instant::now();
    assert!(console
        .read(10, Duration::from_millis(150))
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(140));
}

#[test]
fn closing_ends_the_whole_session() {
    let mut console = connect("sleep 60 & echo child=$!; wait");
    let seen = read_until(&mut console, "\n");
    let pid: i32 = seen
        .trim()
        .trim_start_matches("child=")
        .parse()
        .unwrap_or_else(|_| panic!("bad pid line {seen:?}"));
    console.close().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background sleep {pid} survived close"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        console.write(b"x").unwrap_err().kind,
        ErrorKind::CONNECTION_CLOSED
    );
    console.close().unwrap();
}

#[test]
fn an_empty_command_is_a_configuration_error() {
    let error = new_command_connection(r#"{"command": "  "}"#, Log::discard())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
}
