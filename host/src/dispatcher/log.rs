//! The job log: LAVA-format lines in `output.yaml`, written as they happen.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use basalt_plugin_api::{Log, LogLevel, LogSink};
use serde_json::Value;

use crate::joblog::{format_entry, timestamp, yaml_quote};

/// Writes a job's log to its `output.yaml` (and optionally echoes it to stderr), masking the
/// job's secrets. Cheap to clone: clones share the file.
#[derive(Clone)]
pub struct JobLogger {
    inner: Arc<Inner>,
}

struct Inner {
    out: Mutex<BufWriter<File>>,
    echo: bool,
    secrets: Vec<String>,
}

impl JobLogger {
    /// Creates `output.yaml` in `dir`.
    pub fn create(dir: &Path, echo: bool, secrets: Vec<String>) -> std::io::Result<Self> {
        let file = File::create(dir.join("output.yaml"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                out: Mutex::new(BufWriter::new(file)),
                echo,
                secrets,
            }),
        })
    }

    fn mask(&self, message: &str) -> String {
        let mut masked = message.to_owned();
        for secret in &self.inner.secrets {
            masked = masked.replace(secret.as_str(), "[MASKED]");
        }
        masked
    }

    fn write_line(&self, line: &str) {
        if let Ok(mut out) = self.inner.out.lock() {
            // The log must never fail the job; a full disk shows up elsewhere.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
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

    /// Writes at `error`.
    pub fn error(&self, message: &str) {
        self.write(LogLevel::ERROR, message);
    }

    /// Writes a `results` entry: a flow mapping whose non-string values are tagged `! "…"`,
    /// as LAVA writes them.
    pub fn result(&self, fields: &[(&str, Value)]) {
        let dt = timestamp(SystemTime::now());
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(s) => yaml_quote(&self.mask(s)),
                    other => format!("! {}", yaml_quote(&other.to_string())),
                };
                format!("{}: {value}", yaml_quote(key))
            })
            .collect();
        self.write_line(&format!(
            "- {{\"dt\": {}, \"lvl\": \"results\", \"msg\": {{{}}}}}",
            yaml_quote(&dt),
            body.join(", ")
        ));
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
