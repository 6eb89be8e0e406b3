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
