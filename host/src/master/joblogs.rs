//! Job logs on the master's disk, each line stored exactly once.
//!
//! A job's log is `<data>/jobs/<id>/output.yaml`, a YAML list as LAVA keeps it. Its committed
//! length lives in the database ([`Store::commit_log`]) together with the results its lines
//! carried; bytes past that length (a write the master died in the middle of) are cut off
//! before the next append. Appends name the offset they start at, so a slave re-sending a
//! range the master already holds changes nothing, and one that skipped ahead is told where
//! to resume.
//!
//! A write that fails part-way (a full disk) is undone at once: the file is cut back to its
//! committed length, so the slave's re-send continues a whole log, and the job waits for
//! space ([`LogFaults`] says so in `/metrics`).

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memchr::memmem;

use crate::store::{JobLogBatch, NewResult, Store, StoreError};

/// What a log line must contain to be worth parsing for results.
const RESULTS_MARK: &[u8] = b"\"lvl\": \"results\"";

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum JobLogError {
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log file could not be written.
    #[error("job {job} log {path}: {source}")]
    Io {
        /// The job.
        job: u64,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Bytes the master now holds.
    pub stored: u64,
    /// The `lava`/`job` result the new lines carried: (result, error type, error message).
    pub job_result: Option<(String, Option<String>, Option<String>)>,
}

struct Tracked {
    bytes: u64,
    lines: u64,
}

/// Failed log appends, shared between the control loop that writes logs and the metrics
/// that report them.
#[derive(Debug, Default)]
pub struct LogFaults {
    failures: AtomicU64,
    waiting: Mutex<BTreeSet<u64>>,
}

impl LogFaults {
    /// Appends that failed since the master started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Jobs whose last append failed and that wait for their log to be written.
    pub fn waiting(&self) -> Vec<u64> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed append; true if the job was not already waiting.
    fn failed(&self, job: u64) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(job)
    }

    /// Records a good append; true if the job was waiting.
    fn recovered(&self, job: u64) -> bool {
        self.lock().remove(&job)
    }
}

/// The job logs, with each job's committed length cached.
pub struct JobLogs {
    dir: PathBuf,
    tracked: HashMap<u64, Tracked>,
    faults: Arc<LogFaults>,
}

impl JobLogs {
    /// Logs under `dir` (`<dir>/<id>/output.yaml`).
    pub fn new(dir: PathBuf) -> Self {
        Self::with_faults(dir, Arc::default())
    }

    /// Like [`JobLogs::new`], reporting failed appends to `faults`.
    pub fn with_faults(dir: PathBuf, faults: Arc<LogFaults>) -> Self {
        Self {
            dir,
            tracked: HashMap::new(),
            faults,
        }
    }

    /// The log file of a job.
    pub fn path(&self, job: u64) -> PathBuf {
        self.dir.join(job.to_string()).join("output.yaml")
    }

    /// Appends `data` (whole lines) that starts at byte `offset` of the job's log, skipping
    /// what is already held. A gap (offset beyond what is held) appends nothing.
    pub fn append(
        &mut self,
        store: &Store,
        job: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<Appended, JobLogError> {
        let held = self.held(store, job)?;
        let end = offset + data.len() as u64;
        if offset > held || end <= held {
            return Ok(Appended {
                stored: held,
                job_result: None,
            });
        }
        let fresh = &data[(held - offset) as usize..];
        self.write(store, job, fresh)
    }

    /// Appends whole lines at the end (LAVA's log socket, which has no offsets).
    pub fn append_at_end(
        &mut self,
        store: &Store,
        job: u64,
        data: &[u8],
    ) -> Result<Appended, JobLogError> {
        self.held(store, job)?;
        self.write(store, job, data)
    }

    /// Bytes of the job's log the master holds (from the database on first use, cutting
    /// off anything written past it).
    pub fn held(&mut self, store: &Store, job: u64) -> Result<u64, JobLogError> {
        if let Some(tracked) = self.tracked.get(&job) {
            return Ok(tracked.bytes);
        }
        let record = store.job(job)?.ok_or_else(|| StoreError::NotFound {
            kind: "job",
            name: job.to_string(),
        })?;
        let path = self.path(job);
        let io = |source| JobLogError::Io {
            job,
            path: path.clone(),
            source,
        };
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.len() > record.log_bytes {
                let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
                file.set_len(record.log_bytes).map_err(io)?;
            }
        }
        self.tracked.insert(
            job,
            Tracked {
                bytes: record.log_bytes,
                lines: record.log_lines,
            },
        );
        Ok(record.log_bytes)
    }

    /// Forgets a finished job's cached length.
    pub fn forget(&mut self, job: u64) {
        self.tracked.remove(&job);
    }

    fn write(&mut self, store: &Store, job: u64, data: &[u8]) -> Result<Appended, JobLogError> {
        let Some(tracked) = self.tracked.get(&job) else {
            unreachable!("held() tracks the job before any write");
        };
        let (bytes, lines) = (tracked.bytes, tracked.lines);
        // Only whole lines are taken; a torn tail waits for the rest.
        let whole = match memchr::memrchr(b'\n', data) {
            Some(last) => &data[..=last],
            None => {
                return Ok(Appended {
                    stored: bytes,
                    job_result: None,
                })
            }
        };
        let path = self.path(job);
        let io = |source| JobLogError::Io {
            job,
            path: path.clone(),
            source,
        };
        let written = Self::write_lines(&path, whole).map_err(io).and_then(|()| {
            let mut batch = scan(whole, lines);
            batch.bytes = bytes + whole.len() as u64;
            store.commit_log(job, &batch)?;
            Ok(batch)
        });
        let batch = match written {
            Ok(batch) => batch,
            Err(e) => {
                // Whatever part of the lines reached the disk is not committed: cut it off
                // now, so that the re-sent range continues a whole log.
                let undone = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(bytes));
                if self.faults.failed(job) {
                    tracing::warn!(
                        "job {job}: its log cannot be written, so it waits at {bytes} bytes \
                         until there is space (the slave keeps re-sending): {e}"
                    );
                }
                if let Err(cut) = undone {
                    tracing::error!(
                        "job {job}: cannot cut {} back to {bytes} bytes: {cut}",
                        path.display()
                    );
                    // Not trusted any more: the next append reads the length again.
                    self.tracked.remove(&job);
                }
                return Err(e);
            }
        };
        if self.faults.recovered(job) {
            tracing::info!("job {job}: its log is written again");
        }
        self.tracked.insert(
            job,
            Tracked {
                bytes: batch.bytes,
                lines: batch.lines,
            },
        );
        Ok(Appended {
            stored: batch.bytes,
            job_result: batch.job_result,
        })
    }
}

impl JobLogs {
    fn write_lines(path: &std::path::Path, whole: &[u8]) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file: File = OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(whole)
    }
}

/// Counts the lines of `data` (whole lines, starting at line `first_line`) and reads the
/// results among them.
fn scan(data: &[u8], first_line: u64) -> JobLogBatch {
    let mut batch = JobLogBatch {
        lines: first_line + memchr::memchr_iter(b'\n', data).count() as u64,
        ..Default::default()
    };
    let mut previous_end = 0usize;
    let mut line_number = first_line;
    for hit in memmem::find_iter(data, RESULTS_MARK) {
        if hit < previous_end {
            continue;
        }
        let start = memchr::memrchr(b'\n', &data[..hit]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &data[hit..]).map_or(data.len(), |i| hit + i);
        line_number += memchr::memchr_iter(b'\n', &data[previous_end..start]).count() as u64;
        previous_end = end;
        let Ok(text) = std::str::from_utf8(&data[start..end]) else {
            continue;
        };
        if let Some(result) = read_result(text, line_number) {
            if result.suite == "lava" && result.name == "job" {
                let field = |name: &str| result.data.get(name).map(crate::data::text);
                batch.job_result = Some((
                    result.result.clone(),
                    field("error_type"),
                    field("error_msg"),
                ));
            }
            batch.results.push(result);
        }
    }
    batch
}

/// Reads one `- {"dt": ..., "lvl": "results", "msg": {...}}` line.
fn read_result(line: &str, log_line: u64) -> Option<NewResult> {
    let entry = crate::yaml11::from_str(line.strip_prefix("- ").unwrap_or(line)).ok()?;
    let msg = entry.get("msg")?;
    let field = |name: &str| msg.get(name).map(crate::data::text);
    Some(NewResult {
        suite: field("definition")?,
        name: field("case")?,
        result: field("result")?,
        measurement: field("measurement"),
        units: field("units"),
        log_line,
        data: msg.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewJob;

    fn setup() -> (tempfile::TempDir, Store, JobLogs, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let id = store
            .submit(&NewJob {
                name: "t".into(),
                visibility: crate::store::Visibility::Public,
                definition: String::new(),
                device_type: "qemu".into(),
                requested_device: None,
                tags: vec![],
                context: serde_json::Value::Null,
                priority: 50,
                submitter: "admin".into(),
                health_check: false,
            })
            .unwrap();
        let logs = JobLogs::new(dir.path().join("jobs"));
        (dir, store, logs, id)
    }

    const LINES: &str = concat!(
        "- {\"dt\": \"t\", \"lvl\": \"info\", \"msg\": \"start\"}\n",
        "- {\"dt\": \"t\", \"lvl\": \"results\", \"msg\": {\"case\": \"uname\", \"definition\": \"0_smoke\", \"result\": \"pass\", \"measurement\": 1.5, \"units\": \"s\"}}\n",
        "- {\"dt\": \"t\", \"lvl\": \"target\", \"msg\": \"root@board:~# \"}\n",
        "- {\"dt\": \"t\", \"lvl\": \"results\", \"msg\": {\"case\": \"job\", \"definition\": \"lava\", \"result\": \"fail\", \"error_type\": \"Test\", \"error_msg\": \"boom\"}}\n",
    );

    #[test]
    fn repeated_and_overlapping_ranges_are_stored_once() {
        let (_dir, store, mut logs, id) = setup();
        let bytes = LINES.as_bytes();
        let half = LINES.find("- {\"dt\": \"t\", \"lvl\": \"target\"").unwrap();
        let first = logs.append(&store, id, 0, &bytes[..half]).unwrap();
        assert_eq!(first.stored, half as u64);
        // The same range again, then an overlapping one, then a gap.
        assert_eq!(
            logs.append(&store, id, 0, &bytes[..half]).unwrap().stored,
            half as u64
        );
        let all = logs.append(&store, id, 0, bytes).unwrap();
        assert_eq!(all.stored, bytes.len() as u64);
        assert_eq!(
            all.job_result,
            Some(("fail".into(), Some("Test".into()), Some("boom".into())))
        );
        let gap = logs
            .append(&store, id, bytes.len() as u64 + 10, b"- x\n")
            .unwrap();
        assert_eq!(gap.stored, bytes.len() as u64);
        assert_eq!(std::fs::read_to_string(logs.path(id)).unwrap(), LINES);
        let results = store.results(id).unwrap();
        let found: Vec<_> = results
            .iter()
            .map(|r| (r.suite.as_str(), r.name.as_str(), r.log_line))
            .collect();
        assert_eq!(found, [("0_smoke", "uname", 1), ("lava", "job", 3)]);
        assert_eq!(results[0].measurement.as_deref(), Some("1.5"));
        assert_eq!(store.job(id).unwrap().unwrap().log_lines, 4);
    }

    #[test]
    fn bytes_written_but_not_committed_are_cut_off_after_a_crash() {
        let (_dir, store, mut logs, id) = setup();
        logs.append(&store, id, 0, b"- {\"lvl\": \"info\"}\n")
            .unwrap();
        let committed = store.job(id).unwrap().unwrap().log_bytes;
        // A master killed between its write and its commit leaves extra bytes behind.
        let mut file = OpenOptions::new().append(true).open(logs.path(id)).unwrap();
        file.write_all(b"- {\"lvl\": \"in").unwrap();
        let mut restarted = JobLogs::new(logs.dir.clone());
        assert_eq!(restarted.held(&store, id).unwrap(), committed);
        restarted
            .append(&store, id, committed, b"- {\"lvl\": \"debug\"}\n")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(logs.path(id)).unwrap(),
            "- {\"lvl\": \"info\"}\n- {\"lvl\": \"debug\"}\n"
        );
    }

    #[test]
    fn results_a_2019_lava_run_wrote_as_ordered_dicts_are_mappings() {
        let (_dir, store, mut logs, id) = setup();
        // LAVA 2019's lava-run dumps result details with PyYAML's full dumper.
        let line = "- {\"dt\": \"2019-12-01T10:00:00\", \"lvl\": \"results\", \"msg\": \
                    !!python/object/apply:collections.OrderedDict [[[\"case\", \"boot\"], \
                    [\"definition\", \"lava\"], [\"result\", \"pass\"], [\"extra\", \
                    !!python/object/apply:collections.OrderedDict [[[\"label\", \"kernel\"], \
                    [\"dtb\", \"am335x\"]]]]]]}\n";
        logs.append_at_end(&store, id, line.as_bytes()).unwrap();
        let results = store.results(id).unwrap();
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(
            (results[0].suite.as_str(), results[0].name.as_str()),
            ("lava", "boot")
        );
        assert_eq!(
            results[0].data["extra"],
            serde_json::json!({"label": "kernel", "dtb": "am335x"})
        );
    }

    #[test]
    fn a_torn_last_line_waits_for_the_rest() {
        let (_dir, store, mut logs, id) = setup();
        let stored = logs
            .append(&store, id, 0, b"- {}\n- {\"lvl\"")
            .unwrap()
            .stored;
        assert_eq!(stored, 5);
    }
}
