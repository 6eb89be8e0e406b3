//! What the master tells the world after the fact: the history as a feed of changes, the
//! notifications a job's `notify:` asked for (an outbox: each is written once, in the same
//! transaction that moves the reader's cursor past the change that caused it, and then
//! attempted until it is sent or given up), and users' remote artifact tokens.
//!
//! Every state and health change is already a `history` row, written in the transaction that
//! made it, so a reader that keeps its place in the history (`cursors`) sees each change
//! exactly once, whichever thread or process made it and however often the master is killed.

use rusqlite::{params, OptionalExtension, Row};

use super::inventory::is_unique_violation;
use super::model::{Change, Notification, NotificationState, RemoteToken};
use super::{now_ms, Store, StoreError};

/// A notification to queue: which callback or recipient of the job's `notify:`, and what.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The job.
    pub job_id: u64,
    /// The change that met the criteria (its `history` id).
    pub trigger: i64,
    /// Its place in the job's `notify:` (callbacks first, then recipients).
    pub position: u32,
    /// `callback` or `email`.
    pub kind: String,
    /// The URL or address, for the record.
    pub target: String,
    /// The callback's or recipient's settings, as the job gave them.
    pub spec: serde_json::Value,
}

/// How an attempt went.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// The HTTP status, or the SMTP reply code, when there was an answer.
    pub status: Option<u16>,
    /// What went wrong (empty on success).
    pub error: String,
    /// When to try again; `None` when this attempt settled it (sent, or given up).
    pub retry_at: Option<i64>,
    /// Whether it was delivered.
    pub delivered: bool,
}

fn change_row(row: &Row<'_>) -> rusqlite::Result<Change> {
    Ok(Change {
        id: row.get(0)?,
        at: row.get(1)?,
        kind: row.get(2)?,
        object: row.get(3)?,
        field: row.get(4)?,
        old: row.get(5)?,
        new: row.get(6)?,
        reason: row.get(7)?,
    })
}

const NOTIFICATION_COLUMNS: &str = "id, job_id, trigger, position, kind, target, spec, state, \
     attempts, next_attempt, last_attempt, last_status, last_error, created";

fn notification_row(row: &Row<'_>) -> rusqlite::Result<Notification> {
    let spec: String = row.get(6)?;
    let state: String = row.get(7)?;
    Ok(Notification {
        id: row.get(0)?,
        job_id: row.get(1)?,
        trigger: row.get(2)?,
        position: row.get(3)?,
        kind: row.get(4)?,
        target: row.get(5)?,
        spec: serde_json::from_str(&spec).unwrap_or(serde_json::Value::Null),
        state: NotificationState::parse(&state).unwrap_or(NotificationState::Failed),
        attempts: row.get(8)?,
        next_attempt: row.get(9)?,
        last_attempt: row.get(10)?,
        last_status: row.get(11)?,
        last_error: row.get(12)?,
        created: row.get(13)?,
    })
}

impl Store {
    /// Changes recorded after history row `after`, oldest first, at most `limit`.
    pub fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, at, kind, object, field, old, new, reason FROM history
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, limit], change_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest history row's id (0 for none): where a reader of live changes starts.
    pub fn last_change(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM history", [], |r| r.get(0))?)
    }

    /// How far the reader `name` has got; `None` before its first read (a new reader of an
    /// old database starts at [`Store::last_change`], not at the beginning of time).
    pub fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT position FROM cursors WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Queues `new` and moves cursor `name` to `position`, in one transaction: a change's
    /// notifications are queued exactly once, even if the master dies right after.
    pub fn queue_notifications(
        &self,
        name: &str,
        position: i64,
        new: &[NewNotification],
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let now = now_ms();
        for n in new {
            tx.execute(
                "INSERT OR IGNORE INTO notifications
                     (job_id, trigger, position, kind, target, spec, state, next_attempt, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
                params![
                    n.job_id,
                    n.trigger,
                    n.position,
                    n.kind,
                    n.target,
                    n.spec.to_string(),
                    now
                ],
            )?;
        }
        tx.execute(
            "INSERT INTO cursors (name, position) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)",
            params![name, position],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Pending notifications whose next attempt is due at `now`, oldest first.
    pub fn due_notifications(&self, now: i64, limit: u32) -> Result<Vec<Notification>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![now, limit], notification_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending notification is due, if any is pending.
    pub fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT min(next_attempt) FROM notifications WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Takes notification `id` for an attempt: its next attempt moves to `until`, so that if
    /// the attempt's outcome cannot be recorded (a full disk) it is tried again then, not at
    /// once and over and over. False if it is no longer pending (or the write failed).
    pub fn claim_notification(&self, id: i64, until: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE notifications SET next_attempt = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, until],
        )? == 1)
    }

    /// Records an attempt at notification `id`.
    pub fn record_attempt(&self, id: i64, attempt: &Attempt) -> Result<(), StoreError> {
        let state = match (attempt.delivered, attempt.retry_at) {
            (true, _) => NotificationState::Sent,
            (false, Some(_)) => NotificationState::Pending,
            (false, None) => NotificationState::Failed,
        };
        let now = now_ms();
        self.conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_attempt = ?2,
                 last_status = ?3, last_error = ?4, state = ?5, next_attempt = ?6
             WHERE id = ?1",
            params![
                id,
                now,
                attempt.status,
                attempt.error,
                state.as_str(),
                attempt.retry_at.unwrap_or(now)
            ],
        )?;
        Ok(())
    }

    /// The notifications of job `id`, in the order they were queued.
    pub fn notifications_of(&self, id: u64) -> Result<Vec<Notification>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE job_id = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([id], notification_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Gives `user` a remote artifact token called `name`.
    pub fn add_remote_token(&self, user: &str, name: &str, token: &str) -> Result<(), StoreError> {
        if self.user(user)?.is_none() {
            return Err(StoreError::NotFound {
                kind: "user",
                name: user.to_owned(),
            });
        }
        self.conn
            .execute(
                "INSERT INTO remote_tokens (user, name, token, created) VALUES (?1, ?2, ?3, ?4)",
                params![user, name, token, now_ms()],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Exists {
                    kind: "remote artifact token",
                    name: name.to_owned(),
                },
                false => e.into(),
            })?;
        Ok(())
    }

    /// The remote artifact tokens of `user`, by name.
    pub fn remote_tokens(&self, user: &str) -> Result<Vec<RemoteToken>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT user, name, token, created FROM remote_tokens WHERE user = ?1 ORDER BY name",
        )?;
        let rows = statement.query_map([user], |row| {
            Ok(RemoteToken {
                user: row.get(0)?,
                name: row.get(1)?,
                token: row.get(2)?,
                created: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes `user`'s remote artifact token `name`.
    pub fn delete_remote_token(&self, user: &str, name: &str) -> Result<(), StoreError> {
        let deleted = self.conn.execute(
            "DELETE FROM remote_tokens WHERE user = ?1 AND name = ?2",
            params![user, name],
        )?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                kind: "remote artifact token",
                name: name.to_owned(),
            });
        }
        Ok(())
    }
}
