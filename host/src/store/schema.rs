//! The schema and its migrations: each entry of [`MIGRATIONS`] takes the file from version
//! `index` to `index + 1`; released entries are never edited, only appended to.

use rusqlite::Connection;

use super::StoreError;

/// The migrations in order.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE device_types (
         name        TEXT PRIMARY KEY,
         description TEXT NOT NULL DEFAULT '',
         created     INTEGER NOT NULL
     );
     CREATE TABLE workers (
         hostname    TEXT PRIMARY KEY,
         description TEXT NOT NULL DEFAULT '',
         state       TEXT NOT NULL DEFAULT 'offline',
         health      TEXT NOT NULL DEFAULT 'active',
         job_limit   INTEGER NOT NULL DEFAULT 0,
         last_seen   INTEGER,
         version     TEXT,
         created     INTEGER NOT NULL
     );
     CREATE TABLE devices (
         hostname    TEXT PRIMARY KEY,
         device_type TEXT NOT NULL REFERENCES device_types(name),
         worker      TEXT REFERENCES workers(hostname),
         dictionary  TEXT NOT NULL DEFAULT '',
         tags        TEXT NOT NULL DEFAULT '[]',
         description TEXT NOT NULL DEFAULT '',
         state       TEXT NOT NULL DEFAULT 'idle',
         health      TEXT NOT NULL DEFAULT 'unknown',
         current_job INTEGER
     );
     CREATE TABLE jobs (
         id               INTEGER PRIMARY KEY AUTOINCREMENT,
         name             TEXT NOT NULL,
         definition       TEXT NOT NULL,
         device_type      TEXT NOT NULL,
         requested_device TEXT,
         tags             TEXT NOT NULL DEFAULT '[]',
         context          TEXT NOT NULL DEFAULT '{}',
         priority         INTEGER NOT NULL,
         submitter        TEXT NOT NULL,
         state            TEXT NOT NULL,
         health           TEXT NOT NULL,
         actual_device    TEXT,
         worker           TEXT,
         submit_time      INTEGER NOT NULL,
         start_time       INTEGER,
         end_time         INTEGER,
         failure_comment  TEXT NOT NULL DEFAULT '',
         log_bytes        INTEGER NOT NULL DEFAULT 0,
         log_lines        INTEGER NOT NULL DEFAULT 0,
         job_result       TEXT,
         error_type       TEXT,
         error_msg        TEXT
     );
     CREATE INDEX jobs_by_state ON jobs(state);
     CREATE TABLE results (
         id          INTEGER PRIMARY KEY,
         job_id      INTEGER NOT NULL REFERENCES jobs(id),
         suite       TEXT NOT NULL,
         name        TEXT NOT NULL,
         result      TEXT NOT NULL,
         measurement TEXT,
         units       TEXT,
         log_line    INTEGER NOT NULL,
         data        TEXT NOT NULL
     );
     CREATE INDEX results_by_job ON results(job_id);
     CREATE TABLE history (
         id     INTEGER PRIMARY KEY,
         at     INTEGER NOT NULL,
         kind   TEXT NOT NULL,
         object TEXT NOT NULL,
         field  TEXT NOT NULL,
         old    TEXT NOT NULL,
         new    TEXT NOT NULL,
         reason TEXT NOT NULL
     );
     CREATE INDEX history_by_object ON history(kind, object);",
    // 2: users and their API tokens (only a token's SHA-256 is kept).
    "CREATE TABLE users (
         name      TEXT PRIMARY KEY,
         superuser INTEGER NOT NULL DEFAULT 0,
         active    INTEGER NOT NULL DEFAULT 1,
         created   INTEGER NOT NULL
     );
     CREATE TABLE tokens (
         digest      TEXT PRIMARY KEY,
         user        TEXT NOT NULL REFERENCES users(name),
         description TEXT NOT NULL DEFAULT '',
         created     INTEGER NOT NULL,
         last_used   INTEGER
     );
     CREATE INDEX tokens_by_user ON tokens(user);",
    // 3: health-check jobs, and each device's power state as last read back.
    "ALTER TABLE jobs ADD COLUMN health_check INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE devices ADD COLUMN power_state TEXT NOT NULL DEFAULT 'unknown';
     ALTER TABLE devices ADD COLUMN power_checked INTEGER;",
    // 4: how often a device type's health check runs (LAVA's defaults: every 24 hours).
    "ALTER TABLE device_types ADD COLUMN health_frequency INTEGER NOT NULL DEFAULT 24;
     ALTER TABLE device_types ADD COLUMN health_denominator TEXT NOT NULL DEFAULT 'hours';
     ALTER TABLE device_types ADD COLUMN health_disabled INTEGER NOT NULL DEFAULT 0;",
    // 5: workers a slave's HELLO created (forgotten again if they never get a device).
    "ALTER TABLE workers ADD COLUMN self_registered INTEGER NOT NULL DEFAULT 0;",
    // 6: LAVA's job visibility (NULL for older jobs: read from their definitions), and the
    // groups a user belongs to for `visibility: {group: [...]}`.
    "ALTER TABLE jobs ADD COLUMN visibility TEXT;
     ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';",
    // 7: remote artifact tokens (LAVA's RemoteArtifactsAuth: a user's named secrets, which a
    // callback's `token:` names), the notifications a job's `notify:` asked for (one row per
    // callback or recipient, written when a state change met the criteria, with every
    // attempt's outcome), and how far each history reader has got.
    "CREATE TABLE remote_tokens (
         user    TEXT NOT NULL REFERENCES users(name),
         name    TEXT NOT NULL,
         token   TEXT NOT NULL,
         created INTEGER NOT NULL,
         PRIMARY KEY (user, name)
     );
     CREATE TABLE notifications (
         id           INTEGER PRIMARY KEY,
         job_id       INTEGER NOT NULL REFERENCES jobs(id),
         trigger      INTEGER NOT NULL,
         position     INTEGER NOT NULL,
         kind         TEXT NOT NULL,
         target       TEXT NOT NULL,
         spec         TEXT NOT NULL,
         state        TEXT NOT NULL,
         attempts     INTEGER NOT NULL DEFAULT 0,
         next_attempt INTEGER NOT NULL,
         last_attempt INTEGER,
         last_status  INTEGER,
         last_error   TEXT NOT NULL DEFAULT '',
         created      INTEGER NOT NULL,
         UNIQUE (job_id, trigger, position)
     );
     CREATE INDEX notifications_due ON notifications(state, next_attempt);
     CREATE INDEX notifications_by_job ON notifications(job_id);
     CREATE TABLE cursors (
         name     TEXT PRIMARY KEY,
         position INTEGER NOT NULL
     );",
    // 8: a user's e-mail address (notifications to `user:`, the submitter by default), and
    // history ids that are never reused (AUTOINCREMENT): readers keep their place in the
    // history by id, and a forgotten worker's rows being deleted must not let new rows take
    // ids a reader has passed.
    "ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
     CREATE TABLE history_new (
         id     INTEGER PRIMARY KEY AUTOINCREMENT,
         at     INTEGER NOT NULL,
         kind   TEXT NOT NULL,
         object TEXT NOT NULL,
         field  TEXT NOT NULL,
         old    TEXT NOT NULL,
         new    TEXT NOT NULL,
         reason TEXT NOT NULL
     );
     INSERT INTO history_new (id, at, kind, object, field, old, new, reason)
         SELECT id, at, kind, object, field, old, new, reason FROM history;
     DROP TABLE history;
     ALTER TABLE history_new RENAME TO history;
     CREATE INDEX history_by_object ON history(kind, object);",
];

/// The schema version this build writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`CURRENT`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > CURRENT {
        return Err(StoreError::TooNew {
            found,
            known: CURRENT,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
