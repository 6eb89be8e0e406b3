//! Jobs: submission, the scheduler's snapshot, the state machine, log progress and results.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension, Row};

use super::inventory::{enum_column, string_list_column};
use super::model::*;
use super::{now_ms, Store, StoreError};
use crate::scheduler;

const JOB_COLUMNS: &str = "id, name, definition, device_type, requested_device, tags, context,
    priority, submitter, state, health, actual_device, worker, submit_time, start_time,
    end_time, failure_comment, log_bytes, log_lines, job_result, error_type, error_msg,
    health_check, visibility";

/// A job as submitted, already validated.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// `job_name`.
    pub name: String,
    /// Who may see it (its `visibility:`, read where the definition was parsed).
    pub visibility: Visibility,
    /// The definition text.
    pub definition: String,
    /// `device_type`.
    pub device_type: String,
    /// A device it must run on.
    pub requested_device: Option<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `context`.
    pub context: serde_json::Value,
    /// 0..=100.
    pub priority: u8,
    /// Who submitted it.
    pub submitter: String,
    /// A health check: its outcome sets the (pinned) device's health.
    pub health_check: bool,
}

/// One test result read from a log line.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The suite.
    pub suite: String,
    /// The case.
    pub name: String,
    /// pass/fail/skip/unknown.
    pub result: String,
    /// The measurement, as logged.
    pub measurement: Option<String>,
    /// Its units.
    pub units: Option<String>,
    /// The 0-based log line.
    pub log_line: u64,
    /// The whole entry.
    pub data: serde_json::Value,
}

/// What one appended piece of a job's log brings, committed together so the log length and
/// the results it carried can never disagree.
#[derive(Debug, Clone, Default)]
pub struct JobLogBatch {
    /// The log's length in bytes after the batch.
    pub bytes: u64,
    /// The log's length in lines after the batch.
    pub lines: u64,
    /// Results on the batch's lines.
    pub results: Vec<NewResult>,
    /// The `lava`/`job` result, if the batch carried it: (result, error type, error message).
    pub job_result: Option<(String, Option<String>, Option<String>)>,
}

/// The job's visibility; jobs stored before it had a column are read from their definition.
fn visibility_column(
    row: &Row<'_>,
    column: usize,
    definition: usize,
) -> rusqlite::Result<Visibility> {
    let stored: Option<String> = row.get(column)?;
    Ok(
        match stored.and_then(|text| serde_json::from_str(&text).ok()) {
            Some(visibility) => visibility,
            None => Visibility::of_definition(&row.get::<_, String>(definition)?),
        },
    )
}

fn job_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let context: String = row.get(6)?;
    Ok(Job {
        id: row.get(0)?,
        name: row.get(1)?,
        definition: row.get(2)?,
        device_type: row.get(3)?,
        requested_device: row.get(4)?,
        tags: string_list_column(row, 5)?,
        context: serde_json::from_str(&context).unwrap_or(serde_json::Value::Null),
        priority: row.get(7)?,
        submitter: row.get(8)?,
        state: enum_column(row, 9, JobState::parse)?,
        health: enum_column(row, 10, JobHealth::parse)?,
        actual_device: row.get(11)?,
        worker: row.get(12)?,
        submit_time: row.get(13)?,
        start_time: row.get(14)?,
        end_time: row.get(15)?,
        failure_comment: row.get(16)?,
        log_bytes: row.get(17)?,
        log_lines: row.get(18)?,
        job_result: row.get(19)?,
        error_type: row.get(20)?,
        error_msg: row.get(21)?,
        health_check: row.get(22)?,
        visibility: visibility_column(row, 23, 2)?,
    })
}

impl Store {
    /// Makes the next job id greater than `id` (a log directory that already exists), so a
    /// new database never hands out an id whose log is there.
    pub fn keep_job_ids_above(&self, id: u64) -> Result<(), StoreError> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let updated = self.conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'jobs'",
            [id],
        )?;
        if updated == 0 && id > 0 {
            self.conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?1)",
                [id],
            )?;
        }
        Ok(())
    }

    /// Queues a job; returns its id.
    pub fn submit(&self, job: &NewJob) -> Result<u64, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs (name, definition, device_type, requested_device, tags, context,
                               priority, submitter, state, health, submit_time, health_check,
                               visibility)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'submitted', 'unknown', ?9, ?10, ?11)",
            params![
                job.name,
                job.definition,
                job.device_type,
                job.requested_device,
                serde_json::to_string(&job.tags).unwrap_or_else(|_| "[]".into()),
                job.context.to_string(),
                job.priority,
                job.submitter,
                now_ms(),
                job.health_check,
                serde_json::to_string(&job.visibility).unwrap_or_else(|_| "\"personal\"".into())
            ],
        )?;
        let id = tx.last_insert_rowid() as u64;
        Self::record(
            &tx,
            "job",
            &id.to_string(),
            "state",
            "",
            "submitted",
            "submitted",
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// One job.
    pub fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()?)
    }

    fn existing_job(&self, id: u64) -> Result<Job, StoreError> {
        self.job(id)?.ok_or_else(|| StoreError::NotFound {
            kind: "job",
            name: id.to_string(),
        })
    }

    /// Jobs, newest first, optionally only those in `state`, at most `limit`.
    pub fn jobs(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>, StoreError> {
        self.jobs_filtered(state, None, 0, limit)
    }

    /// Jobs in `state` with `health` (each when given), newest first, skipping `offset`.
    pub fn jobs_filtered(
        &self,
        state: Option<JobState>,
        health: Option<JobHealth>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR health = ?2)
             ORDER BY id DESC LIMIT ?3 OFFSET ?4"
        ))?;
        let rows = statement.query_map(
            params![
                state.map(JobState::as_str),
                health.map(JobHealth::as_str),
                limit,
                offset
            ],
            job_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn jobs_where(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Job>, StoreError> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {condition} ORDER BY id"
        ))?;
        let rows = statement.query_map(args, job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Scheduled jobs whose worker is online: START goes (again) to each until it confirms.
    pub fn jobs_to_start(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_where(
            "state = 'scheduled' AND worker IN (SELECT hostname FROM workers WHERE state = 'online')",
            &[],
        )
    }

    /// Canceling jobs whose worker is online: CANCEL goes (again) to each until it ends.
    pub fn jobs_to_cancel(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_where(
            "state = 'canceling' AND worker IN (SELECT hostname FROM workers WHERE state = 'online')",
            &[],
        )
    }

    /// Jobs that run (or are being canceled) and have a start time: the ones that can be
    /// overdue.
    pub fn started_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_where(
            "state IN ('running', 'canceling') AND start_time IS NOT NULL",
            &[],
        )
    }

    /// Jobs a worker's slave holds or should hold (scheduled, running or canceling there).
    pub fn active_jobs_on(&self, worker: &str) -> Result<Vec<Job>, StoreError> {
        self.jobs_where(
            "state IN ('running', 'canceling') AND worker = ?1",
            &[&worker],
        )
    }

    /// What the scheduler needs: usable workers, devices, the queue. Which devices need a
    /// health check depends on the master's health-check files: the caller marks them.
    pub fn snapshot(&self, seed: u64) -> Result<scheduler::Snapshot, StoreError> {
        let devices = self.devices()?;
        let workers = self
            .workers()?
            .into_iter()
            .map(|w| {
                let busy = devices
                    .iter()
                    .filter(|d| d.worker.as_deref() == Some(w.hostname.as_str()))
                    .filter(|d| d.state != DeviceState::Idle)
                    .count() as u32;
                scheduler::WorkerView {
                    usable: w.state == WorkerState::Online && w.health == WorkerHealth::Active,
                    name: w.hostname,
                    job_limit: w.job_limit,
                    busy,
                }
            })
            .collect();
        // A device without a dictionary cannot be rendered for a job: it takes none.
        let devices = devices
            .into_iter()
            .filter(|d| !d.dictionary.trim().is_empty())
            .map(|d| scheduler::DeviceView {
                hostname: d.hostname,
                device_type: d.device_type,
                worker: d.worker,
                state: d.state.into(),
                health: d.health.into(),
                tags: d.tags.into_iter().collect(),
                needs_health_check: false,
            })
            .collect();
        // Only the columns the scheduler reads: the queue can be tens of thousands of jobs
        // and their definitions are not needed here.
        let mut statement = self.conn.prepare_cached(
            "SELECT id, device_type, priority, submit_time, requested_device, tags, health_check
             FROM jobs WHERE state = 'submitted'",
        )?;
        let queue = statement
            .query_map([], |row| {
                let tags: String = row.get(5)?;
                Ok(scheduler::QueuedJob {
                    id: row.get(0)?,
                    device_type: row.get(1)?,
                    priority: row.get(2)?,
                    submit_time: row.get::<_, i64>(3)?.max(0) as u64,
                    requested_device: row.get(4)?,
                    requested_worker: None,
                    tags: serde_json::from_str::<Vec<String>>(&tags)
                        .unwrap_or_default()
                        .into_iter()
                        .collect::<BTreeSet<_>>(),
                    health_check: row.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(scheduler::Snapshot {
            workers,
            devices,
            queue,
            seed,
        })
    }

    /// Gives a queued job an idle device. False if either changed since the snapshot.
    pub fn assign(&self, job: u64, device: &str) -> Result<bool, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let worker: Option<Option<String>> = tx
            .query_row(
                "SELECT worker FROM devices WHERE hostname = ?1 AND state = 'idle'",
                [device],
                |row| row.get(0),
            )
            .optional()?;
        let Some(Some(worker)) = worker else {
            return Ok(false);
        };
        let changed = tx.execute(
            "UPDATE jobs SET state = 'scheduled', actual_device = ?2, worker = ?3
             WHERE id = ?1 AND state = 'submitted'",
            params![job, device, worker],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE devices SET state = 'reserved', current_job = ?2 WHERE hostname = ?1",
            params![device, job],
        )?;
        let reason = format!("job {job}");
        Self::record(
            &tx,
            "job",
            &job.to_string(),
            "state",
            "submitted",
            "scheduled",
            device,
        )?;
        Self::record(&tx, "device", device, "state", "idle", "reserved", &reason)?;
        tx.commit()?;
        Ok(true)
    }

    /// The slave confirmed the job runs. False if it was not waiting for that (a duplicate
    /// START_OK, or an answer to STATUS).
    pub fn mark_running(&self, job: u64) -> Result<bool, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let changed = tx.execute(
            "UPDATE jobs SET state = 'running', start_time = ?2 WHERE id = ?1 AND state = 'scheduled'",
            params![job, now_ms()],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        let reason = format!("job {job}");
        tx.execute(
            "UPDATE devices SET state = 'running' WHERE current_job = ?1",
            [job],
        )?;
        let device: Option<String> = tx.query_row(
            "SELECT actual_device FROM jobs WHERE id = ?1",
            [job],
            |row| row.get(0),
        )?;
        Self::record(
            &tx,
            "job",
            &job.to_string(),
            "state",
            "scheduled",
            "running",
            "START_OK",
        )?;
        if let Some(device) = device {
            Self::record(
                &tx, "device", &device, "state", "reserved", "running", &reason,
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// A user asked to cancel: a queued job ends at once, a started one goes to canceling
    /// (CANCEL follows). Returns the job's state after the request.
    pub fn request_cancel(&self, id: u64) -> Result<JobState, StoreError> {
        let job = self.existing_job(id)?;
        match job.state {
            JobState::Submitted => {
                self.finish(id, JobHealth::Canceled, "canceled before it started")?;
                Ok(JobState::Finished)
            }
            JobState::Scheduled | JobState::Running => {
                let tx = self.conn.unchecked_transaction()?;
                tx.execute("UPDATE jobs SET state = 'canceling' WHERE id = ?1", [id])?;
                Self::record(
                    &tx,
                    "job",
                    &id.to_string(),
                    "state",
                    job.state.as_str(),
                    "canceling",
                    "cancel requested",
                )?;
                tx.commit()?;
                Ok(JobState::Canceling)
            }
            state => Ok(state),
        }
    }

    /// A health check's outcome decides its device's health, as LAVA does: Complete makes it
    /// Good (a Looping device stays Looping and is checked again), a failure Bad (it gets no
    /// jobs until an admin acts), a cancel Unknown (checked again). Devices an admin took
    /// out of service meanwhile (maintenance, retired) stay so.
    fn health_check_verdict(
        tx: &rusqlite::Connection,
        device: &str,
        job: u64,
        health: JobHealth,
    ) -> Result<(), StoreError> {
        let old: Option<String> = tx
            .query_row(
                "SELECT health FROM devices WHERE hostname = ?1",
                [device],
                |row| row.get(0),
            )
            .optional()?;
        let Some(old) = old else {
            return Ok(());
        };
        if old == DeviceHealth::Maintenance.as_str() || old == DeviceHealth::Retired.as_str() {
            return Ok(());
        }
        let new = match health {
            JobHealth::Complete if old == DeviceHealth::Looping.as_str() => DeviceHealth::Looping,
            JobHealth::Complete => DeviceHealth::Good,
            JobHealth::Canceled | JobHealth::Unknown => DeviceHealth::Unknown,
            JobHealth::Incomplete => DeviceHealth::Bad,
        };
        tx.execute(
            "UPDATE devices SET health = ?2 WHERE hostname = ?1",
            params![device, new.as_str()],
        )?;
        Self::record(
            tx,
            "device",
            device,
            "health",
            &old,
            new.as_str(),
            &format!("health check job {job}: {health}"),
        )
    }

    /// Whether `device`'s periodic health check is due under `schedule` at `now` (ms): the
    /// frequency counts from its last health check or the last change of its health by
    /// anyone (an admin trusting a device restarts the count), whichever is later.
    pub fn health_check_due(
        &self,
        device: &str,
        schedule: &DeviceType,
        now: i64,
    ) -> Result<bool, StoreError> {
        let last_check: Option<i64> = self.conn.query_row(
            "SELECT max(end_time) FROM jobs
             WHERE health_check = 1 AND actual_device = ?1 AND state = 'finished'",
            [device],
            |row| row.get(0),
        )?;
        let last_change: Option<i64> = self.conn.query_row(
            "SELECT max(at) FROM history WHERE kind = 'device' AND object = ?1 AND field = 'health'",
            [device],
            |row| row.get(0),
        )?;
        let since = last_check.max(last_change).unwrap_or(0);
        let frequency = i64::from(schedule.health_frequency.max(1));
        Ok(match schedule.health_denominator {
            HealthDenominator::Hours => now - since >= frequency * 3_600_000,
            HealthDenominator::Jobs => {
                let jobs: i64 = self.conn.query_row(
                    "SELECT count(*) FROM jobs
                     WHERE health_check = 0 AND actual_device = ?1 AND state = 'finished'
                       AND end_time > ?2",
                    params![device, since],
                    |row| row.get(0),
                )?;
                jobs >= frequency
            }
        })
    }

    /// How many jobs are in each (state, health, device type), for the master's metrics.
    pub fn job_counts(&self) -> Result<Vec<(String, String, String, u64)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT state, health, device_type, count(*) FROM jobs
             GROUP BY state, health, device_type ORDER BY state, health, device_type",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Active (not finished) health-check jobs, by the device they are pinned to.
    pub fn active_health_checks(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT requested_device FROM jobs
             WHERE health_check = 1 AND state != 'finished' AND requested_device IS NOT NULL",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ends a job and frees its device. False if it had already ended (a duplicate END).
    pub fn finish(&self, id: u64, health: JobHealth, comment: &str) -> Result<bool, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let before: Option<(String, Option<String>, bool)> = tx
            .query_row(
                "SELECT state, actual_device, health_check FROM jobs WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((state, device, health_check)) = before else {
            return Err(StoreError::NotFound {
                kind: "job",
                name: id.to_string(),
            });
        };
        if state == JobState::Finished.as_str() {
            return Ok(false);
        }
        tx.execute(
            "UPDATE jobs SET state = 'finished', health = ?2, end_time = ?3,
                 failure_comment = CASE WHEN ?4 = '' THEN failure_comment ELSE ?4 END
             WHERE id = ?1",
            params![id, health.as_str(), now_ms(), comment],
        )?;
        let name = id.to_string();
        Self::record(&tx, "job", &name, "state", &state, "finished", comment)?;
        Self::record(
            &tx,
            "job",
            &name,
            "health",
            "unknown",
            health.as_str(),
            comment,
        )?;
        if let Some(device) = device {
            let old: Option<String> = tx
                .query_row(
                    "SELECT state FROM devices WHERE hostname = ?1 AND current_job = ?2",
                    params![device, id],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(old) = old {
                tx.execute(
                    "UPDATE devices SET state = 'idle', current_job = NULL WHERE hostname = ?1",
                    [&device],
                )?;
                Self::record(
                    &tx,
                    "device",
                    &device,
                    "state",
                    &old,
                    "idle",
                    &format!("job {id} ended"),
                )?;
            }
            if health_check {
                Self::health_check_verdict(&tx, &device, id, health)?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Commits a piece of a job's log: its new length and the results it carried.
    pub fn commit_log(&self, id: u64, batch: &JobLogBatch) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let changed = tx.execute(
            "UPDATE jobs SET log_bytes = ?2, log_lines = ?3 WHERE id = ?1",
            params![id, batch.bytes, batch.lines],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "job",
                name: id.to_string(),
            });
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO results (job_id, suite, name, result, measurement, units, log_line, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in &batch.results {
                insert.execute(params![
                    id,
                    r.suite,
                    r.name,
                    r.result,
                    r.measurement,
                    r.units,
                    r.log_line,
                    r.data.to_string()
                ])?;
            }
        }
        if let Some((result, error_type, error_msg)) = &batch.job_result {
            tx.execute(
                "UPDATE jobs SET job_result = ?2, error_type = ?3, error_msg = ?4 WHERE id = ?1",
                params![id, result, error_type, error_msg],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A job's results in log order.
    pub fn results(&self, id: u64) -> Result<Vec<TestResult>, StoreError> {
        self.existing_job(id)?;
        let mut statement = self.conn.prepare(
            "SELECT job_id, suite, name, result, measurement, units, log_line, data
             FROM results WHERE job_id = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([id], |row| {
            let data: String = row.get(7)?;
            Ok(TestResult {
                job: row.get(0)?,
                suite: row.get(1)?,
                name: row.get(2)?,
                result: row.get(3)?,
                measurement: row.get(4)?,
                units: row.get(5)?,
                log_line: row.get(6)?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
