//! The registry of loaded drivers, keyed by (kind, name).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use basalt_plugin_api::{DriverConstructor, DriverKind, Log};

use super::drivers::{BootDriver, Connection, DriverError, PowerDriver};
use super::load::{load_library, LoadError};
use super::PluginSearchPath;

/// A loaded plugin library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The name it gives itself.
    pub name: String,
    /// Its own version.
    pub version: String,
}

/// One registered driver.
#[derive(Clone)]
pub struct DriverInfo {
    /// Its kind.
    pub kind: DriverKind,
    /// Its name within the kind.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// The library that provides it.
    pub library: Arc<LibraryInfo>,
    constructor: DriverConstructor,
}

/// Every driver that loaded, and every file that did not.
#[derive(Default)]
pub struct Registry {
    drivers: BTreeMap<(DriverKind, String), DriverInfo>,
    libraries: Vec<Arc<LibraryInfo>>,
    errors: Vec<LoadError>,
}

impl Registry {
    /// Scans the search path and loads every candidate library.
    pub fn load(search: &PluginSearchPath) -> Self {
        let (files, dir_errors) = search.candidates();
        let mut registry = Self::load_files(files);
        registry.errors.extend(
            dir_errors
                .into_iter()
                .map(|(path, source)| LoadError::UnreadableDir { path, source }),
        );
        registry
    }

    /// Loads only as much of the search path as it takes to find the `needed` drivers: in
    /// each directory, files whose names mention a needed driver as `<kind>_<name>`
    /// (`power_command` for power `command`) are tried first, and loading stops once every needed driver is
    /// registered. The job runner uses this so it maps no code it will not run and is not
    /// held up by an unrelated broken plugin; the drivers it finds are the ones a full load
    /// would pick, unless one directory holds two libraries with the same driver.
    pub fn load_needed(search: &PluginSearchPath, needed: &[(DriverKind, String)]) -> Self {
        let mut registry = Self::default();
        let (groups, _) = search.candidates_by_dir();
        let mentions = |path: &PathBuf| {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_ascii_lowercase()
                .replace('-', "_");
            needed.iter().any(|(kind, name)| {
                stem.contains(&format!("{}_{}", kind.name(), name.replace('-', "_")))
            })
        };
        let mut seen = HashSet::new();
        for mut group in groups {
            group.sort_by_key(|path| !mentions(path));
            for path in group {
                if needed
                    .iter()
                    .all(|(kind, name)| registry.get(*kind, name).is_some())
                {
                    return registry;
                }
                let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen.insert(identity) {
                    registry.add_library(path);
                }
            }
        }
        registry
    }

    /// Loads the given library files, in order. A file reached twice (through a symlink or a
    /// directory listed twice) is loaded once.
    pub fn load_files(files: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut registry = Self::default();
        let mut seen = HashSet::new();
        for path in files {
            let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(identity) {
                registry.add_library(path);
            }
        }
        registry
    }

    fn add_library(&mut self, path: PathBuf) {
        let (_module, description) = match load_library(&path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::debug!(%error, "plugin not loaded");
                self.errors.push(error);
                return;
            }
        };
        let library = Arc::new(LibraryInfo {
            path: path.clone(),
            name: description.name.to_string(),
            version: description.version.to_string(),
        });
        self.libraries.push(library.clone());
        for decl in description.drivers.iter() {
            let kind = decl.constructor.kind();
            let name = decl.name.to_string();
            if let Some(existing) = self.drivers.get(&(kind, name.clone())) {
                self.errors.push(LoadError::DuplicateDriver {
                    path: path.clone(),
                    kind,
                    name,
                    first: existing.library.path.clone(),
                });
                continue;
            }
            self.drivers.insert(
                (kind, name.clone()),
                DriverInfo {
                    kind,
                    name,
                    description: decl.description.to_string(),
                    library: library.clone(),
                    constructor: decl.constructor,
                },
            );
        }
    }

    /// Every driver, ordered by kind then name.
    pub fn drivers(&self) -> impl Iterator<Item = &DriverInfo> {
        self.drivers.values()
    }

    /// Every library that loaded.
    pub fn libraries(&self) -> &[Arc<LibraryInfo>] {
        &self.libraries
    }

    /// Every file that could not be used, in the order met.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// Looks a driver up.
    pub fn get(&self, kind: DriverKind, name: &str) -> Option<&DriverInfo> {
        self.drivers.get(&(kind, name.to_owned()))
    }

    fn find(&self, kind: DriverKind, name: &str) -> Result<&DriverInfo, DriverError> {
        self.get(kind, name).ok_or_else(|| DriverError::Unknown {
            kind,
            name: name.to_owned(),
            available: self
                .drivers()
                .filter(|d| d.kind == kind)
                .map(|d| d.name.clone())
                .collect(),
        })
    }

    /// Builds the power driver `name` from its JSON configuration.
    pub fn power(&self, name: &str, config: &str, log: Log) -> Result<PowerDriver, DriverError> {
        let info = self.find(DriverKind::Power, name)?;
        match info.constructor {
            DriverConstructor::Power(build) => PowerDriver::build(info, build, config, log),
            _ => unreachable!("registry key kind comes from the constructor"),
        }
    }

    /// Builds the connection driver `name` from its JSON configuration.
    pub fn connection(
        &self,
        name: &str,
        config: &str,
        log: Log,
    ) -> Result<Connection, DriverError> {
        let info = self.find(DriverKind::Connection, name)?;
        match info.constructor {
            DriverConstructor::Connection(build) => Connection::build(info, build, config, log),
            _ => unreachable!("registry key kind comes from the constructor"),
        }
    }

    /// Builds the boot driver `name` from its JSON configuration.
    pub fn boot(&self, name: &str, config: &str, log: Log) -> Result<BootDriver, DriverError> {
        let info = self.find(DriverKind::Boot, name)?;
        match info.constructor {
            DriverConstructor::Boot(build) => BootDriver::build(info, build, config, log),
            _ => unreachable!("registry key kind comes from the constructor"),
        }
    }
}
