//! Deploy actions: fetching the job's artifacts (kernel, ramdisk, dtb, rootfs, ...) into the
//! job's directory, checking their checksums.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::Md5;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::failure::Failure;
use super::log::JobLogger;
use crate::pipeline::deploy_artifacts;

/// Fetches every artifact of a deploy action into `dir`, returning artifact key → file.
pub fn deploy(
    params: &Map<String, Value>,
    dir: &Path,
    deadline: Instant,
    log: &JobLogger,
) -> Result<Map<String, Value>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infrastructure(format!("cannot create {}: {e}", dir.display())))?;
    let mut deployed = Map::new();
    for (key, artifact) in deploy_artifacts(params) {
        let Some(url) = artifact.get("url").and_then(Value::as_str) else {
            continue;
        };
        if let Some(compression) = artifact.get("compression").and_then(Value::as_str) {
            if compression != "none" {
                return Err(Failure::job(format!(
                    "{key}: compression '{compression}' is not supported by this dispatcher; \
                     give an uncompressed artifact"
                )));
            }
        }
        let name = url
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(key.as_str());
        let target = dir.join(format!("{key}-{name}"));
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure::infrastructure(format!(
                "deploy timed out before downloading {key}"
            )));
        }
        let started = Instant::now();
        let size = fetch(url, &target, remaining)
            .map_err(|e| Failure::infrastructure(format!("{key}: cannot download {url}: {e}")))?;
        verify(&key, &artifact, &target)?;
        log.info(&format!(
            "downloaded {key}: {url} -> {} ({size} bytes in {:.2}s)",
            target.display(),
            started.elapsed().as_secs_f64()
        ));
        deployed.insert(key, Value::from(target.display().to_string()));
    }
    Ok(deployed)
}

/// Copies `url` (file://, http://, https:// or a plain path) to `target`.
pub fn fetch(url: &str, target: &PathBuf, timeout: Duration) -> Result<u64, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        let response = ureq::AgentBuilder::new()
            .timeout(timeout)
            .build()
            .get(url)
            .call()
            .map_err(|e| e.to_string())?;
        let mut reader = response.into_reader();
        let mut file = std::fs::File::create(target).map_err(|e| e.to_string())?;
        return std::io::copy(&mut reader, &mut file).map_err(|e| e.to_string());
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    std::fs::copy(path, target).map_err(|e| e.to_string())
}

fn digest<D: Digest>(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks the `md5sum`/`sha256sum`/`sha512sum` an artifact gives, if any.
fn verify(key: &str, artifact: &Value, path: &Path) -> Result<(), Failure> {
    for (field, compute) in [
        (
            "md5sum",
            digest::<Md5> as fn(&Path) -> std::io::Result<String>,
        ),
        ("sha256sum", digest::<Sha256>),
        ("sha512sum", digest::<Sha512>),
    ] {
        let Some(expected) = artifact.get(field).and_then(Value::as_str) else {
            continue;
        };
        let actual = compute(path).map_err(|e| {
            Failure::infrastructure(format!("{key}: cannot read {}: {e}", path.display()))
        })?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(Failure::job(format!(
                "{key}: {field} mismatch: the job says {expected}, the download is {actual}"
            )));
        }
    }
    Ok(())
}

/// Where a worker's servers take files from: the TFTP root and the NFS export directory,
/// each with a per-job subdirectory that is removed when the job ends.
#[derive(Debug, Clone, Default)]
pub struct ServerDirs {
    /// The TFTP server's root, if this worker has one.
    pub tftp_root: Option<std::path::PathBuf>,
    /// The directory NFS root filesystems are extracted under, if this worker exports one.
    pub nfs_root: Option<std::path::PathBuf>,
    /// The name of this job's subdirectory in both.
    pub job_id: String,
}

impl ServerDirs {
    /// Puts what a `tftp` or `nfs` deploy fetched where the board will load it from, and
    /// rewrites `deployed` to the names the bootloader must use: paths relative to the TFTP
    /// root for TFTP files, the extracted directory for an NFS root filesystem.
    pub fn publish(
        &self,
        method: &str,
        deployed: &mut Map<String, Value>,
        log: &JobLogger,
    ) -> Result<(), Failure> {
        let needs_tftp = method == "tftp" || method == "nfs";
        if needs_tftp {
            let Some(root) = &self.tftp_root else {
                return Err(Failure::new(
                    crate::failure::FailureClass::Configuration,
                    format!(
                        "a {method} deploy needs this worker's TFTP root (basalt run --tftp-root DIR)"
                    ),
                ));
            };
            let dir = root.join(&self.job_id);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failure::infrastructure(format!("cannot create {}: {e}", dir.display()))
            })?;
            for (key, value) in deployed.iter_mut() {
                if key == "nfsrootfs" {
                    continue;
                }
                let Some(path) = value.as_str().map(Path::new) else {
                    continue;
                };
                let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
                std::fs::copy(path, dir.join(&name)).map_err(|e| {
                    Failure::infrastructure(format!(
                        "cannot copy {key} into {}: {e}",
                        dir.display()
                    ))
                })?;
                let relative = Path::new(&self.job_id).join(&name);
                log.info(&format!("{key} on TFTP as {}", relative.display()));
                *value = Value::from(relative.display().to_string());
            }
        }
        if let Some(tarball) = deployed
            .get("nfsrootfs")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let Some(root) = &self.nfs_root else {
                return Err(Failure::new(
                    crate::failure::FailureClass::Configuration,
                    "an nfsrootfs needs this worker's NFS export directory (basalt run --nfs-root DIR)",
                ));
            };
            let dir = root.join(&self.job_id);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failure::infrastructure(format!("cannot create {}: {e}", dir.display()))
            })?;
            let output = std::process::Command::new("tar")
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&dir)
                .output()
                .map_err(|e| Failure::infrastructure(format!("cannot run tar: {e}")))?;
            if !output.status.success() {
                return Err(Failure::job(format!(
                    "nfsrootfs: cannot extract {tarball}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            log.info(&format!("nfsrootfs extracted into {}", dir.display()));
            deployed.insert("nfsrootfs".into(), Value::from(dir.display().to_string()));
        }
        Ok(())
    }

    /// Removes this job's files from the server directories.
    pub fn clean(&self) {
        for root in [&self.tftp_root, &self.nfs_root].into_iter().flatten() {
            let dir = root.join(&self.job_id);
            if dir.starts_with(root) && dir != *root {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
