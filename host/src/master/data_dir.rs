//! The master's data directory at start-up: a database that went missing or was emptied is
//! never silently replaced by a new one, and job ids never take a log directory that is
//! already there.
//!
//! Without these checks a master started over a data directory whose `basalt.db` was lost
//! (a bad restore, a wrong mount, a full disk at the wrong moment) came up with no jobs,
//! workers or devices, and its next job 1 overwrote the old job 1's log.

use std::path::{Path, PathBuf};

use super::config::MasterConfig;

/// Why the data directory cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A master's data without its database.
    #[error(
        "{} holds a master's data ({found}) but its database {} is {state}: refusing to start \
         over it with an empty one. Restore basalt.db from a backup, or start once with --init \
         to begin a new database there (the job logs stay, and new job ids continue after them)",
        dir.display(),
        database.display()
    )]
    DatabaseLost {
        /// The data directory.
        dir: PathBuf,
        /// The database file.
        database: PathBuf,
        /// `missing` or `empty`.
        state: &'static str,
        /// What was found instead, for the message.
        found: String,
    },
    /// The directory could not be read.
    #[error("cannot read the data directory {}: {source}", dir.display())]
    Unreadable {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Refuses a data directory that has a master's data but no usable database, unless the
/// admin asked for a new one (`--init`). A missing or empty directory is a first start.
pub fn check_database(config: &MasterConfig) -> Result<(), DataDirError> {
    let database = config.database();
    let state = match std::fs::metadata(&database) {
        Ok(meta) if meta.len() > 0 => return Ok(()),
        Ok(_) => "empty",
        Err(_) => "missing",
    };
    if config.init {
        tracing::warn!(
            "--init: starting a new database {} ({state} before)",
            database.display()
        );
        return Ok(());
    }
    // What only a master that ran writes: its admin token and job logs. Files an admin
    // provisions before the first start (dispatcher.d/, device-types/) do not count.
    let mut found: Vec<String> = Vec::new();
    if config.token_file().exists() {
        found.push("admin-token".into());
    }
    match std::fs::read_dir(config.jobs_dir()) {
        Ok(mut jobs) => {
            if jobs.next().is_some() {
                found.push("jobs".into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DataDirError::Unreadable {
                dir: config.jobs_dir(),
                source,
            })
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(DataDirError::DatabaseLost {
        dir: config.data_dir.clone(),
        database,
        state,
        found: found.join(", "),
    })
}

/// The highest job id that has a log directory under `jobs_dir` (0 if none).
pub fn highest_logged_job(jobs_dir: &Path) -> u64 {
    std::fs::read_dir(jobs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> MasterConfig {
        MasterConfig {
            data_dir: dir.join("data"),
            ..MasterConfig::default()
        }
    }

    #[test]
    fn a_first_start_and_a_usable_database_pass_a_lost_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config(tmp.path());
        assert!(check_database(&config).is_ok(), "no directory: first start");
        // Provisioned before the first start: still a first start.
        std::fs::create_dir_all(config.data_dir.join("dispatcher.d/w1")).unwrap();
        std::fs::create_dir_all(config.jobs_dir()).unwrap();
        assert!(
            check_database(&config).is_ok(),
            "provisioned files are no master's data"
        );
        std::fs::create_dir_all(config.jobs_dir().join("7")).unwrap();
        let error = check_database(&config).unwrap_err().to_string();
        assert!(error.contains("basalt.db is missing"), "{error}");
        assert!(
            error.contains("(jobs)") && error.contains("--init"),
            "{error}"
        );
        std::fs::write(config.database(), b"").unwrap();
        let error = check_database(&config).unwrap_err().to_string();
        assert!(error.contains("is empty"), "{error}");
        config.init = true;
        assert!(check_database(&config).is_ok());
        config.init = false;
        std::fs::write(config.database(), b"SQLite format 3\0").unwrap();
        assert!(check_database(&config).is_ok());
        assert_eq!(highest_logged_job(&config.jobs_dir()), 7);
        assert_eq!(highest_logged_job(&tmp.path().join("nowhere")), 0);
    }
}
