//! Users and their API tokens.
//!
//! A token is shown once, when it is made; the database keeps only its SHA-256, so a copy of
//! the file does not hand out access to the lab.

use rusqlite::{params, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use super::inventory::is_unique_violation;
use super::model::{TokenInfo, User};
use super::{now_ms, Store, StoreError};

/// `last_used` is rewritten at most this often, so reading the API does not write on every call.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn user_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: row.get(0)?,
        superuser: row.get(1)?,
        active: row.get(2)?,
        created: row.get(3)?,
        groups: super::inventory::string_list_column(row, 4)?,
        email: row.get(5)?,
    })
}

impl Store {
    /// Creates a user.
    pub fn add_user(&self, name: &str, superuser: bool) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO users (name, superuser, active, created) VALUES (?1, ?2, 1, ?3)",
                params![name, superuser, now_ms()],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Exists {
                    kind: "user",
                    name: name.to_owned(),
                },
                false => e.into(),
            })?;
        Ok(())
    }

    /// Removes a user and every token of theirs (API and remote artifact tokens); the jobs they submitted keep their name.
    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM tokens WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM remote_tokens WHERE user = ?1", [name])?;
        if tx.execute("DELETE FROM users WHERE name = ?1", [name])? == 0 {
            return Err(StoreError::NotFound {
                kind: "user",
                name: name.to_owned(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets the groups a user belongs to.
    pub fn set_user_groups(&self, name: &str, groups: &[String]) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE users SET groups = ?2 WHERE name = ?1",
            params![
                name,
                serde_json::to_string(groups).unwrap_or_else(|_| "[]".into())
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "user",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Sets a user's e-mail address (empty: none).
    pub fn set_user_email(&self, name: &str, email: &str) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE users SET email = ?2 WHERE name = ?1",
            params![name, email],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "user",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT name, superuser, active, created, groups, email FROM users ORDER BY name",
        )?;
        let rows = statement.query_map([], user_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, superuser, active, created, groups, email FROM users WHERE name = ?1",
                [name],
                user_row,
            )
            .optional()?)
    }

    /// Records `secret` as a token of `user`. Adding a token that is already there is a no-op,
    /// so the master can register its admin token on every start.
    pub fn add_token(&self, user: &str, secret: &str, description: &str) -> Result<(), StoreError> {
        if self.user(user)?.is_none() {
            return Err(StoreError::NotFound {
                kind: "user",
                name: user.to_owned(),
            });
        }
        let digest = digest(secret);
        let owner: Option<String> = self
            .conn
            .query_row(
                "SELECT user FROM tokens WHERE digest = ?1",
                [&digest],
                |r| r.get(0),
            )
            .optional()?;
        match owner {
            Some(owner) if owner == user => Ok(()),
            Some(_) => Err(StoreError::Conflict(
                "that token already belongs to another user".into(),
            )),
            None => {
                self.conn.execute(
                    "INSERT INTO tokens (digest, user, description, created) VALUES (?1, ?2, ?3, ?4)",
                    params![digest, user, description, now_ms()],
                )?;
                Ok(())
            }
        }
    }

    /// The tokens of `user`, oldest first.
    pub fn tokens(&self, user: &str) -> Result<Vec<TokenInfo>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT user, description, created, last_used FROM tokens
             WHERE user = ?1 ORDER BY created, rowid",
        )?;
        let rows = statement.query_map([user], |row| {
            Ok(TokenInfo {
                user: row.get(0)?,
                description: row.get(1)?,
                created: row.get(2)?,
                last_used: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The active user a token belongs to, if any; notes that the token was used.
    pub fn user_for_token(&self, secret: &str) -> Result<Option<User>, StoreError> {
        let digest = digest(secret);
        let found: Option<(User, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT u.name, u.superuser, u.active, u.created, u.groups, u.email, t.last_used
                 FROM tokens t JOIN users u ON u.name = t.user WHERE t.digest = ?1",
                [&digest],
                |row| Ok((user_row(row)?, row.get(6)?)),
            )
            .optional()?;
        let Some((user, last_used)) = found else {
            return Ok(None);
        };
        if !user.active {
            return Ok(None);
        }
        let now = now_ms();
        if last_used.is_none_or(|at| now - at >= LAST_USED_GRANULARITY_MS) {
            self.conn.execute(
                "UPDATE tokens SET last_used = ?1 WHERE digest = ?2",
                params![now, digest],
            )?;
        }
        Ok(Some(user))
    }
}
