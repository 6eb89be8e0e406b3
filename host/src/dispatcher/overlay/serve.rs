//! The overlay over HTTP, for boot actions with LAVA's `transfer_overlay`: the board fetches
//! the tarball with the job's `download_command` (`wget`, `curl -O`) from the worker.
//!
//! LAVA serves it from the dispatcher's Apache; `basalt run` serves it itself, for the life of
//! the test action, on an ephemeral port of the address boards reach the worker at. It answers
//! `GET` of exactly one path (`/<job id>/overlay.tar.gz`) and nothing else: no directory, no
//! other file of the worker is reachable through it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a client may take to send its request line and headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head read; a `GET` of one path is far shorter.
const MAX_REQUEST: usize = 8 * 1024;
/// How long one write to a client may block: a board that stops reading is let go.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients served at once; the board needs one.
const MAX_CLIENTS: usize = 8;
/// How often the accept loop looks for a client and for the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A running server; it stops when dropped.
pub struct OverlayServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OverlayServer {
    /// Serves `tarball` at `http://<ip>:<port>/<job id>/<file name>`.
    pub fn start(ip: &str, job_id: &str, tarball: PathBuf) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0))?;
        let address = listener.local_addr()?;
        let name = tarball
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = format!("/{job_id}/{name}");
        let host = if address.is_ipv6() {
            format!("[{}]", address.ip())
        } else {
            address.ip().to_string()
        };
        let url = format!("http://{host}:{}{path}", address.port());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        // Polled, so that stopping never depends on a connection getting through.
        listener.set_nonblocking(true)?;
        let clients = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("overlay-http".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        // Nothing waiting, or no descriptor to take one with: look again soon.
                        Err(_) => {
                            std::thread::sleep(POLL);
                            continue;
                        }
                    };
                    if clients.load(Ordering::SeqCst) >= MAX_CLIENTS {
                        continue;
                    }
                    clients.fetch_add(1, Ordering::SeqCst);
                    let (tarball, path, held) = (tarball.clone(), path.clone(), clients.clone());
                    // One thread per client (a few at most): a slow board never holds up another.
                    let spawned = std::thread::Builder::new()
                        .name("overlay-http-client".into())
                        .spawn(move || {
                            let _ = answer(stream, &path, &tarball);
                            held.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        clients.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })?;
        Ok(Self {
            url,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the board fetches the overlay.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for OverlayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request: the tarball for `GET path`, 404 for any other path, 405 for any
/// other method, 400 for anything that is not a request.
fn answer(mut stream: TcpStream, path: &str, tarball: &std::path::Path) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(MAX_REQUEST as u64));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are read and ignored (up to the blank line or the size bound); a blank
    // request line has none to wait for.
    while !request_line.trim().is_empty() {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next(), words.next());
    let status = match (method, target) {
        (Some("GET" | "HEAD"), Some(t)) if t == path => None,
        (Some("GET" | "HEAD"), Some(_)) => Some("404 Not Found"),
        (Some(_), Some(_)) => Some("405 Method Not Allowed"),
        _ => Some("400 Bad Request"),
    };
    if let Some(status) = status {
        write!(
            stream,
            "HTTP/1.0 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return stream.shutdown(Shutdown::Both);
    }
    let mut file = std::fs::File::open(tarball)?;
    let length = file.metadata()?.len();
    write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n"
    )?;
    if method == Some("GET") {
        std::io::copy(&mut file, &mut stream)?;
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(address: &str, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn only_the_overlay_is_served_and_only_to_get() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("overlay.tar.gz");
        std::fs::write(&tarball, b"tarball bytes").unwrap();
        let server = OverlayServer::start("127.0.0.1", "12", tarball).unwrap();
        let url = server.url().to_owned();
        let rest = url.strip_prefix("http://").unwrap();
        let (address, path) = rest.split_at(rest.find('/').unwrap());
        assert_eq!(path, "/12/overlay.tar.gz");
        let ok = get(address, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 13\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntarball bytes"), "{ok}");
        for (request, status) in [
            ("GET /12/../../etc/passwd HTTP/1.1\r\n\r\n", "404"),
            ("GET / HTTP/1.1\r\n\r\n", "404"),
            (&format!("POST {path} HTTP/1.1\r\n\r\n") as &str, "405"),
            ("\r\n", "400"),
        ] {
            let answer = get(address, request);
            assert!(
                answer.starts_with(&format!("HTTP/1.0 {status}")),
                "{request}: {answer}"
            );
        }
        drop(server);
        assert!(
            TcpStream::connect(address).is_err(),
            "stopped with the action"
        );
    }
}
