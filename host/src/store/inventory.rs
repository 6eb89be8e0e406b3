//! Device types, workers and devices.

use rusqlite::{params, OptionalExtension, Row};

use super::model::*;
use super::{now_ms, Store, StoreError};

const WORKER_COLUMNS: &str =
    "hostname, description, state, health, job_limit, last_seen, version, created";
const DEVICE_COLUMNS: &str =
    "hostname, device_type, worker, dictionary, tags, description, state, health, current_job,
     power_state, power_checked";

/// Reads a text-enum column, treating an unknown value as corruption.
pub(super) fn enum_column<T>(
    row: &Row<'_>,
    index: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?}").into(),
        )
    })
}

/// Reads a JSON list of strings.
pub(super) fn string_list_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

const DEVICE_TYPE_COLUMNS: &str =
    "name, description, health_frequency, health_denominator, health_disabled";

fn device_type_row(row: &Row<'_>) -> rusqlite::Result<DeviceType> {
    Ok(DeviceType {
        name: row.get(0)?,
        description: row.get(1)?,
        health_frequency: row.get(2)?,
        health_denominator: enum_column(row, 3, HealthDenominator::parse)?,
        health_disabled: row.get(4)?,
    })
}

fn worker_row(row: &Row<'_>) -> rusqlite::Result<Worker> {
    Ok(Worker {
        hostname: row.get(0)?,
        description: row.get(1)?,
        state: enum_column(row, 2, WorkerState::parse)?,
        health: enum_column(row, 3, WorkerHealth::parse)?,
        job_limit: row.get(4)?,
        last_seen: row.get(5)?,
        version: row.get(6)?,
        created: row.get(7)?,
    })
}

fn device_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        hostname: row.get(0)?,
        device_type: row.get(1)?,
        worker: row.get(2)?,
        dictionary: row.get(3)?,
        tags: string_list_column(row, 4)?,
        description: row.get(5)?,
        state: enum_column(row, 6, DeviceState::parse)?,
        health: enum_column(row, 7, DeviceHealth::parse)?,
        current_job: row.get(8)?,
        power_state: row.get(9)?,
        power_checked: row.get(10)?,
    })
}

pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

impl Store {
    /// Registers a device type.
    pub fn add_device_type(&self, name: &str, description: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO device_types (name, description, created) VALUES (?1, ?2, ?3)",
                params![name, description, now_ms()],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Exists {
                    kind: "device type",
                    name: name.to_owned(),
                },
                false => e.into(),
            })?;
        Ok(())
    }

    /// Every device type, by name.
    pub fn device_types(&self) -> Result<Vec<DeviceType>, StoreError> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {DEVICE_TYPE_COLUMNS} FROM device_types ORDER BY name"
        ))?;
        let rows = statement.query_map([], device_type_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One device type.
    pub fn device_type(&self, name: &str) -> Result<Option<DeviceType>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {DEVICE_TYPE_COLUMNS} FROM device_types WHERE name = ?1"),
                [name],
                device_type_row,
            )
            .optional()?)
    }

    /// Changes a device type's description and health-check schedule (each when given).
    pub fn update_device_type(
        &self,
        name: &str,
        description: Option<&str>,
        health_frequency: Option<u32>,
        health_denominator: Option<HealthDenominator>,
        health_disabled: Option<bool>,
    ) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE device_types SET description = coalesce(?2, description),
                                     health_frequency = coalesce(?3, health_frequency),
                                     health_denominator = coalesce(?4, health_denominator),
                                     health_disabled = coalesce(?5, health_disabled)
             WHERE name = ?1",
            params![
                name,
                description,
                health_frequency,
                health_denominator.map(HealthDenominator::as_str),
                health_disabled
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "device type",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Registers a worker (offline until its slave says HELLO).
    pub fn add_worker(
        &self,
        hostname: &str,
        description: &str,
        job_limit: u32,
    ) -> Result<(), StoreError> {
        let inserted = self.conn.execute(
            "INSERT INTO workers (hostname, description, job_limit, created)
             VALUES (?1, ?2, ?3, ?4)",
            params![hostname, description, job_limit, now_ms()],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                // A worker its slave's HELLO created is the admin's now: adding it keeps it
                // (never forgotten) with the given settings. One an admin added is taken.
                let adopted = self.conn.execute(
                    "UPDATE workers SET self_registered = 0, description = ?2, job_limit = ?3
                     WHERE hostname = ?1 AND self_registered = 1",
                    params![hostname, description, job_limit],
                )?;
                if adopted == 1 {
                    Ok(())
                } else {
                    Err(StoreError::Exists {
                        kind: "worker",
                        name: hostname.to_owned(),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every worker, by name.
    pub fn workers(&self) -> Result<Vec<Worker>, StoreError> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {WORKER_COLUMNS} FROM workers ORDER BY hostname"
        ))?;
        let rows = statement.query_map([], worker_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One worker.
    pub fn worker(&self, hostname: &str) -> Result<Option<Worker>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {WORKER_COLUMNS} FROM workers WHERE hostname = ?1"),
                [hostname],
                worker_row,
            )
            .optional()?)
    }

    /// Records that a slave spoke: the worker is online and seen now. An unknown worker is
    /// created (marked as registered by its slave) only if `register` allows it; otherwise
    /// the answer is [`WorkerSeen::Unknown`] and nothing is written.
    pub fn worker_seen(
        &self,
        hostname: &str,
        version: Option<&str>,
        register: bool,
    ) -> Result<WorkerSeen, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let before: Option<String> = tx
            .query_row(
                "SELECT state FROM workers WHERE hostname = ?1",
                [hostname],
                |row| row.get(0),
            )
            .optional()?;
        let now = now_ms();
        match &before {
            None if !register => return Ok(WorkerSeen::Unknown),
            None => {
                tx.execute(
                    "INSERT INTO workers (hostname, description, state, last_seen, version, created,
                                          self_registered)
                     VALUES (?1, 'created when its slave connected', 'online', ?2, ?3, ?2, 1)",
                    params![hostname, now, version],
                )?;
            }
            Some(_) => {
                tx.execute(
                    "UPDATE workers SET state = 'online', last_seen = ?2,
                         version = COALESCE(?3, version)
                     WHERE hostname = ?1",
                    params![hostname, now, version],
                )?;
            }
        }
        let old = before.as_deref().unwrap_or("offline");
        Self::record(
            &tx,
            "worker",
            hostname,
            "state",
            old,
            "online",
            "slave spoke",
        )?;
        tx.commit()?;
        Ok(if old == "online" {
            WorkerSeen::Online
        } else {
            WorkerSeen::CameOnline
        })
    }

    /// Deletes workers that their slave's HELLO created and that an admin never gave a
    /// device: offline, without devices or jobs, last seen before `before_ms`. Returns their
    /// names.
    pub fn forget_unused_workers(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let names: Vec<String> = {
            let mut statement = tx.prepare(
                "SELECT hostname FROM workers w
                 WHERE self_registered = 1 AND state = 'offline'
                   AND COALESCE(last_seen, created) < ?1
                   AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.worker = w.hostname)
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.worker = w.hostname)",
            )?;
            let rows = statement.query_map([before_ms], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for name in &names {
            tx.execute(
                "DELETE FROM history WHERE kind = 'worker' AND object = ?1",
                [name],
            )?;
            tx.execute("DELETE FROM workers WHERE hostname = ?1", [name])?;
        }
        tx.commit()?;
        Ok(names)
    }

    /// Marks a worker offline (missed pings).
    pub fn set_worker_offline(&self, hostname: &str, reason: &str) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let changed = tx.execute(
            "UPDATE workers SET state = 'offline' WHERE hostname = ?1 AND state = 'online'",
            [hostname],
        )?;
        if changed > 0 {
            Self::record(
                &tx, "worker", hostname, "state", "online", "offline", reason,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks every worker offline: a starting master has heard from nobody yet.
    pub fn mark_all_workers_offline(&self) -> Result<(), StoreError> {
        let online: Vec<String> = {
            let mut statement = self
                .conn
                .prepare("SELECT hostname FROM workers WHERE state = 'online'")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for hostname in online {
            self.set_worker_offline(&hostname, "master started")?;
        }
        Ok(())
    }

    /// Sets a worker's admin health.
    pub fn set_worker_health(
        &self,
        hostname: &str,
        health: WorkerHealth,
        reason: &str,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let old: String = tx
            .query_row(
                "SELECT health FROM workers WHERE hostname = ?1",
                [hostname],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "worker",
                name: hostname.to_owned(),
            })?;
        tx.execute(
            "UPDATE workers SET health = ?2 WHERE hostname = ?1",
            params![hostname, health.as_str()],
        )?;
        Self::record(
            &tx,
            "worker",
            hostname,
            "health",
            &old,
            health.as_str(),
            reason,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Registers a device. Its type and worker must exist.
    pub fn add_device(
        &self,
        hostname: &str,
        device_type: &str,
        worker: &str,
        dictionary: &str,
        tags: &[String],
        description: &str,
    ) -> Result<(), StoreError> {
        if self.device_type(device_type)?.is_none() {
            return Err(StoreError::NotFound {
                kind: "device type",
                name: device_type.to_owned(),
            });
        }
        if self.worker(worker)?.is_none() {
            return Err(StoreError::NotFound {
                kind: "worker",
                name: worker.to_owned(),
            });
        }
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT INTO devices (hostname, device_type, worker, dictionary, tags, description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hostname, device_type, worker, dictionary, tags, description],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Exists {
                    kind: "device",
                    name: hostname.to_owned(),
                },
                false => e.into(),
            })?;
        Ok(())
    }

    /// Every device, by hostname.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY hostname"
        ))?;
        let rows = statement.query_map([], device_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One device.
    pub fn device(&self, hostname: &str) -> Result<Option<Device>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hostname = ?1"),
                [hostname],
                device_row,
            )
            .optional()?)
    }

    fn existing_device(&self, hostname: &str) -> Result<Device, StoreError> {
        self.device(hostname)?.ok_or_else(|| StoreError::NotFound {
            kind: "device",
            name: hostname.to_owned(),
        })
    }

    /// Replaces a device's tags.
    pub fn set_device_tags(&self, hostname: &str, tags: &[String]) -> Result<(), StoreError> {
        self.existing_device(hostname)?;
        self.conn.execute(
            "UPDATE devices SET tags = ?2 WHERE hostname = ?1",
            params![
                hostname,
                serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
            ],
        )?;
        Ok(())
    }

    /// Records a device's power state as its power driver read it back.
    pub fn set_power_state(&self, hostname: &str, state: &str) -> Result<(), StoreError> {
        self.existing_device(hostname)?;
        self.conn.execute(
            "UPDATE devices SET power_state = ?2, power_checked = ?3 WHERE hostname = ?1",
            params![hostname, state, now_ms()],
        )?;
        Ok(())
    }

    /// Changes a device's worker or description (each when given).
    pub fn update_device(
        &self,
        hostname: &str,
        worker: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        self.existing_device(hostname)?;
        self.conn.execute(
            "UPDATE devices SET worker = coalesce(?2, worker),
                                description = coalesce(?3, description)
             WHERE hostname = ?1",
            params![hostname, worker, description],
        )?;
        Ok(())
    }

    /// Removes a device; its past jobs keep its name. Refused while a job holds it or waits
    /// for it by name (cancel those first, or retire the device to keep it on record).
    /// The removal is kept in the history with `reason`.
    pub fn delete_device(&self, hostname: &str, reason: &str) -> Result<(), StoreError> {
        let device = self.existing_device(hostname)?;
        let tx = self.conn.unchecked_transaction()?;
        let waiting: Vec<u64> = {
            let mut statement = tx.prepare(
                "SELECT id FROM jobs WHERE state != 'finished'
                 AND (actual_device = ?1 OR requested_device = ?1) ORDER BY id",
            )?;
            let rows = statement.query_map([hostname], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if device.current_job.is_some() || !waiting.is_empty() {
            let ids: Vec<String> = device
                .current_job
                .into_iter()
                .chain(waiting)
                .map(|id| id.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(StoreError::Conflict(format!(
                "device {hostname} has unfinished jobs ({}): cancel them first, or retire the \
                 device instead",
                ids.join(", ")
            )));
        }
        tx.execute("DELETE FROM devices WHERE hostname = ?1", [hostname])?;
        Self::record(
            &tx, "device", hostname, "device", "present", "deleted", reason,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a worker's description or job limit (each when given).
    pub fn update_worker(
        &self,
        hostname: &str,
        description: Option<&str>,
        job_limit: Option<u32>,
    ) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE workers SET description = coalesce(?2, description),
                                job_limit = coalesce(?3, job_limit)
             WHERE hostname = ?1",
            params![hostname, description, job_limit],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "worker",
                name: hostname.to_owned(),
            });
        }
        Ok(())
    }

    /// Replaces a device's dictionary.
    pub fn set_dictionary(&self, hostname: &str, dictionary: &str) -> Result<(), StoreError> {
        self.existing_device(hostname)?;
        self.conn.execute(
            "UPDATE devices SET dictionary = ?2 WHERE hostname = ?1",
            params![hostname, dictionary],
        )?;
        Ok(())
    }

    /// Sets a device's health (an admin's maintenance, a health check's verdict).
    pub fn set_device_health(
        &self,
        hostname: &str,
        health: DeviceHealth,
        reason: &str,
    ) -> Result<(), StoreError> {
        let device = self.existing_device(hostname)?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE devices SET health = ?2 WHERE hostname = ?1",
            params![hostname, health.as_str()],
        )?;
        Self::record(
            &tx,
            "device",
            hostname,
            "health",
            device.health.as_str(),
            health.as_str(),
            reason,
        )?;
        if matches!(
            health,
            DeviceHealth::Bad | DeviceHealth::Maintenance | DeviceHealth::Retired
        ) {
            // A queued health check would otherwise wait for the device and run an old
            // definition whenever it comes back; it gets a fresh one then.
            let queued: Vec<u64> = {
                let mut statement = tx.prepare(
                    "SELECT id FROM jobs WHERE health_check = 1 AND state = 'submitted'
                     AND requested_device = ?1",
                )?;
                let ids = statement.query_map([hostname], |row| row.get(0))?;
                ids.collect::<Result<_, _>>()?
            };
            for id in queued {
                tx.execute(
                    "UPDATE jobs SET state = 'finished', health = 'canceled', end_time = ?2,
                         failure_comment = ?3 WHERE id = ?1",
                    params![
                        id,
                        now_ms(),
                        format!("{hostname} was taken out of service ({health})")
                    ],
                )?;
                Self::record(
                    &tx,
                    "job",
                    &id.to_string(),
                    "state",
                    "submitted",
                    "finished",
                    reason,
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
