//! The master's database: device types, workers, devices with their dictionaries, jobs with
//! their state and health history, and test results.
//!
//! One SQLite file in the master's data directory, in WAL mode so the HTTP API reads while
//! the control loop writes. Every change that must stay consistent (a job taking a device, a
//! log batch with the results it carries, a job finishing and freeing its device) is one
//! transaction. The schema is versioned with `PRAGMA user_version` and migrated forward on
//! open ([`schema`]). Only this module imports SQLite; everything else sees [`Store`]'s
//! methods and the records in [`model`].

mod inventory;
mod jobs;
pub mod model;
mod notifications;
mod schema;
mod users;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use jobs::{JobLogBatch, NewJob, NewResult};
pub use model::*;
pub use notifications::{Attempt, NewNotification};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (disk full, locked for too long, corrupt file).
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file was written by a newer Basalt.
    #[error(
        "the database is at schema version {found}, newer than this basalt knows ({known}); \
         run a newer basalt or restore a backup"
    )]
    TooNew {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A name or id that is not there.
    #[error("{kind} {name:?} does not exist")]
    NotFound {
        /// What was looked for (`device`, `job`, ...).
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A name that is already taken.
    #[error("{kind} {name:?} already exists")]
    Exists {
        /// What (`device`, `worker`, ...).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A change the object's current state does not allow.
    #[error("{0}")]
    Conflict(String),
    /// SQLite's own check found damage.
    #[error(
        "the database is corrupt ({0}): stop, restore basalt.db from a backup (or try \
         `sqlite3 basalt.db .recover`), and start again"
    )]
    Corrupt(String),
}

impl StoreError {
    /// SQLite's corruption codes as [`StoreError::Corrupt`], which says what to do.
    fn said_plainly(self) -> Self {
        match self {
            e if e.is_corrupt() && !matches!(e, StoreError::Corrupt(_)) => {
                StoreError::Corrupt(e.to_string())
            }
            e => e,
        }
    }

    /// Whether the file itself is damaged: retrying cannot help, and every write fails.
    pub fn is_corrupt(&self) -> bool {
        match self {
            StoreError::Corrupt(_) => true,
            StoreError::Sql(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ),
            _ => false,
        }
    }
}

/// The master's database connection. Open one per thread; SQLite serialises the writers.
pub struct Store {
    conn: Connection,
}

/// Milliseconds since the Unix epoch: the store's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A store time (ms since the epoch) as `2026-11-25 10:00:00`, UTC, to the second; `None`
/// for none or a negative one. The APIs, pages and commands derive their formats from it.
pub fn utc_seconds(ms: Option<i64>) -> Option<String> {
    let ms = u64::try_from(ms?).ok()?;
    let at = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let rfc = humantime::format_rfc3339_seconds(at).to_string();
    Some(rfc.trim_end_matches('Z').replacen('T', " ", 1))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the current
    /// schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_file(path).map_err(StoreError::said_plainly)
    }

    fn open_file(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL loses nothing on a process crash (only on power loss, the
        // last transactions); every write the master acknowledges survives `kill -9`.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Self { conn };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// SQLite's `quick_check` of the whole file (reads every page; seconds for a large
    /// database): damage found at start-up is a clear error instead of failed writes later.
    pub fn check_integrity(&self) -> Result<(), StoreError> {
        self.quick_check().map_err(StoreError::said_plainly)
    }

    fn quick_check(&self) -> Result<(), StoreError> {
        let mut statement = self.conn.prepare("PRAGMA quick_check(5)")?;
        let findings: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        if findings == ["ok"] {
            Ok(())
        } else {
            Err(StoreError::Corrupt(findings.join("; ")))
        }
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Appends a state or health change to the history.
    fn record(
        tx: &Connection,
        kind: &str,
        object: &str,
        field: &str,
        old: &str,
        new: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        if old == new {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO history (at, kind, object, field, old, new, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![now_ms(), kind, object, field, old, new, reason],
        )?;
        Ok(())
    }

    /// The state and health history of one object, oldest first.
    pub fn history(&self, kind: &str, object: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT at, field, old, new, reason FROM history
             WHERE kind = ?1 AND object = ?2 ORDER BY id",
        )?;
        let rows = statement.query_map(rusqlite::params![kind, object], |row| {
            Ok(HistoryEntry {
                at: row.get(0)?,
                field: row.get(1)?,
                old: row.get(2)?,
                new: row.get(3)?,
                reason: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
