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
//! Usage: simfastboot --dir DIR (--port-file FILE | --port PORT) [--power FILE]
//! (`--port-file`: listen on a free port and write it there; `--port`: listen on that one.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest download accepted (what `getvar:max-download-size` says).
const MAX_DOWNLOAD: usize = 64 << 20;
/// The longest command message accepted (the client's FB_COMMAND_SZ is 64).
const MAX_COMMAND: usize = 4096;

struct Board {
    dir: PathBuf,
    power: Option<PathBuf>,
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

    fn power_on(&self) {
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

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut port_file, mut power, mut port) = (None, None, None, 0u16);
    while let Some(arg) = args.next() {
        match arg.as_str() {
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
        eprintln!("usage: simfastboot --dir DIR (--port-file FILE | --port PORT) [--power FILE]");
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
    let board = Board { dir, power };
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
