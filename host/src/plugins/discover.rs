//! Where plugin libraries are looked for, in order.
//!
//! Earlier directories win: when two libraries register the same driver, the one found first
//! is used and the other is reported as a duplicate. The order is: `--plugin-dir` flags, then
//! the `BASALT_PLUGIN_PATH` entries, then the built-in locations next to the executable.

use std::path::{Path, PathBuf};

/// The environment variable holding extra plugin directories, colon-separated.
pub const PLUGIN_PATH_ENV: &str = "BASALT_PLUGIN_PATH";

/// The file-name prefix of the plugins Basalt ships; used to pick them out of cargo's target
/// directory, where other libraries live too.
const SHIPPED_PREFIX: &str = "libbasalt_";

/// One directory to scan, and which files in it count as plugins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
    /// When set, only files whose name starts with this prefix are plugins.
    pub only_prefix: Option<&'static str>,
}

/// The ordered list of plugin directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginSearchPath {
    /// Directories in priority order.
    pub dirs: Vec<SearchDir>,
}

/// Builds the search path from explicit directories, the environment variable's value and the
/// executable's location. Kept free of I/O beyond reading nothing, so callers pass in what they
/// read from the environment.
pub fn plugin_search_path(
    explicit: &[PathBuf],
    env_value: Option<&str>,
    exe: Option<&Path>,
) -> PluginSearchPath {
    let mut dirs: Vec<SearchDir> = explicit
        .iter()
        .map(|p| SearchDir {
            path: p.clone(),
            only_prefix: None,
        })
        .collect();
    if let Some(value) = env_value {
        dirs.extend(
            value
                .split(':')
                .filter(|entry| !entry.is_empty())
                .map(|entry| SearchDir {
                    path: PathBuf::from(entry),
                    only_prefix: None,
                }),
        );
    }
    if let Some(exe_dir) = exe.and_then(Path::parent) {
        // An installed layout: <prefix>/bin/basalt and <prefix>/lib/basalt/plugins/.
        dirs.push(SearchDir {
            path: exe_dir.join("../lib/basalt/plugins"),
            only_prefix: None,
        });
        // A cargo build: target/<profile>/basalt next to target/<profile>/libbasalt_*.so.
        dirs.push(SearchDir {
            path: exe_dir.to_path_buf(),
            only_prefix: Some(SHIPPED_PREFIX),
        });
    }
    PluginSearchPath { dirs }
}

impl PluginSearchPath {
    /// Every candidate library file, in priority order; directories that do not exist are
    /// skipped (the built-in ones often don't), unreadable ones are reported.
    pub fn candidates(&self) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
        let (groups, errors) = self.candidates_by_dir();
        (groups.into_iter().flatten().collect(), errors)
    }

    /// The candidates grouped by directory, in priority order, each group sorted by name.
    pub fn candidates_by_dir(&self) -> (Vec<Vec<PathBuf>>, Vec<(PathBuf, std::io::Error)>) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for dir in &self.dirs {
            let entries = match std::fs::read_dir(&dir.path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    errors.push((dir.path.clone(), e));
                    continue;
                }
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| is_candidate(path, dir.only_prefix))
                .collect();
            found.sort();
            files.push(found);
        }
        (files, errors)
    }
}

fn is_candidate(path: &Path, only_prefix: Option<&str>) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let is_library = Path::new(name)
        .extension()
        .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION);
    is_library && only_prefix.is_none_or(|prefix| name.starts_with(prefix)) && path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dirs_come_before_env_and_builtin() {
        let path = plugin_search_path(
            &[PathBuf::from("/a")],
            Some("/b::/c"),
            Some(Path::new("/opt/basalt/bin/basalt")),
        );
        let dirs: Vec<_> = path.dirs.iter().map(|d| d.path.clone()).collect();
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c"),
                PathBuf::from("/opt/basalt/bin/../lib/basalt/plugins"),
                PathBuf::from("/opt/basalt/bin"),
            ]
        );
        assert_eq!(path.dirs[4].only_prefix, Some(SHIPPED_PREFIX));
        assert_eq!(path.dirs[0].only_prefix, None);
    }

    #[test]
    fn candidates_are_shared_libraries_filtered_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libbasalt_x.so",
            "libother.so",
            "notes.txt",
            "libbasalt_y.so",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let search = PluginSearchPath {
            dirs: vec![SearchDir {
                path: dir.path().to_path_buf(),
                only_prefix: Some(SHIPPED_PREFIX),
            }],
        };
        let (files, errors) = search.candidates();
        assert!(errors.is_empty());
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec!["libbasalt_x.so", "libbasalt_y.so"]);
    }
}
