//! The worker's TFTP and NFS servers: where a deploy puts what the board loads over the
//! network, one subdirectory per job, removed when the job ends.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dispatcher::failure::Failure;
use crate::dispatcher::log::JobLogger;
use crate::failure::FailureClass;

/// Where a worker's servers take files from: the TFTP root and the NFS export directory,
/// each with a per-job subdirectory that is removed when the job ends.
#[derive(Debug, Clone, Default)]
pub struct ServerDirs {
    /// The TFTP server's root, if this worker has one.
    pub tftp_root: Option<PathBuf>,
    /// The directory NFS root filesystems are extracted under, if this worker exports one.
    pub nfs_root: Option<PathBuf>,
    /// The name of this job's subdirectory in both.
    pub job_id: String,
}

impl ServerDirs {
    /// This job's directory under the TFTP root, created; a configuration error where the
    /// worker has no TFTP root.
    pub fn tftp_dir(&self, method: &str) -> Result<PathBuf, Failure> {
        let Some(root) = &self.tftp_root else {
            return Err(Failure::new(
                FailureClass::Configuration,
                format!(
                    "a {method} deploy needs this worker's TFTP root (basalt run --tftp-root DIR)"
                ),
            ));
        };
        create(root.join(&self.job_id))
    }

    /// This job's directory under the NFS export directory, created.
    pub fn nfs_dir(&self) -> Result<PathBuf, Failure> {
        let Some(root) = &self.nfs_root else {
            return Err(Failure::new(
                FailureClass::Configuration,
                "an nfsrootfs needs this worker's NFS export directory (basalt run --nfs-root DIR)",
            ));
        };
        create(root.join(&self.job_id))
    }

    /// Copies every file in `deployed` (except the NFS root, a directory) from `dir` into
    /// this job's TFTP directory, keeping its path below `dir` (`kernel/zImage`), and
    /// rewrites `deployed` to the names the bootloader must use: paths relative to the TFTP
    /// root (`JOB/kernel/zImage`).
    pub fn publish_tftp(
        &self,
        method: &str,
        dir: &Path,
        deployed: &mut Map<String, Value>,
        log: &JobLogger,
    ) -> Result<(), Failure> {
        let tftp = self.tftp_dir(method)?;
        for (key, value) in deployed.iter_mut() {
            if key == "nfsrootfs" {
                continue;
            }
            let Some(path) = value.as_str().map(Path::new) else {
                continue;
            };
            // Files come from the job's own deploy directory; anything else is not ours to
            // publish.
            let Ok(below) = path.strip_prefix(dir) else {
                continue;
            };
            let target = tftp.join(below);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure::infrastructure(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            std::fs::copy(path, &target).map_err(|e| {
                Failure::infrastructure(format!("cannot copy {key} into {}: {e}", tftp.display()))
            })?;
            let relative = Path::new(&self.job_id).join(below);
            log.info(&format!("{key} on TFTP as {}", relative.display()));
            *value = Value::from(relative.display().to_string());
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

fn create(dir: PathBuf) -> Result<PathBuf, Failure> {
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::infrastructure(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
