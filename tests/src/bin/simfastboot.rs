//! A simulated board's fastboot mode, over TCP as the Android fastboot client speaks it
//! (`fastboot -s tcp:127.0.0.1:PORT …`), for end-to-end tests of fastboot deploys and boots.
//!
//! The protocol: the client sends `FB01` and the board answers `FB01`; then every message, both
//! ways, is an 8-byte big-endian length and that many bytes. Commands get `OKAY…`, `FAIL…` or,
//! for `download:%08x`, `DATA%08x` and then the data. Flashed partitions are written to
//! `<dir>/partitions/<name>` byte for byte, each command is appended to `<dir>/fastboot.log`,
//! and `boot`, `reboot` and `continue` power the simulated board on (a new token in
//! `--power FILE`, the file `simboard` watches), as leaving fastboot mode boots a board.
//!
//! With `--adb-port-file FILE` the board is a phone: it starts in Android, where its adbd
//! speaks adb's transport protocol over TCP on a port of its own (written to FILE; the adb
//! server reaches it after `adb connect 127.0.0.1:PORT`) and fastboot connections are closed
//! unanswered, until `reboot:bootloader` over adb (`adb reboot-bootloader`) puts it into
//! fastboot mode, logged as `adb: reboot:bootloader`; leaving fastboot mode boots Android
//! again.
//!
//! Usage: simfastboot --dir DIR (--port-file FILE | --port PORT) [--power FILE]
//!        [--adb-port-file FILE]
//! (`--port-file`: listen on a free port and write it there; `--port`: listen on that one.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest download accepted (what `getvar:max-download-size` says).
const MAX_DOWNLOAD: usize = 64 << 20;
/// The longest command message accepted (the client's FB_COMMAND_SZ is 64).
const MAX_COMMAND: usize = 4096;

struct Board {
    dir: PathBuf,
    power: Option<PathBuf>,
    /// A phone (`--adb-port-file`) runs Android until adb reboots it into fastboot mode; any
    /// other board is always in fastboot mode.
    in_android: Arc<AtomicBool>,
    phone: bool,
}

fn read_message(stream: &mut TcpStream, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 8];
    stream.read_exact(&mut length)?;
    let length = u64::from_be_bytes(length);
    if length > limit as u64 {
        return Err(std::io::Error::other(format!(
            "a message of {length} bytes (at most {limit})"
        )));
    }
    let mut message = vec![0u8; length as usize];
    stream.read_exact(&mut message)?;
    Ok(message)
}

fn write_message(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(message.len() as u64).to_be_bytes())?;
    stream.write_all(message)
}

impl Board {
    fn log(&self, line: &str) {
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("fastboot.log"))
        {
            let _ = writeln!(log, "{line}");
        }
    }

    /// Leaving fastboot mode: a phone boots Android, a board its console's system.
    fn power_on(&self) {
        if self.phone {
            self.in_android.store(true, Ordering::SeqCst);
        }
        if let Some(power) = &self.power {
            let token = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let _ = std::fs::write(power, format!("on {token}\n"));
        }
    }

    fn getvar(&self, name: &str) -> String {
        match name {
            "product" => "OKAYsimboard".into(),
            "version" => "OKAY0.4".into(),
            "max-download-size" => format!("OKAY0x{MAX_DOWNLOAD:x}"),
            "is-userspace" => "OKAYno".into(),
            _ if name.starts_with("has-slot:") || name.starts_with("is-logical:") => {
                "OKAYno".into()
            }
            _ if name.starts_with("partition-type:") => "OKAYraw".into(),
            _ => "FAILUnknown variable".into(),
        }
    }

    /// Serves one connection (one run of the client) until it closes.
    fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        if self.in_android.load(Ordering::SeqCst) {
            // Android has no fastboot: the client's handshake goes unanswered.
            self.log("fastboot connection closed: the phone runs Android");
            return Ok(());
        }
        let mut hello = [0u8; 4];
        stream.read_exact(&mut hello)?;
        if &hello != b"FB01" {
            return Err(std::io::Error::other("no FB01 handshake"));
        }
        stream.write_all(b"FB01")?;
        let mut downloaded: Vec<u8> = Vec::new();
        loop {
            let command = match read_message(&mut stream, MAX_COMMAND) {
                Ok(command) => String::from_utf8_lossy(&command).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            self.log(&command);
            let reply = if let Some(name) = command.strip_prefix("getvar:") {
                self.getvar(name)
            } else if let Some(size) = command.strip_prefix("download:") {
                match usize::from_str_radix(size, 16) {
                    Ok(size) if size <= MAX_DOWNLOAD => {
                        write_message(&mut stream, format!("DATA{size:08x}").as_bytes())?;
                        downloaded.clear();
                        while downloaded.len() < size {
                            let chunk = read_message(&mut stream, MAX_DOWNLOAD)?;
                            downloaded.extend_from_slice(&chunk);
                        }
                        if downloaded.len() == size {
                            "OKAY".into()
                        } else {
                            "FAILmore data than announced".into()
                        }
                    }
                    _ => format!("FAILcannot download {size}"),
                }
            } else if let Some(partition) = command.strip_prefix("flash:") {
                self.flash(partition, &downloaded)
            } else if let Some(partition) = command.strip_prefix("erase:") {
                match plain(partition) {
                    Some(name) => {
                        let _ = std::fs::remove_file(self.dir.join("partitions").join(name));
                        "OKAY".into()
                    }
                    None => "FAILbad partition name".into(),
                }
            } else {
                match command.as_str() {
                    "boot" => {
                        let _ = std::fs::write(self.dir.join("booted-image"), &downloaded);
                        write_message(&mut stream, b"OKAY")?;
                        self.power_on();
                        return Ok(());
                    }
                    "reboot" | "continue" => {
                        write_message(&mut stream, b"OKAY")?;
                        self.power_on();
                        return Ok(());
                    }
                    "reboot-bootloader" => "OKAY".into(),
                    _ if command.starts_with("set_active:") => "OKAY".into(),
                    _ => format!("FAILunknown command {command}"),
                }
            };
            write_message(&mut stream, reply.as_bytes())?;
        }
    }

    fn flash(&self, partition: &str, data: &[u8]) -> String {
        let Some(name) = plain(partition) else {
            return "FAILbad partition name".into();
        };
        let dir = self.dir.join("partitions");
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(name), data)) {
            Ok(()) => "OKAY".into(),
            Err(e) => format!("FAILcannot write {name}: {e}"),
        }
    }
}

/// A partition name that is one plain file name.
fn plain(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    ok.then_some(name)
}

/// adb's transport protocol, the device's side, as much of it as `adb connect`, `adb
/// devices` and `adb reboot-bootloader` use: 24-byte little-endian headers (command, two
/// arguments, payload length, payload byte sum, command ^ 0xffffffff) and a payload.
mod adb {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub const CNXN: u32 = u32::from_le_bytes(*b"CNXN");
    pub const OPEN: u32 = u32::from_le_bytes(*b"OPEN");
    pub const OKAY: u32 = u32::from_le_bytes(*b"OKAY");
    pub const CLSE: u32 = u32::from_le_bytes(*b"CLSE");
    /// The protocol version that needs no payload checksums checked.
    pub const VERSION: u32 = 0x0100_0001;
    /// The largest payload this device accepts.
    pub const MAX_PAYLOAD: u32 = 256 * 1024;
    /// What the device says it is.
    pub const BANNER: &[u8] =
        b"device::ro.product.name=simphone;ro.product.model=simphone;ro.product.device=simphone;features=cmd\0";

    pub struct Message {
        pub command: u32,
        pub arg0: u32,
        pub payload: Vec<u8>,
    }

    pub fn read(stream: &mut TcpStream) -> std::io::Result<Message> {
        let mut header = [0u8; 24];
        stream.read_exact(&mut header)?;
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (command, length, magic) = (word(0), word(12), word(20));
        if magic != command ^ 0xffff_ffff {
            return Err(std::io::Error::other("an adb header with a bad magic"));
        }
        if length > MAX_PAYLOAD {
            return Err(std::io::Error::other(format!(
                "an adb payload of {length} bytes"
            )));
        }
        let mut payload = vec![0u8; length as usize];
        stream.read_exact(&mut payload)?;
        Ok(Message {
            command,
            arg0: word(4),
            payload,
        })
    }

    pub fn write(
        stream: &mut TcpStream,
        command: u32,
        arg0: u32,
        arg1: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let sum = payload
            .iter()
            .map(|b| u32::from(*b))
            .fold(0u32, u32::wrapping_add);
        let mut message = Vec::with_capacity(24 + payload.len());
        for word in [
            command,
            arg0,
            arg1,
            payload.len() as u32,
            sum,
            command ^ 0xffff_ffff,
        ] {
            message.extend_from_slice(&word.to_le_bytes());
        }
        message.extend_from_slice(payload);
        stream.write_all(&message)
    }
}

impl Board {
    /// One adb server connection to the phone's adbd, while it runs Android.
    fn serve_adb(&self, mut stream: TcpStream) -> std::io::Result<()> {
        if !self.in_android.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut next_id = 1u32;
        loop {
            let message = match adb::read(&mut stream) {
                Ok(message) => message,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            match message.command {
                adb::CNXN => adb::write(
                    &mut stream,
                    adb::CNXN,
                    adb::VERSION,
                    adb::MAX_PAYLOAD,
                    adb::BANNER,
                )?,
                adb::OPEN => {
                    let service = String::from_utf8_lossy(&message.payload)
                        .trim_end_matches('\0')
                        .to_owned();
                    let (local, remote) = (next_id, message.arg0);
                    next_id += 1;
                    self.log(&format!("adb: {service}"));
                    if let Some(target) = service.strip_prefix("reboot:") {
                        adb::write(&mut stream, adb::OKAY, local, remote, &[])?;
                        adb::write(&mut stream, adb::CLSE, local, remote, &[])?;
                        if target == "bootloader" {
                            self.in_android.store(false, Ordering::SeqCst);
                        }
                        // The phone restarts: its adbd is gone with the connection.
                        return Ok(());
                    }
                    // adbd's refusal of a service it does not offer.
                    adb::write(&mut stream, adb::CLSE, 0, remote, &[])?;
                }
                // Acknowledgements and closes of streams already ended.
                _ => {}
            }
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut port_file, mut power, mut port) = (None, None, None, 0u16);
    let mut adb_port_file: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--adb-port-file" => adb_port_file = args.next().map(PathBuf::from),
            "--dir" => dir = args.next().map(PathBuf::from),
            "--port-file" => port_file = args.next().map(PathBuf::from),
            "--power" => power = args.next().map(PathBuf::from),
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => {
                    eprintln!("simfastboot: --port takes a port number");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("simfastboot: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir.filter(|_| port_file.is_some() || port != 0) else {
        eprintln!(
            "usage: simfastboot --dir DIR (--port-file FILE | --port PORT) [--power FILE] \
             [--adb-port-file FILE]"
        );
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("simfastboot: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    if let Some(port_file) = &port_file {
        if let Err(e) = write_atomically(port_file, &port.to_string()) {
            eprintln!("simfastboot: cannot write {}: {e}", port_file.display());
            return ExitCode::FAILURE;
        }
    }
    let phone = adb_port_file.is_some();
    let board = Arc::new(Board {
        dir,
        power,
        in_android: Arc::new(AtomicBool::new(phone)),
        phone,
    });
    if let Some(adb_port_file) = &adb_port_file {
        let adbd = match TcpListener::bind(("127.0.0.1", 0)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("simfastboot: cannot listen for adb: {e}");
                return ExitCode::FAILURE;
            }
        };
        let adb_port = adbd.local_addr().map(|a| a.port()).unwrap_or(0);
        if let Err(e) = write_atomically(adb_port_file, &adb_port.to_string()) {
            eprintln!("simfastboot: cannot write {}: {e}", adb_port_file.display());
            return ExitCode::FAILURE;
        }
        let board = Arc::clone(&board);
        std::thread::spawn(move || {
            for stream in adbd.incoming().flatten() {
                let board = Arc::clone(&board);
                std::thread::spawn(move || {
                    if let Err(e) = board.serve_adb(stream) {
                        board.log(&format!("adb connection ended: {e}"));
                    }
                });
            }
        });
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = board.serve(stream) {
                    board.log(&format!("connection ended: {e}"));
                }
            }
            Err(e) => board.log(&format!("accept failed: {e}")),
        }
    }
    ExitCode::SUCCESS
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}
