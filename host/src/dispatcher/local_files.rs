//! Worker-local files a job may read: only under the directories the worker's admin lists.
//!
//! LAVA labs keep images on their workers and give them to jobs as `file://` URLs, so local
//! files must stay easy to use; but a job comes from whoever may submit one, and the job
//! process often runs as root, so `file:///etc/shadow` must not be copied into a job (and from
//! there onto a TFTP server). A `file://` URL, a plain path and a local git repository are read
//! only when they resolve (symlinks followed) inside one of the allowed directories. Where the
//! list comes from: `basalt run --local-file-dir DIR`, which the slave passes on from its own
//! `local_file_dirs` (TOML or `--local-file-dir`) and from the `local_file_dirs` list in the
//! worker's `dispatcher.yaml` on the master.

use std::path::{Path, PathBuf};

/// What a refused local read says, so the admin knows which setting allows it.
pub const HOW_TO_ALLOW: &str = "list its directory in local_file_dirs (the worker's \
     dispatcher.yaml on the master, or the slave's TOML / --local-file-dir; basalt run \
     --local-file-dir DIR)";

/// The directories whose files jobs may read.
#[derive(Debug, Clone, Default)]
pub struct LocalFiles {
    dirs: Vec<PathBuf>,
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<'u> {
    /// Over the network: `http://` or `https://`.
    Remote(&'u str),
    /// A file on this worker: `file://PATH` or a plain path.
    Local(&'u Path),
}

impl<'u> Source<'u> {
    /// Classifies an artifact or test-definition URL; other schemes are refused.
    pub fn of(url: &'u str) -> Result<Self, String> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Self::Remote(url));
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Self::Local(Path::new(path)));
        }
        match url.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "{scheme}:// URLs are not supported (use http://, https:// or file://)"
            )),
            None => Ok(Self::Local(Path::new(url))),
        }
    }
}

impl LocalFiles {
    /// The allowed directories; each is resolved now, so a symlinked directory counts as
    /// where it points. Directories that do not exist are left out (nothing is under them).
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            dirs: dirs
                .into_iter()
                .filter_map(|dir| dir.canonicalize().ok())
                .collect(),
        }
    }

    /// The allowed directories, resolved.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `path`, resolved, if it is inside an allowed directory; otherwise why not.
    pub fn check(&self, path: &Path) -> Result<PathBuf, String> {
        if !path.is_absolute() {
            return Err(format!(
                "{} is not an absolute path: a local file is named from the root (file:///...)",
                path.display()
            ));
        }
        let resolved = path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if self.dirs.iter().any(|dir| resolved.starts_with(dir)) {
            return Ok(resolved);
        }
        Err(format!(
            "{} is not under a directory this worker allows jobs to read from: {HOW_TO_ALLOW}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_remote_local_or_refused() {
        assert_eq!(Source::of("https://h/a"), Ok(Source::Remote("https://h/a")));
        assert_eq!(
            Source::of("file:///srv/a"),
            Ok(Source::Local(Path::new("/srv/a")))
        );
        assert_eq!(Source::of("/srv/a"), Ok(Source::Local(Path::new("/srv/a"))));
        assert!(Source::of("ftp://h/a").unwrap_err().contains("ftp://"));
    }

    #[test]
    fn only_files_under_an_allowed_directory_are_read_symlinks_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(images.join("zImage"), "k").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", images.join("link")).unwrap();
        let local = LocalFiles::new([images.clone(), dir.path().join("missing")]);
        assert_eq!(local.dirs().len(), 1);
        assert!(local.check(&images.join("zImage")).is_ok());
        for refused in [
            images.join("link"),
            dir.path().join("secret"),
            images.join("../secret"),
            PathBuf::from("/etc/hostname"),
        ] {
            let error = local.check(&refused).unwrap_err();
            assert!(error.contains("local_file_dirs"), "{error}");
        }
        assert!(local.check(Path::new("relative/zImage")).is_err());
        assert!(LocalFiles::default().check(&images.join("zImage")).is_err());
    }
}
