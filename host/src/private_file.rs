//! Files only their owner may read: what holds a job's secrets (its definition, its
//! dispatcher and environment files) and the master's data (database, admin token, logs).
//! Everything else on a worker (TFTP and NFS files a board must fetch) keeps the usual
//! modes, so this is per file rather than a process-wide umask there.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of a private file.
pub const MODE: u32 = 0o600;

/// Writes `contents` to `path`, created (or truncated) with mode 0600; an existing file's
/// mode is set to 0600 too.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    file.write_all(contents.as_ref())
}

/// Makes an existing file private (a database made by an older version); absent is fine.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(MODE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_0600_even_when_it_existed_with_another_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, "secrets: {A: b}\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secrets: {A: b}\n");
        assert!(restrict(&dir.path().join("missing")).is_ok());
    }
}
