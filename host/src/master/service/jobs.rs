//! Jobs: submission, the queue, cancelling, logs and results.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Serialize;

use super::{Caller, ErrorKind, ServiceError, ServiceResult};
use crate::job::{parse_job, JobError, JobProblem};
use crate::master::submit::{submit, SubmitError};
use crate::store::{HistoryEntry, Job, JobHealth, JobState, StoreError, TestResult};

/// The largest piece of a log one request returns.
pub const LOG_CHUNK: u64 = 4 * 1024 * 1024;

/// Which jobs a list shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs with this health.
    pub health: Option<JobHealth>,
    /// How many to skip.
    pub offset: u32,
    /// How many at most.
    pub limit: u32,
}

/// A byte range of a job's log, as the REST API and the web page poll it.
#[derive(Debug, Clone, Serialize)]
pub struct LogChunk {
    /// First byte returned.
    pub start: u64,
    /// One past the last byte returned (the next request's offset).
    pub end: u64,
    /// Bytes the master holds so far.
    pub size: u64,
    /// The bytes (YAML lines).
    pub text: String,
    /// The job's state, so a follower knows when to stop.
    pub state: JobState,
    /// The job's health.
    pub health: JobHealth,
}

/// A range of a job's log lines, as LAVA's `scheduler.jobs.logs` returns them.
#[derive(Debug, Clone)]
pub struct LogLines {
    /// The job has finished: no more lines will come.
    pub finished: bool,
    /// The lines, YAML text.
    pub text: String,
}

fn not_found_job(id: u64) -> ServiceError {
    StoreError::NotFound {
        kind: "job",
        name: id.to_string(),
    }
    .into()
}

impl super::Service {
    /// Jobs matching `filter`, newest first (all of them, whoever may see them: for the
    /// master's own use; callers get [`Self::jobs_for`]).
    pub fn jobs(&self, filter: &JobFilter) -> ServiceResult<Vec<Job>> {
        Ok(self
            .store()?
            .jobs_filtered(filter.state, filter.health, filter.offset, filter.limit)?)
    }

    /// The jobs matching `filter` that `caller` may see (their `visibility:`), newest first;
    /// `offset` and `limit` count visible jobs only.
    pub fn jobs_for(&self, caller: &Caller, filter: &JobFilter) -> ServiceResult<Vec<Job>> {
        if caller.is_superuser() {
            return self.jobs(filter);
        }
        let store = self.store()?;
        let user = caller.user();
        let batch = filter.limit.clamp(100, 10_000);
        let (mut skipped, mut raw_offset, mut visible) = (0u32, 0u32, Vec::new());
        loop {
            let page = store.jobs_filtered(filter.state, filter.health, raw_offset, batch)?;
            let exhausted = page.len() < batch as usize;
            raw_offset = raw_offset.saturating_add(page.len() as u32);
            for job in page {
                if !job.visibility.allows(user, &job.submitter) {
                    continue;
                }
                if skipped < filter.offset {
                    skipped += 1;
                } else if visible.len() < filter.limit as usize {
                    visible.push(job);
                }
            }
            if exhausted || visible.len() >= filter.limit as usize {
                return Ok(visible);
            }
        }
    }

    /// One job, whoever may see it (for the master's own use).
    pub fn job(&self, id: u64) -> ServiceResult<Job> {
        self.store()?.job(id)?.ok_or_else(|| not_found_job(id))
    }

    /// One job, if `caller` may see it; a job it may not see is "not found", as LAVA
    /// answers, so its existence is not told either.
    pub fn job_for(&self, caller: &Caller, id: u64) -> ServiceResult<Job> {
        let job = self.job(id)?;
        if !job.visibility.allows(caller.user(), &job.submitter) {
            return Err(not_found_job(id));
        }
        Ok(job)
    }

    /// A job's definition as `caller` may see it: whole for its submitter and superusers;
    /// for anyone else the values of its `secrets:` are masked (LAVA accepts secrets in
    /// public jobs; they must still not be published).
    pub fn definition_for(&self, caller: &Caller, job: &Job) -> String {
        let trusted = match caller {
            Caller::User(user) => user.superuser || user.name == job.submitter,
            Caller::Anonymous => false,
        };
        if trusted {
            return job.definition.clone();
        }
        crate::job::secrets::mask_definition(&job.definition)
    }

    /// One job's state and health history.
    pub fn job_history(&self, caller: &Caller, id: u64) -> ServiceResult<Vec<HistoryEntry>> {
        self.job_for(caller, id)?;
        Ok(self.store()?.history("job", &id.to_string())?)
    }

    /// Checks a definition as submission would, without queueing it.
    pub fn validate(&self, text: &str) -> Result<(), Vec<JobProblem>> {
        match parse_job(text) {
            Ok(_) => Ok(()),
            Err(JobError::Invalid(problems)) => Err(problems),
            Err(other) => Err(vec![JobProblem {
                path: String::new(),
                line: None,
                column: None,
                message: other.to_string(),
            }]),
        }
    }

    /// Validates and queues a job for the caller; `device` pins it to one device.
    pub fn submit(&self, caller: &Caller, text: &str, device: Option<&str>) -> ServiceResult<u64> {
        let user = caller.require_user()?;
        let id = {
            let store = self.store()?;
            submit(&store, text, &user.name, device).map_err(|e| match e {
                SubmitError::Store(e) => ServiceError::from(e),
                other => ServiceError::bad_request(other.to_string()),
            })?
        };
        self.reschedule();
        Ok(id)
    }

    /// Queues a job again with the same definition (and device, if it was pinned).
    pub fn resubmit(&self, caller: &Caller, id: u64) -> ServiceResult<u64> {
        let job = self.job_for(caller, id)?;
        if self.definition_for(caller, &job) != job.definition {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!(
                    "job {id} carries secrets: only {} or a superuser may resubmit it",
                    job.submitter
                ),
            ));
        }
        self.submit(caller, &job.definition, job.requested_device.as_deref())
    }

    /// Cancels a job: its submitter or a superuser may.
    pub fn cancel(&self, caller: &Caller, id: u64) -> ServiceResult<JobState> {
        let user = caller.require_user()?;
        let job = self.job(id)?;
        if !user.superuser && job.submitter != user.name {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!(
                    "job {id} was submitted by {}: only they or a superuser may cancel it",
                    job.submitter
                ),
            ));
        }
        let state = self.store()?.request_cancel(id)?;
        self.reschedule();
        Ok(state)
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.jobs_dir.join(id.to_string()).join("output.yaml")
    }

    /// Reads `range` of a job's committed log.
    fn read_log(&self, id: u64, start: u64, stop: u64) -> ServiceResult<Vec<u8>> {
        if stop <= start {
            return Ok(Vec::new());
        }
        let path = self.log_path(id);
        let io = |e: std::io::Error| ServiceError::internal(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(&path).map_err(io)?;
        let mut buffer = vec![0; (stop - start) as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut buffer))
            .map_err(io)?;
        Ok(buffer)
    }

    /// The log from byte `offset` on, at most [`LOG_CHUNK`] bytes, ending at a line end when
    /// cut (so no character is split); a single longer line comes whole.
    pub fn log_bytes(&self, caller: &Caller, id: u64, offset: u64) -> ServiceResult<LogChunk> {
        let job = self.job_for(caller, id)?;
        // Only what the database says is committed: bytes past it may be cut off after a crash.
        let size = job.log_bytes;
        let start = offset.min(size);
        let mut stop = size.min(start + LOG_CHUNK);
        let mut bytes = self.read_log(id, start, stop)?;
        if stop < size {
            match memchr::memrchr(b'\n', &bytes) {
                Some(i) => {
                    bytes.truncate(i + 1);
                    stop = start + bytes.len() as u64;
                }
                None => {
                    bytes = self.read_to_line_end(id, start, size)?;
                    stop = start + bytes.len() as u64;
                }
            }
        }
        Ok(LogChunk {
            start,
            end: stop,
            size,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            state: job.state,
            health: job.health,
        })
    }

    /// The bytes from `start` to the end of the line there (or `limit`).
    fn read_to_line_end(&self, id: u64, start: u64, limit: u64) -> ServiceResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = start;
        while at < limit {
            let piece = self.read_log(id, at, limit.min(at + LOG_CHUNK))?;
            if let Some(i) = memchr::memchr(b'\n', &piece) {
                out.extend_from_slice(&piece[..=i]);
                return Ok(out);
            }
            at += piece.len() as u64;
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// Log lines `start..end` (all from `start` when `end` is `None`), counted from 0.
    /// At most [`LOG_CHUNK`] bytes of whole lines are returned; `finished` is true only when
    /// the job has ended and nothing is left to read, since lavacli stops polling then.
    pub fn log_lines(
        &self,
        caller: &Caller,
        id: u64,
        start: u64,
        end: Option<u64>,
    ) -> ServiceResult<LogLines> {
        let job = self.job_for(caller, id)?;
        let committed = job.log_bytes;
        let path = self.log_path(id);
        let io = |e: std::io::Error| ServiceError::internal(format!("{}: {e}", path.display()));
        let (from, mut to) = {
            let mut indexes = self
                .line_indexes
                .lock()
                .map_err(|_| ServiceError::internal("log index lock poisoned"))?;
            indexes
                .range(id, &path, committed, start, end)
                .map_err(io)?
        };
        let mut bytes = self.read_log(id, from, to.min(from + LOG_CHUNK))?;
        if to > from + LOG_CHUNK {
            // Cut at the last whole line; the next call starts after it. A single line longer
            // than the piece comes whole, or the reader would never get past it.
            match memchr::memrchr(b'\n', &bytes) {
                Some(i) => bytes.truncate(i + 1),
                None => bytes = self.read_to_line_end(id, from, to)?,
            }
            to = from + bytes.len() as u64;
        }
        let everything = end.is_none() && to == committed;
        Ok(LogLines {
            finished: job.state == JobState::Finished && everything,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// A job's test results, in log order.
    pub fn results(&self, caller: &Caller, id: u64) -> ServiceResult<Vec<TestResult>> {
        self.job_for(caller, id)?;
        Ok(self.store()?.results(id)?)
    }
}
