//! CURVE on the master↔slave link: ZMQ certificate files, the master's allow-list of slave
//! keys, and the ZAP handler that admits only those keys.
//!
//! Certificates are ZMQ's ZPL text files as pyzmq's `zmq.auth.create_certificates` and LAVA's
//! `create_certificate.py` write them (`NAME.key` holds the public key, `NAME.key_secret` both),
//! so a lab's LAVA certificates work unchanged. The allow-list is a directory of `NAME.key`
//! files; the file name is the worker the key may speak for (LAVA's
//! `certificates.d/<hostname>.key`). The ZAP handler names every admitted connection
//! `NAME/HEX-KEY` (ZMQ's `User-Id`), and the control loop checks that name against the
//! worker a message claims to come from and the key against the directory as it is now, so
//! adding or removing a file takes effect without a restart, for new and open connections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

/// Where libzmq looks for the ZAP handler of a context (RFC 27).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// The allow-list directory is looked at again at most this often.
const RESCAN_EVERY: Duration = Duration::from_millis(500);

/// Whether the libzmq this binary runs on can encrypt (it was built with libsodium or
/// tweetnacl).
pub fn available() -> bool {
    zmq::has("curve").unwrap_or(false)
}

/// The version of the libzmq this binary runs on.
pub fn libzmq_version() -> String {
    let (major, minor, patch) = zmq::version();
    format!("{major}.{minor}.{patch}")
}

/// A certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a ZMQ certificate of the kind needed.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// This libzmq has no CURVE.
    #[error(
        "this basalt's libzmq has no CURVE support, so the link cannot be encrypted \
         (install Debian's libzmq5, which is built with libsodium)"
    )]
    Unavailable,
    /// libzmq refused (key generation).
    #[error("libzmq: {0}")]
    Zmq(#[from] zmq::Error),
}

/// A key pair, or only the public half.
#[derive(Clone)]
pub struct Certificate {
    /// The 32-byte public key.
    pub public: [u8; 32],
    /// The 32-byte secret key, if the file had one.
    pub secret: Option<[u8; 32]>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        f.debug_struct("Certificate")
            .field("public", &z85(&self.public))
            .field("secret", &self.secret.map(|_| "…"))
            .finish()
    }
}

fn z85(key: &[u8; 32]) -> String {
    zmq::z85_encode(key).unwrap_or_default()
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 40 {
        return None;
    }
    zmq::z85_decode(text).ok()?.try_into().ok()
}

impl Certificate {
    /// Reads a certificate file (public, or public and secret).
    pub fn read(path: &Path) -> Result<Self, CurveError> {
        let text = std::fs::read_to_string(path).map_err(|source| CurveError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| CurveError::Format {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads a certificate that must hold the secret key (the master's own, a slave's own).
    pub fn read_secret(path: &Path) -> Result<Self, CurveError> {
        let certificate = Self::read(path)?;
        if certificate.secret.is_none() {
            return Err(CurveError::Format {
                path: path.to_owned(),
                reason: "holds no secret-key (the secret certificate is the NAME.key_secret \
                         file)"
                    .into(),
            });
        }
        Ok(certificate)
    }

    /// Parses ZPL certificate text: `public-key = "…"` and `secret-key = "…"` in the
    /// `curve` section, Z85-encoded, quoted or not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut section = String::new();
        let (mut public, mut secret) = (None, None);
        for (number, line) in text.lines().enumerate() {
            // Only whole lines are comments: Z85 keys may hold '#'.
            let content = line.trim_end();
            if content.trim().is_empty() || content.trim_start().starts_with('#') {
                continue;
            }
            if !content.starts_with(char::is_whitespace) {
                section = content.trim().to_owned();
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                continue;
            };
            if section != "curve" {
                continue;
            }
            let value = value.trim().trim_matches('"').trim_matches('\'');
            let slot = match key.trim() {
                "public-key" => &mut public,
                "secret-key" => &mut secret,
                _ => continue,
            };
            *slot = Some(decode_key(value).ok_or_else(|| {
                format!(
                    "line {}: {} is not a 40-character Z85 key",
                    number + 1,
                    key.trim()
                )
            })?);
        }
        let public = public.ok_or("no public-key in a curve section")?;
        Ok(Self { public, secret })
    }

    /// A new random key pair.
    pub fn generate() -> Result<Self, CurveError> {
        if !available() {
            return Err(CurveError::Unavailable);
        }
        let pair = zmq::CurveKeyPair::new()?;
        Ok(Self {
            public: pair.public_key,
            secret: Some(pair.secret_key),
        })
    }

    /// The public key, Z85-encoded.
    pub fn public_z85(&self) -> String {
        z85(&self.public)
    }

    /// Writes `DIR/NAME.key` (public; 0644) and `DIR/NAME.key_secret` (0600), as pyzmq's
    /// `create_certificates` does; refuses to overwrite either.
    pub fn write_pair(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), CurveError> {
        let public = dir.join(format!("{name}.key"));
        let secret_path = dir.join(format!("{name}.key_secret"));
        let head = |kind: &str| {
            format!(
                "#   ****  Generated on {} by basalt  ****\n#   ZeroMQ CURVE {kind} \
                 Certificate\n#   Exchange securely, or use a secure mechanism to verify \
                 the contents\n#   of this file after exchange.\n\nmetadata\ncurve\n    \
                 public-key = \"{}\"\n",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                self.public_z85()
            )
        };
        let mut secret_text = head("**Secret**");
        if let Some(secret) = &self.secret {
            secret_text.push_str(&format!("    secret-key = \"{}\"\n", z85(secret)));
        }
        write_new(&public, head("Public").as_bytes(), 0o644)?;
        write_new(&secret_path, secret_text.as_bytes(), 0o600)?;
        Ok((public, secret_path))
    }
}

fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), CurveError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CurveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(content).map_err(io)
}

/// A worker a connection was authenticated as: the allow-list's name for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The worker name (the certificate's file name).
    pub worker: String,
    /// The connection's public key.
    pub key: [u8; 32],
}

impl Sender {
    /// The `User-Id` the ZAP handler gives a connection.
    fn user_id(worker: &str, key: &[u8; 32]) -> String {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        format!("{worker}/{hex}")
    }

    /// Reads a `User-Id` back.
    pub fn parse(user_id: &str) -> Option<Self> {
        let (worker, hex) = user_id.split_once('/')?;
        if hex.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self {
            worker: worker.to_owned(),
            key,
        })
    }
}

/// What the allow-list directory held when it was last read.
#[derive(Default)]
struct Loaded {
    by_key: HashMap<[u8; 32], String>,
    by_name: HashMap<String, [u8; 32]>,
    /// (file name, modification time, length) of every file, to notice changes.
    stamp: Vec<(std::ffi::OsString, Option<SystemTime>, u64)>,
    checked: Option<Instant>,
}

/// The slaves allowed to connect: one `NAME.key` public certificate per worker in a
/// directory, re-read when it changes.
pub struct AllowList {
    dir: PathBuf,
    loaded: Mutex<Loaded>,
}

impl AllowList {
    /// The allow-list in `dir` (read now, so that a missing directory is a start-up error).
    pub fn open(dir: &Path) -> Result<Self, CurveError> {
        std::fs::read_dir(dir).map_err(|source| CurveError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let list = Self {
            dir: dir.to_owned(),
            loaded: Mutex::new(Loaded::default()),
        };
        list.refresh();
        Ok(list)
    }

    /// The worker a public key speaks for.
    pub fn worker_of(&self, key: &[u8; 32]) -> Option<String> {
        self.refresh();
        self.lock().by_key.get(key).cloned()
    }

    /// Whether `sender` is still allowed: its worker's certificate is there and holds its key.
    pub fn admits(&self, sender: &Sender) -> bool {
        self.refresh();
        self.lock().by_name.get(&sender.worker) == Some(&sender.key)
    }

    /// How many workers are allowed.
    pub fn len(&self) -> usize {
        self.refresh();
        self.lock().by_name.len()
    }

    /// Whether no worker is allowed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the directory again if it was not looked at recently and something changed.
    fn refresh(&self) {
        let mut loaded = self.lock();
        if loaded.checked.is_some_and(|at| at.elapsed() < RESCAN_EVERY) {
            return;
        }
        loaded.checked = Some(Instant::now());
        let mut stamp = Vec::new();
        let mut files = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(worker) = name.to_str().and_then(|n| n.strip_suffix(".key")) else {
                        continue;
                    };
                    let meta = entry.metadata().ok();
                    stamp.push((
                        name.clone(),
                        meta.as_ref().and_then(|m| m.modified().ok()),
                        meta.as_ref().map_or(0, |m| m.len()),
                    ));
                    files.push((worker.to_owned(), entry.path()));
                }
            }
            Err(e) => warn!(
                "cannot read the slaves' certificates in {}: {e}",
                self.dir.display()
            ),
        }
        stamp.sort();
        if stamp == loaded.stamp {
            return;
        }
        files.sort();
        let mut by_key = HashMap::new();
        let mut by_name = HashMap::new();
        let mut shared = Vec::new();
        for (worker, path) in files {
            if !crate::store::is_valid_name(&worker) {
                warn!(
                    "{}: not a worker name (letters, digits, '-', '_', '.'): ignored",
                    path.display()
                );
                continue;
            }
            match Certificate::read(&path) {
                Ok(certificate) => {
                    if let Some(other) = by_key.insert(certificate.public, worker.clone()) {
                        shared.push((certificate.public, other));
                    }
                    by_name.insert(worker, certificate.public);
                }
                Err(e) => warn!("slave certificate ignored: {e}"),
            }
        }
        // A key in two files could speak for either worker: it speaks for neither.
        for (key, other) in shared {
            if let Some(worker) = by_key.remove(&key) {
                warn!(
                    "the certificates of {other} and {worker} in {} hold the same key: both \
                     refused",
                    self.dir.display()
                );
                by_name.remove(&worker);
                by_name.remove(&other);
            }
        }
        debug!(
            "{} slave certificate(s) in {}",
            by_name.len(),
            self.dir.display()
        );
        loaded.by_key = by_key;
        loaded.by_name = by_name;
        loaded.stamp = stamp;
    }
}

/// The ZAP handler of a context: a thread answering libzmq's authentication requests from
/// the allow-list. Must be started before any CURVE server socket binds, as libzmq admits
/// every client of a context that has no handler.
pub struct ZapHandler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZapHandler {
    /// Binds the handler in `context` and starts its thread.
    pub fn start(context: &zmq::Context, allow: Arc<AllowList>) -> Result<Self, zmq::Error> {
        let socket = context.socket(zmq::REP)?;
        socket.set_linger(0)?;
        socket.bind(ZAP_ENDPOINT)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("basalt-zap".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match socket.poll(zmq::POLLIN, 200) {
                        Ok(n) if n > 0 => {}
                        _ => continue,
                    }
                    let Ok(request) = socket.recv_multipart(zmq::DONTWAIT) else {
                        continue;
                    };
                    let reply = answer(&request, &allow);
                    if socket.send_multipart(reply, 0).is_err() {
                        warn!("the ZAP handler could not answer libzmq");
                    }
                }
            })
            .map_err(|_| zmq::Error::EMFILE)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reply to one ZAP request (RFC 27): version, request id, status code, status text,
/// user id, metadata.
fn answer(request: &[Vec<u8>], allow: &AllowList) -> Vec<Vec<u8>> {
    let version = request.first().cloned().unwrap_or_else(|| b"1.0".to_vec());
    let id = request.get(1).cloned().unwrap_or_default();
    let reply = |code: &str, text: &str, user: String| {
        vec![
            version.clone(),
            id.clone(),
            code.as_bytes().to_vec(),
            text.as_bytes().to_vec(),
            user.into_bytes(),
            Vec::new(),
        ]
    };
    if request.len() < 6 || version != b"1.0" {
        warn!("a malformed ZAP request was refused");
        return reply("500", "malformed request", String::new());
    }
    let address = String::from_utf8_lossy(&request[3]).into_owned();
    let mechanism = request[5].as_slice();
    if mechanism != b"CURVE" {
        warn!(
            "refused a {} connection from {address}: this master admits CURVE only",
            String::from_utf8_lossy(mechanism)
        );
        return reply("400", "CURVE only", String::new());
    }
    let Some(key) = request
        .get(6)
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
    else {
        return reply("400", "no client key", String::new());
    };
    match allow.worker_of(&key) {
        Some(worker) => {
            debug!("admitted {address} as {worker}");
            reply("200", "OK", Sender::user_id(&worker, &key))
        }
        None => {
            warn!(
                "refused a connection from {address}: its key {} is not in the slaves' \
                 certificates",
                z85(&key)
            );
            reply("400", "unknown key", String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYZMQ_PUBLIC: &str = "#   ****  Generated on 2019-11-04 10:11:12.123456 by pyzmq  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange. Store public certificates in your home
#   directory, in the .curve subdirectory.

metadata
curve
    public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"
";

    #[test]
    fn pyzmq_certificates_are_read_and_ours_read_back() {
        let certificate = Certificate::parse(PYZMQ_PUBLIC).unwrap();
        assert_eq!(
            certificate.public_z85(),
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
        assert!(certificate.secret.is_none());
        // Z85 has '#' in its alphabet: inside a value it is no comment.
        let hash = PYZMQ_PUBLIC.replace("yf7", "y#7");
        assert!(Certificate::parse(&hash)
            .unwrap()
            .public_z85()
            .ends_with("y#7"));
        let dir = tempfile::tempdir().unwrap();
        let pair = Certificate::generate().unwrap();
        let (public, secret) = pair.write_pair(dir.path(), "w1").unwrap();
        assert_eq!(Certificate::read(&public).unwrap().public, pair.public);
        assert_eq!(
            Certificate::read_secret(&secret).unwrap().secret,
            pair.secret
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret certificate readable by others");
        assert!(
            pair.write_pair(dir.path(), "w1").is_err(),
            "overwrote a pair"
        );
        assert!(Certificate::read_secret(&public)
            .unwrap_err()
            .to_string()
            .contains("no secret-key"));
    }

    #[test]
    fn broken_certificates_say_what_is_wrong() {
        let short = "curve\n    public-key = \"abc\"\n";
        assert!(Certificate::parse(short).unwrap_err().contains("line 2"));
        assert!(Certificate::parse("metadata\n")
            .unwrap_err()
            .contains("no public-key"));
        assert!(Certificate::parse("\u{0}\u{1}garbage").is_err());
    }

    #[test]
    fn the_allow_list_binds_keys_to_names_and_follows_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let w1 = Certificate::generate().unwrap();
        let w2 = Certificate::generate().unwrap();
        w1.write_pair(dir.path(), "w1").unwrap();
        let allow = AllowList::open(dir.path()).unwrap();
        assert_eq!(allow.worker_of(&w1.public).as_deref(), Some("w1"));
        assert_eq!(allow.worker_of(&w2.public), None);
        let sender = Sender::parse(&Sender::user_id("w1", &w1.public)).unwrap();
        assert_eq!(sender.worker, "w1");
        assert!(allow.admits(&sender));
        // Added without a restart.
        w2.write_pair(dir.path(), "w2").unwrap();
        std::thread::sleep(RESCAN_EVERY + Duration::from_millis(50));
        assert_eq!(allow.worker_of(&w2.public).as_deref(), Some("w2"));
        // Removed without a restart: open connections stop being admitted too.
        std::fs::remove_file(dir.path().join("w1.key")).unwrap();
        std::thread::sleep(RESCAN_EVERY + Duration::from_millis(50));
        assert!(!allow.admits(&sender));
        assert_eq!(allow.worker_of(&w1.public), None);
        // One key under two names speaks for neither.
        std::fs::copy(dir.path().join("w2.key"), dir.path().join("w3.key")).unwrap();
        std::thread::sleep(RESCAN_EVERY + Duration::from_millis(50));
        assert_eq!(allow.worker_of(&w2.public), None);
        assert_eq!(allow.len(), 0);
    }

    #[test]
    fn zap_answers_admit_only_listed_curve_keys() {
        let dir = tempfile::tempdir().unwrap();
        let w1 = Certificate::generate().unwrap();
        w1.write_pair(dir.path(), "w1").unwrap();
        let allow = AllowList::open(dir.path()).unwrap();
        let request = |mechanism: &[u8], key: &[u8]| {
            vec![
                b"1.0".to_vec(),
                b"7".to_vec(),
                b"".to_vec(),
                b"127.0.0.1".to_vec(),
                b"master".to_vec(),
                mechanism.to_vec(),
                key.to_vec(),
            ]
        };
        let ok = answer(&request(b"CURVE", &w1.public), &allow);
        assert_eq!(ok[2], b"200");
        assert_eq!(
            Sender::parse(std::str::from_utf8(&ok[4]).unwrap())
                .unwrap()
                .worker,
            "w1"
        );
        assert_eq!(answer(&request(b"CURVE", &[9; 32]), &allow)[2], b"400");
        assert_eq!(answer(&request(b"NULL", b""), &allow)[2], b"400");
        assert_eq!(answer(&request(b"CURVE", b"short"), &allow)[2], b"400");
        assert_eq!(answer(&[b"1.0".to_vec()], &allow)[2], b"500");
        assert!(Sender::parse("w1/zz").is_none());
        assert!(Sender::parse("nothing").is_none());
    }
}
