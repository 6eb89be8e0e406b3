//! Names and paths a job definition gives, kept where they belong.
//!
//! A job comes from whoever may submit one and runs on a worker, often as root. Every name it
//! gives that becomes part of a path (an artifact key, the file name at the end of a URL, a
//! path inside a test repository) must stay in the job's own directories. These checks run
//! twice: at submission, where the definition shows the name (so a bad job is refused with
//! the key that is wrong), and again at run time, right before the path is used, for jobs that
//! never passed a master (`basalt run` by hand) and for names only known then (symlinks in a
//! cloned repository).

use std::path::{Component, Path, PathBuf};

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Escape {
    /// Not usable as one file name.
    #[error("{name:?} cannot name a file: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A relative path that is absolute or climbs out with `..`.
    #[error("{path:?} must be a relative path inside {inside} without '..'")]
    NotInside {
        /// The path given.
        path: String,
        /// What it must stay inside.
        inside: &'static str,
    },
    /// A path that resolves (through symlinks) outside where it must stay.
    #[error("{path} leads outside {base} (through a symlink or '..')")]
    Resolved {
        /// The path, resolved.
        path: PathBuf,
        /// Where it must stay.
        base: PathBuf,
    },
}

/// The longest name accepted for one path component (Linux's NAME_MAX).
const NAME_MAX: usize = 255;

/// Checks that `name` is one plain file name: not empty, not `.` or `..`, no `/`, no NUL or
/// other control characters, at most 255 bytes.
pub fn file_name(name: &str) -> Result<&str, Escape> {
    let bad = |why| Escape::BadName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name == "." || name == ".." {
        return Err(bad("it is a directory reference"));
    }
    if name.contains('/') {
        return Err(bad("it contains '/'"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("it contains control characters"));
    }
    if name.len() > NAME_MAX {
        return Err(bad("it is longer than 255 bytes"));
    }
    Ok(name)
}

/// The file name a download from `url` is stored under: the last segment of its path (no
/// query or fragment), checked with [`file_name`]. `None` when the URL ends in `/`.
pub fn url_file_name(url: &str) -> Option<Result<&str, Escape>> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or(path);
    (!last.is_empty()).then(|| file_name(last))
}

/// Checks that `path` is relative and has only plain components (`a/b.yaml`, `./a`), so that
/// joined to a directory it names something inside it (symlinks aside: see [`resolve_inside`]).
pub fn relative_path<'p>(path: &'p str, inside: &'static str) -> Result<&'p Path, Escape> {
    let escape = || Escape::NotInside {
        path: path.to_owned(),
        inside,
    };
    let relative = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return Err(escape());
    }
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape())
            }
        }
    }
    Ok(relative)
}

/// `base/relative`, resolved through every symlink, if it exists and is inside `base`
/// (itself resolved): what to open when the tree under `base` came from the job (a cloned
/// repository can hold a symlink to `/etc/shadow`).
pub fn resolve_inside(base: &Path, relative: &Path) -> Result<PathBuf, ResolveError> {
    let base = base.canonicalize().map_err(ResolveError::Io)?;
    let path = base
        .join(relative)
        .canonicalize()
        .map_err(ResolveError::Io)?;
    if !path.starts_with(&base) {
        return Err(ResolveError::Escape(Escape::Resolved { path, base }));
    }
    Ok(path)
}

/// Why [`resolve_inside`] gave no path.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The path does not exist or cannot be read.
    #[error(transparent)]
    Io(std::io::Error),
    /// It leads outside.
    #[error(transparent)]
    Escape(Escape),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_directory_references_separators_and_controls_do_not() {
        for good in [
            "zImage",
            "rootfs.ext4.xz",
            "-dash",
            "a b",
            ".hidden",
            "ü.img",
        ] {
            assert_eq!(file_name(good), Ok(good));
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_urls_file_name_is_its_last_path_segment_without_query() {
        assert_eq!(
            url_file_name("http://h/a/zImage?x=1/../..#f"),
            Some(Ok("zImage"))
        );
        assert_eq!(url_file_name("file:///images/Image"), Some(Ok("Image")));
        assert_eq!(url_file_name("http://h/dir/"), None);
        assert!(matches!(url_file_name("http://h/a/.."), Some(Err(_))));
        assert!(matches!(url_file_name("http://h/a/..?q"), Some(Err(_))));
    }

    #[test]
    fn relative_paths_may_not_be_absolute_or_climb() {
        for good in ["a.yaml", "./a/b.yaml", "automated/linux/smoke/smoke.yaml"] {
            assert!(relative_path(good, "the repository").is_ok(), "{good}");
        }
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", ""] {
            assert!(relative_path(bad, "the repository").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_symlink_out_of_the_base_is_refused_and_one_inside_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("repo");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(base.join("real.yaml"), "y").unwrap();
        std::os::unix::fs::symlink("../secret", base.join("out.yaml")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", base.join("abs.yaml")).unwrap();
        std::os::unix::fs::symlink("real.yaml", base.join("in.yaml")).unwrap();
        let resolved = resolve_inside(&base, Path::new("in.yaml")).unwrap();
        assert!(resolved.ends_with("repo/real.yaml"), "{resolved:?}");
        for escape in ["out.yaml", "abs.yaml"] {
            assert!(
                matches!(
                    resolve_inside(&base, Path::new(escape)),
                    Err(ResolveError::Escape(_))
                ),
                "{escape}"
            );
        }
        assert!(matches!(
            resolve_inside(&base, Path::new("missing.yaml")),
            Err(ResolveError::Io(_))
        ));
    }
}
