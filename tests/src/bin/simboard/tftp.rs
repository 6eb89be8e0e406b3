//! Where the simulated bootloaders get files: a directory (the TFTP root itself, for tests on
//! one machine) or a real TFTP server, read with a TFTP client (RFC 1350: a read request in
//! octet mode, 512-byte blocks, each acknowledged; the server answers from a port of its
//! own), as a board's firmware reads the worker's TFTP root.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// The files a bootloader can load.
#[derive(Debug, Clone)]
pub enum Files {
    /// Read straight from this directory.
    Dir(PathBuf),
    /// Fetched over TFTP from this server.
    Tftp(SocketAddr),
}

const OP_RRQ: u16 = 1;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const BLOCK: usize = 512;
/// The largest file a simulated board loads (a kernel with its ramdisk).
const MAX_FILE: usize = 512 << 20;

impl Files {
    /// The file at `path` (relative to the TFTP root), or why it could not be loaded.
    pub fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        let path = path.trim_start_matches('/');
        match self {
            Self::Dir(root) => std::fs::read(root.join(path)).map_err(|e| format!("{path}: {e}")),
            Self::Tftp(server) => tftp_get(*server, path),
        }
    }
}

fn tftp_get(server: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut request = OP_RRQ.to_be_bytes().to_vec();
    request.extend_from_slice(path.as_bytes());
    request.push(0);
    request.extend_from_slice(b"octet\0");
    socket
        .send_to(&request, server)
        .map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let mut expected: u16 = 1;
    let mut peer: Option<SocketAddr> = None;
    let mut buffer = [0u8; 4 + BLOCK];
    let mut retries = 0;
    loop {
        let (n, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(_) if retries < 5 => {
                retries += 1;
                // Lost on the way: ask again (the request, or the last acknowledgement).
                match peer {
                    None => socket.send_to(&request, server),
                    Some(peer) => socket.send_to(&ack(expected.wrapping_sub(1)), peer),
                }
                .map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => return Err(format!("{path}: TFTP timed out ({e})")),
        };
        if n < 4 || peer.is_some_and(|p| p != from) {
            continue;
        }
        let opcode = u16::from_be_bytes([buffer[0], buffer[1]]);
        let number = u16::from_be_bytes([buffer[2], buffer[3]]);
        match opcode {
            OP_DATA if number == expected => {
                peer = Some(from);
                data.extend_from_slice(&buffer[4..n]);
                if data.len() > MAX_FILE {
                    return Err(format!("{path}: larger than {MAX_FILE} bytes"));
                }
                socket
                    .send_to(&ack(number), from)
                    .map_err(|e| e.to_string())?;
                if n - 4 < BLOCK {
                    return Ok(data);
                }
                expected = expected.wrapping_add(1);
                retries = 0;
            }
            OP_DATA => {
                // A duplicate: our acknowledgement was lost; repeat it.
                socket
                    .send_to(&ack(number), from)
                    .map_err(|e| e.to_string())?;
            }
            OP_ERROR => {
                let message = String::from_utf8_lossy(&buffer[4..n]);
                return Err(format!("{path}: {}", message.trim_end_matches('\0')));
            }
            _ => {}
        }
    }
}

fn ack(block: u16) -> Vec<u8> {
    let mut packet = OP_ACK.to_be_bytes().to_vec();
    packet.extend_from_slice(&block.to_be_bytes());
    packet
}

/// Checks that `image` is a FIT image as `mkimage -f auto` writes one: a flattened device
/// tree (magic, total size, structure block) with `/images/kernel…` carrying `data`, and
/// `/configurations`. Returns the image nodes found.
pub fn check_fit(image: &[u8]) -> Result<Vec<String>, String> {
    let word = |at: usize| -> Result<u32, String> {
        image
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated at byte {at}"))
    };
    if word(0)? != 0xd00d_feed {
        return Err("not a flattened device tree (bad magic)".into());
    }
    if word(4)? as usize != image.len() {
        return Err(format!(
            "the header says {} bytes, the file has {}",
            word(4)?,
            image.len()
        ));
    }
    let (structure, strings) = (word(8)? as usize, word(12)? as usize);
    let mut at = structure;
    let mut path: Vec<String> = Vec::new();
    let mut images = Vec::new();
    let mut kernel_data = false;
    let mut configurations = false;
    loop {
        let token = word(at)?;
        at += 4;
        match token {
            1 => {
                let end = image[at..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("unterminated node name")?;
                let name = String::from_utf8_lossy(&image[at..at + end]).into_owned();
                at = (at + end + 4) & !3;
                path.push(name);
                match path.as_slice() {
                    [_, images_node, node] if images_node == "images" => images.push(node.clone()),
                    [_, c] if c == "configurations" => configurations = true,
                    _ => {}
                }
            }
            2 => {
                path.pop();
            }
            3 => {
                let (len, name_offset) = (word(at)? as usize, word(at + 4)? as usize);
                at += 8;
                let name_at = strings + name_offset;
                let name_end = image
                    .get(name_at..)
                    .and_then(|s| s.iter().position(|&b| b == 0))
                    .ok_or("bad property name")?;
                let name = &image[name_at..name_at + name_end];
                if name == b"data"
                    && len > 0
                    && path.len() == 3
                    && path[1] == "images"
                    && path[2].starts_with("kernel")
                {
                    kernel_data = true;
                }
                at = (at + len + 3) & !3;
            }
            4 => {}
            9 => break,
            other => return Err(format!("unknown token {other} at byte {}", at - 4)),
        }
    }
    if !kernel_data {
        return Err("no /images/kernel node with data".into());
    }
    if !configurations {
        return Err("no /configurations node".into());
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIT image from Debian's mkimage, as the tftp deploy builds one, passes; cut short or
    /// with a byte changed in its header, it does not.
    #[test]
    fn fit_images_from_mkimage_pass_and_damaged_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("zImage");
        std::fs::write(&kernel, vec![0x5au8; 5000]).unwrap();
        let fit = dir.path().join("image.itb");
        let made = std::process::Command::new("mkimage")
            .args([
                "-D",
                "-I dts -O dtb -p 2048",
                "-f",
                "auto",
                "-A",
                "arm",
                "-O",
                "linux",
            ])
            .args(["-T", "kernel", "-C", "none", "-a", "0", "-d"])
            .arg(&kernel)
            .arg(&fit)
            .stdout(std::process::Stdio::null())
            .status();
        let Ok(status) = made else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mkimage missing"
            );
            return;
        };
        assert!(status.success());
        let image = std::fs::read(&fit).unwrap();
        let nodes = check_fit(&image).unwrap();
        assert!(nodes.iter().any(|n| n.starts_with("kernel")), "{nodes:?}");
        assert!(check_fit(&image[..image.len() - 8]).is_err());
        let mut bad = image.clone();
        bad[0] = 0;
        assert!(check_fit(&bad).is_err());
        assert!(check_fit(b"a zImage, not a FIT").is_err());
    }
}
