//! Where device-type templates come from, shared by the commands that render them.
//!
//! Order: `--device-types` directories, then the colon-separated `BASALT_DEVICE_TYPES`, then
//! the built-in templates (`<prefix>/share/basalt/device-types` for an installed basalt,
//! the repository's `device-types/` for a cargo build). Earlier directories win, so an admin
//! overrides a shipped template by dropping a file of the same name into their directory.

use std::path::{Path, PathBuf};

use clap::Args;

/// The environment variable holding extra device-type directories.
pub const DEVICE_TYPES_ENV: &str = "BASALT_DEVICE_TYPES";

/// Flags choosing the device-type directories.
#[derive(Args, Debug, Clone, Default)]
pub struct DeviceTypeDirs {
    /// A directory of device-type templates, searched before the built-in ones (may be
    /// repeated; earlier wins).
    #[arg(long = "device-types", value_name = "DIR")]
    pub device_type_dirs: Vec<PathBuf>,
}

impl DeviceTypeDirs {
    /// The device-type search path, in priority order.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.device_type_dirs.clone();
        if let Ok(value) = std::env::var(DEVICE_TYPES_ENV) {
            dirs.extend(
                value
                    .split(':')
                    .filter(|e| !e.is_empty())
                    .map(PathBuf::from),
            );
        }
        if let Some(builtin) = std::env::current_exe()
            .ok()
            .and_then(|exe| builtin_device_types(&exe))
        {
            dirs.push(builtin);
        }
        dirs
    }
}

/// The shipped templates relative to the executable, if present.
fn builtin_device_types(exe: &Path) -> Option<PathBuf> {
    let bin_dir = exe.parent()?;
    [
        bin_dir.join("../share/basalt/device-types"),
        // target/<profile>/basalt in a cargo build of the repository.
        bin_dir.join("../../device-types"),
    ]
    .into_iter()
    .find(|dir| dir.join("base.jinja2").is_file())
    .map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir))
}
