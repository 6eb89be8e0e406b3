//! The job log: LAVA-format lines in `output.yaml`, written as they happen.
//!
//! A line that cannot be written (a full disk) is not skipped: the file is cut back to its
//! last whole line, nothing more is written, and the job is stopped through its cancel flag
//! so that it ends Incomplete with the reason ([`JobLogger::failure`]) rather than Complete
//! on a log with a hole in it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use basalt_plugin_api::{Log, LogLevel, LogSink};
use serde_json::Value;

use super::results::{CaseResult, Results};
use crate::joblog::{format_entry, timestamp, yaml_quote};

/// Writes a job's log to its `output.yaml` (and optionally echoes it to stderr), masking the
/// job's secrets. Cheap to clone: clones share the file.
#[derive(Clone)]
pub struct JobLogger {
    inner: Arc<Inner>,
}

struct Inner {
    out: Mutex<Output>,
    /// The LAVA actions running now ([`super::actions`]).
    actions: Mutex<super::actions::Stack>,
    echo: bool,
    secrets: Vec<String>,
    path: PathBuf,
}

/// The file and how much of it is whole lines.
struct Output {
    file: File,
    whole: u64,
    /// Lines written so far.
    lines: u64,
    /// Why the log stopped, once a line could not be written.
    failure: Option<String>,
    /// Set when the log fails, to stop the job.
    stop: Option<super::Cancel>,
    /// Every results record logged, in order, for `results.yaml`.
    results: Results,
}

impl JobLogger {
    /// Creates `output.yaml` in `dir`.
    pub fn create(dir: &Path, echo: bool, secrets: Vec<String>) -> std::io::Result<Self> {
        let path = dir.join("output.yaml");
        let file = File::create(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                out: Mutex::new(Output {
                    file,
                    whole: 0,
                    lines: 0,
                    failure: None,
                    stop: None,
                    results: Results::default(),
                }),
                actions: Mutex::default(),
                echo,
                secrets,
                path,
            }),
        })
    }

    /// Stops the job through `cancel` if a line cannot be written.
    pub fn stop_job_on_failure(&self, cancel: super::Cancel) {
        self.lock().stop = Some(cancel);
    }

    /// Why the log stopped being written, if it did: the job cannot end Complete.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// How many lines the log has: the next line's 0-based number, as the master numbers
    /// them (`starttc`/`endtc` name lines by it).
    pub fn lines(&self) -> u64 {
        self.lock().lines
    }

    pub(super) fn actions(&self) -> std::sync::MutexGuard<'_, super::actions::Stack> {
        self.inner.actions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        self.inner.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mask(&self, message: &str) -> String {
        crate::job::secrets::mask_text(message, &self.inner.secrets, "[MASKED]")
    }

    fn write_line(&self, line: &str) {
        {
            let mut out = self.lock();
            if out.failure.is_none() {
                let mut bytes = Vec::with_capacity(line.len() + 1);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                match out.file.write_all(&bytes) {
                    Ok(()) => {
                        out.whole += bytes.len() as u64;
                        out.lines += 1;
                    }
                    Err(e) => {
                        // Whatever part of the line got out is cut off: the log stays whole
                        // lines, valid YAML, up to here.
                        let whole = out.whole;
                        let _ = out.file.set_len(whole);
                        out.failure = Some(format!(
                            "the job log {} cannot be written ({e}); it stops after {whole} \
                             bytes",
                            self.inner.path.display()
                        ));
                        if let Some(stop) = &out.stop {
                            stop.set();
                        }
                    }
                }
            }
        }
        if self.inner.echo {
            eprintln!("{line}");
        }
    }

    /// Writes one entry.
    pub fn write(&self, level: LogLevel, message: &str) {
        let line = format_entry(SystemTime::now(), level, &self.mask(message));
        self.write_line(&line);
    }

    /// Writes at `info`.
    pub fn info(&self, message: &str) {
        self.write(LogLevel::INFO, message);
    }

    /// Writes at `debug`.
    pub fn debug(&self, message: &str) {
        self.write(LogLevel::DEBUG, message);
    }

    /// Writes at `warning`.
    pub fn warning(&self, message: &str) {
        self.write(LogLevel::WARNING, message);
    }

    /// Writes at `error`.
    pub fn error(&self, message: &str) {
        self.write(LogLevel::ERROR, message);
    }

    /// Records a result: a `results` entry in the log ([`Self::log_result`]) and a case of
    /// `results.yaml`, so the two never disagree.
    pub fn result(&self, fields: &[(&str, Value)]) {
        self.result_as(fields, CaseResult::from_fields(fields));
    }

    /// Records a result whose case in `results.yaml` is `case` (the job's, whose error is
    /// its `detail`).
    pub fn result_as(&self, fields: &[(&str, Value)], case: CaseResult) {
        self.log_result(fields);
        self.lock().results.add(case);
    }

    /// Every result recorded so far.
    pub fn results(&self) -> Results {
        self.lock().results.clone()
    }

    /// Writes a `results` entry: a flow mapping whose non-string values are tagged `! "…"`,
    /// as LAVA writes them.
    fn log_result(&self, fields: &[(&str, Value)]) {
        let dt = timestamp(SystemTime::now());
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| {
                let value = self.result_value(value);
                format!("{}: {value}", yaml_quote(key))
            })
            .collect();
        self.write_line(&format!(
            "- {{\"dt\": {}, \"lvl\": \"results\", \"msg\": {{{}}}}}",
            yaml_quote(&dt),
            body.join(", ")
        ));
    }

    /// A value of a results line: strings quoted, mappings and lists as flow collections
    /// (the master stores them as data), other scalars tagged as LAVA's writer tags them.
    fn result_value(&self, value: &Value) -> String {
        match value {
            Value::String(s) => yaml_quote(&self.mask(s)),
            Value::Object(map) => {
                let items: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}: {}", yaml_quote(k), self.result_value(v)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|v| self.result_value(v)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Null => "null".into(),
            other => format!("! {}", yaml_quote(&other.to_string())),
        }
    }

    /// A plugin-facing [`Log`] writing into this job log.
    pub fn plugin_log(&self) -> Log {
        Log::new(self.clone())
    }
}

impl LogSink for JobLogger {
    fn log(&self, level: LogLevel, message: &str) {
        self.write(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_a_yaml_list_with_results_as_mappings_and_secrets_masked() {
        let dir = tempfile::tempdir().unwrap();
        let log = JobLogger::create(dir.path(), false, vec!["hunter2".into()]).unwrap();
        log.info("password is hunter2");
        log.result(&[
            ("definition", Value::from("0_smoke")),
            ("case", Value::from("boot")),
            ("result", Value::from("pass")),
            ("measurement", serde_json::json!(1.5)),
        ]);
        let text = std::fs::read_to_string(dir.path().join("output.yaml")).unwrap();
        let entries = crate::yaml11::from_str(&text).unwrap();
        assert_eq!(entries[0]["msg"], "password is [MASKED]");
        assert_eq!(entries[1]["lvl"], "results");
        assert_eq!(entries[1]["msg"]["case"], "boot");
        assert_eq!(entries[1]["msg"]["measurement"], serde_json::json!(1.5));
    }
}
