//! The serial driver against a pty pair: the slave side plays the serial device node, the
//! master side plays the board.

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use basalt_connection_serial::new_serial_connection;
use basalt_plugin_api::{ConnectionDriver, Console, ErrorKind, Log};
use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{cfgetospeed, tcgetattr, BaudRate, ControlFlags, LocalFlags};

struct Board {
    side: File,
    device: String,
    _pty: OpenptyResult,
}

fn board() -> Board {
    let pty = openpty(None, None).unwrap();
    let device = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap()
    .display()
    .to_string();
    let side = File::from(pty.master.try_clone().unwrap());
    Board {
        side,
        device,
        _pty: pty,
    }
}

fn driver(device: &str, baud: u32) -> basalt_connection_serial::SerialConnection {
    let config = serde_json::json!({ "device": device, "baud": baud }).to_string();
    new_serial_connection(&config, Log::discard()).unwrap()
}

#[test]
fn bytes_flow_both_ways_on_a_raw_8n1_line() {
    let mut board = board();
    let mut console = driver(&board.device, 115_200)
        .connect(Duration::from_secs(1))
        .unwrap();
    board.side.write_all(b"U-Boot 2024.01\r\n=> ").unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"=> ") {
        let data = console.read(4096, Duration::from_secs(2)).unwrap();
        assert!(!data.is_empty(), "board output never arrived: {seen:?}");
        seen.extend(data);
    }
    assert_eq!(seen, b"U-Boot 2024.01\r\n=> ");
    console.write(b"printenv\n").unwrap();
    let mut buf = [0u8; 64];
    let n = board.side.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"printenv\n");

    let modes = tcgetattr(&board._pty.slave).unwrap();
    assert_eq!(cfgetospeed(&modes), BaudRate::B115200);
    assert!(modes.control_flags.contains(ControlFlags::CS8));
    assert!(!modes.control_flags.contains(ControlFlags::PARENB));
    assert!(!modes.local_flags.contains(LocalFlags::ECHO));
}

#[test]
fn a_silent_line_times_out_empty() {
    let board = board();
    let mut console = driver(&board.device, 9600)
        .connect(Duration::from_secs(1))
        .unwrap();
    assert!(console
        .read(16, Duration::from_millis(100))
        .unwrap()
        .is_empty());
}

#[test]
fn a_line_in_use_is_refused_until_released() {
    let board = board();
    let driver = driver(&board.device, 115_200);
    let mut first = driver.connect(Duration::from_secs(1)).unwrap();
    let error = driver.connect(Duration::from_secs(1)).err().unwrap();
    assert_eq!(error.kind, ErrorKind::INFRASTRUCTURE);
    assert!(error.message().contains("already in use"), "{error}");
    first.close().unwrap();
    assert_eq!(
        first.read(1, Duration::from_millis(1)).unwrap_err().kind,
        ErrorKind::CONNECTION_CLOSED
    );
    driver.connect(Duration::from_secs(1)).unwrap();
}

#[test]
fn bad_devices_and_speeds_are_clear_errors() {
    let error = new_serial_connection(r#"{"device": "/dev/ttyX", "baud": 12345}"#, Log::discard())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::INVALID_CONFIG);
    assert!(error.message().contains("12345"), "{error}");
    let error = driver("/nonexistent/ttyUSB9", 115_200)
        .connect(Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(error.message().contains("/nonexistent/ttyUSB9"), "{error}");
    let error = driver("/dev/null", 115_200)
        .connect(Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(error.message().contains("not a serial line"), "{error}");
}
