//! The ready file (`--ready-file`): written once the master listens, so whoever started it
//! (a supervisor, the test harness, the demo) knows that this master, and not something else
//! holding the port for a moment, is serving, and on which ports port 0 put it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the ready file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// The master's process id.
    pub pid: u32,
    /// The control socket's port.
    pub control_port: u16,
    /// The log socket's port.
    pub log_port: u16,
    /// The HTTP API's port.
    pub http_port: u16,
    /// The event stream's ZMQ PUB port, if it is bound.
    #[serde(default)]
    pub event_port: Option<u16>,
}

impl Listening {
    /// Writes `file` as JSON, atomically (a reader sees the old file, none, or this one whole).
    pub fn write(&self, file: &Path) -> std::io::Result<()> {
        let partial = file.with_extension("partial");
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, file)
    }

    /// Reads a ready file; `None` when it is absent or not (yet) a whole one.
    pub fn read(file: &Path) -> Option<Self> {
        let text = std::fs::read(file).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_ready_file_reads_back_and_a_torn_one_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ready.json");
        assert_eq!(Listening::read(&file), None);
        let listening = Listening {
            pid: 42,
            control_port: 5556,
            log_port: 5555,
            http_port: 8000,
            event_port: Some(5500),
        };
        listening.write(&file).unwrap();
        assert_eq!(Listening::read(&file), Some(listening));
        std::fs::write(&file, br#"{"pid": 42, "control_"#).unwrap();
        assert_eq!(Listening::read(&file), None);
    }
}
