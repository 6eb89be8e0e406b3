//! Deploy actions: fetching the job's artifacts (kernel, ramdisk, dtb, rootfs, ...) into the
//! job's directory, checking their checksums.

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value};

use super::download::{download, Compression, Downloaded, MAX_DECOMPRESSED};
use super::failure::Failure;
use super::local_files::LocalFiles;
use super::log::JobLogger;
use crate::job::confine;
use crate::pipeline::deploy_artifacts;

/// Fetches every artifact of a deploy action into `dir`, returning artifact key → file.
/// Each file is named `KEY-NAME` (NAME from the URL), both checked to be plain file names, so
/// nothing a job says can put a file outside `dir`; local files are read only where `local`
/// allows.
pub fn deploy(
    params: &Map<String, Value>,
    dir: &Path,
    deadline: Instant,
    local: &LocalFiles,
    log: &JobLogger,
) -> Result<Map<String, Value>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infrastructure(format!("cannot create {}: {e}", dir.display())))?;
    let mut deployed = Map::new();
    for (key, artifact) in deploy_artifacts(params) {
        let Some(url) = artifact.get("url").and_then(Value::as_str) else {
            continue;
        };
        let named = artifact.get("compression").and_then(Value::as_str);
        let compression = Compression::parse(named).ok_or_else(|| {
            Failure::job(format!(
                "{key}: compression '{}' is not supported: use {}",
                named.unwrap_or_default(),
                Compression::NAMES
            ))
        })?;
        confine::file_name(&key).map_err(|e| Failure::job(format!("artifact key {key:?}: {e}")))?;
        let name = match confine::url_file_name(url) {
            Some(name) => name.map_err(|e| Failure::job(format!("{key}: url {url}: {e}")))?,
            None => key.as_str(),
        };
        let target = dir.join(format!("{key}-{}", compression.strip_extension(name)));
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure::infrastructure(format!(
                "deploy timed out before downloading {key}"
            )));
        }
        let started = Instant::now();
        let got = download(
            url,
            compression,
            &target,
            remaining,
            local,
            MAX_DECOMPRESSED,
        )
        .map_err(|e| match e.is_job_error() {
            true => Failure::job(format!("{key}: {e}")),
            false => Failure::infrastructure(format!("{key}: {e}")),
        })?;
        verify(&key, &artifact, &got)?;
        log.info(&format!(
            "downloaded {key}: {url} -> {} ({} bytes{} in {:.2}s)",
            target.display(),
            got.downloaded,
            match compression {
                Compression::None => String::new(),
                _ => format!(", {} decompressed", got.written),
            },
            started.elapsed().as_secs_f64()
        ));
        deployed.insert(key, Value::from(target.display().to_string()));
    }
    Ok(deployed)
}

/// Checks the `md5sum`/`sha256sum`/`sha512sum` an artifact gives, if any, against the
/// bytes as downloaded (compressed), as LAVA does.
fn verify(key: &str, artifact: &Value, got: &Downloaded) -> Result<(), Failure> {
    for (field, actual) in [
        ("md5sum", &got.md5),
        ("sha256sum", &got.sha256),
        ("sha512sum", &got.sha512),
    ] {
        // Compared as text whatever YAML made of it: `sha256sum: 0000` is a number to YAML
        // and must fail to match, never be skipped.
        let expected = match artifact.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_deploy(
        params: Value,
        dir: &Path,
        local: &LocalFiles,
    ) -> Result<Map<String, Value>, Failure> {
        let log = JobLogger::create(dir, false, Vec::new()).unwrap();
        let params = params.as_object().cloned().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        deploy(&params, &dir.join("deploy"), deadline, local, &log)
    }

    /// What a job that never passed a master's validation could ask for (`basalt run` by
    /// hand, an old queue): refused before anything is written.
    #[test]
    fn keys_and_url_names_that_leave_the_directory_are_refused_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(images.join("zImage"), "k").unwrap();
        let local = LocalFiles::new([images.clone()]);
        let url = format!("file://{}/zImage", images.display());
        let escape = run_deploy(
            json!({"to": "tmpfs", "images": {"../../evil": {"url": url}}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            escape.message.contains("artifact key \"../../evil\""),
            "{}",
            escape.message
        );
        let dotdot = run_deploy(
            json!({"to": "tmpfs", "kernel": {"url": "http://127.0.0.1:9/a/.."}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            dotdot.message.contains("directory reference"),
            "{}",
            dotdot.message
        );
        assert!(!dir.path().join("evil-zImage").exists());
        let deployed = run_deploy(
            json!({"to": "tmpfs", "kernel": {"url": url}}),
            dir.path(),
            &local,
        )
        .unwrap();
        assert!(deployed["kernel"]
            .as_str()
            .unwrap()
            .ends_with("deploy/kernel-zImage"));
    }

    #[test]
    fn local_files_outside_the_allowed_directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let refused = run_deploy(
            json!({"to": "tmpfs", "kernel": {"url": "file:///etc/hostname"}}),
            dir.path(),
            &LocalFiles::default(),
        )
        .unwrap_err();
        assert!(
            refused.message.contains("local_file_dirs"),
            "{}",
            refused.message
        );
        assert!(!dir.path().join("deploy/kernel-hostname").exists());
    }

    /// `sha256sum: 0000` is a number to YAML: compared as text, it fails; never skipped.
    #[test]
    fn a_checksum_yaml_read_as_a_number_is_compared_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zImage"), "k").unwrap();
        let local = LocalFiles::new([dir.path().to_path_buf()]);
        let url = format!("file://{}/zImage", dir.path().display());
        let mismatch = run_deploy(
            json!({"to": "tmpfs", "kernel": {"url": url, "sha256sum": 0}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            mismatch.message.contains("sha256sum mismatch"),
            "{}",
            mismatch.message
        );
    }
}
