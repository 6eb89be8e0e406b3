//! The template search path and its sandbox.
//!
//! Names resolve against each directory in order (device dictionaries first, then admin
//! device-type directories, then the built-in one), so an admin overrides a shipped template
//! by dropping a file of the same name earlier in the path. A name may not climb out of its
//! directory (`..`, absolute paths) and a symlink may not point outside it.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use super::TemplateError;

/// The ordered directories templates are loaded from.
#[derive(Clone, Debug, Default)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

/// A template file found on the search path, with what identifies its current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateFile {
    /// The template name (`beaglebone-black.jinja2`).
    pub name: String,
    /// The file it resolved to.
    pub path: PathBuf,
    /// The directory of the search path it was found in.
    pub dir: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

impl SearchPath {
    /// Directories in priority order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Checks that a template name stays inside its directory.
    fn check_name(name: &str) -> Result<(), TemplateError> {
        let refuse = |reason: &str| TemplateError::Escape {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(refuse("empty template name"));
        }
        if name.contains('\0') || name.contains('\\') {
            return Err(refuse("template names may not contain NUL or backslashes"));
        }
        for component in Path::new(name).components() {
            match component {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => {
                    return Err(refuse("template names may not contain '..'"));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("absolute template paths are not allowed"));
                }
            }
        }
        Ok(())
    }

    /// Finds the file a template name refers to now, or `None`.
    pub fn resolve(&self, name: &str) -> Result<Option<TemplateFile>, TemplateError> {
        Self::check_name(name)?;
        let nested = name.contains('/');
        for dir in &self.dirs {
            let candidate = dir.join(name);
            let Ok(link_meta) = std::fs::symlink_metadata(&candidate) else {
                continue;
            };
            // A regular file named directly in the directory cannot lead outside it; links
            // and names through subdirectories (which may be links) are checked for real.
            let meta = if link_meta.file_type().is_symlink() || nested {
                self.check_inside(name, dir, &candidate)?;
                match std::fs::metadata(&candidate) {
                    Ok(meta) => meta,
                    Err(_) => continue,
                }
            } else {
                link_meta
            };
            if !meta.is_file() {
                continue;
            }
            return Ok(Some(TemplateFile {
                name: name.to_owned(),
                path: candidate,
                dir: dir.clone(),
                modified: meta.modified().ok(),
                len: meta.len(),
            }));
        }
        Ok(None)
    }

    /// Refuses a candidate whose real location is outside its directory.
    fn check_inside(&self, name: &str, dir: &Path, candidate: &Path) -> Result<(), TemplateError> {
        let Ok(real) = std::fs::canonicalize(candidate) else {
            // A dangling link: nothing to load, and nothing outside to reach.
            return Ok(());
        };
        let real_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if real.starts_with(&real_dir) {
            return Ok(());
        }
        Err(TemplateError::Escape {
            name: name.to_owned(),
            reason: format!(
                "{} is a link to {}, outside {}",
                candidate.display(),
                real.display(),
                dir.display()
            ),
        })
    }

    /// Every template name (`*.jinja2`) on the path, each resolved to the file that wins.
    pub fn list(&self) -> Vec<TemplateFile> {
        let mut names: Vec<String> = self
            .dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.filter_map(Result::ok))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.ends_with(".jinja2"))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| self.resolve(&name).ok().flatten())
            .collect()
    }

    /// Every file a template name would resolve to, in priority order (the first is used,
    /// the rest are overridden).
    pub fn all_candidates(&self, name: &str) -> Vec<PathBuf> {
        if Self::check_name(name).is_err() {
            return Vec::new();
        }
        self.dirs
            .iter()
            .map(|dir| dir.join(name))
            .filter(|path| path.is_file())
            .collect()
    }
}

impl TemplateFile {
    /// Whether `other` is the same version of the same file.
    pub fn same_version(&self, other: &TemplateFile) -> bool {
        self.path == other.path && self.modified == other.modified && self.len == other.len
    }
}
