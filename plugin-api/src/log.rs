//! Writing to the job log from inside a driver.
//!
//! Plugins never print to stdout or stderr: what a driver has to say belongs in the log of the
//! job it works for, at a LAVA log level, so the host hands every driver a [`Log`].

use std::sync::Mutex;

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RStr},
    StableAbi,
};

/// A LAVA log level (`debug`, `info`, `warning`, `error`, `target`, `input`, `feedback`).
///
/// An integer newtype so later releases can add levels; the host logs unknown codes as `info`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LogLevel(u8);

impl LogLevel {
    /// Detail for debugging a driver.
    pub const DEBUG: Self = Self(1);
    /// What the driver is doing, for the person reading the job log.
    pub const INFO: Self = Self(2);
    /// Something unexpected that the driver worked around.
    pub const WARNING: Self = Self(3);
    /// Something failed.
    pub const ERROR: Self = Self(4);
    /// Bytes that came from the board (its console output).
    pub const TARGET: Self = Self(5);
    /// Text the driver sent to the board.
    pub const INPUT: Self = Self(6);
    /// Output of a secondary connection or of a helper command.
    pub const FEEDBACK: Self = Self(7);

    /// Builds a level from its wire code.
    pub const fn from_code(code: u8) -> Self {
        Self(code)
    }

    /// The wire code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// LAVA's name of the level, as written in job logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::DEBUG => "debug",
            Self::WARNING => "warning",
            Self::ERROR => "error",
            Self::TARGET => "target",
            Self::INPUT => "input",
            Self::FEEDBACK => "feedback",
            _ => "info",
        }
    }
}

/// The ABI form of a log sink; the host implements it, drivers use it through [`Log`].
#[sabi_trait]
pub trait JobLogAbi: Send + Sync {
    /// Appends one entry to the job log.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// An owned, type-erased [`JobLogAbi`] as it crosses the boundary.
pub type JobLogBox = JobLogAbi_TO<'static, RBox<()>>;

/// Anything that can take log entries; implement it to receive a driver's log in a host or a
/// test.
pub trait LogSink: Send + Sync + 'static {
    /// Takes one entry.
    fn log(&self, level: LogLevel, message: &str);
}

struct SinkAdapter<S>(S);

impl<S: LogSink> JobLogAbi for SinkAdapter<S> {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        // A sink that panics must not unwind into the other side of the boundary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.0.log(level, message.as_str())
        }));
    }
}

/// A driver's handle on the job log.
pub struct Log(JobLogBox);

impl Log {
    /// Wraps any [`LogSink`]; the host does this once per driver it builds.
    pub fn new(sink: impl LogSink) -> Self {
        Self(JobLogAbi_TO::from_value(SinkAdapter(sink), TD_Opaque))
    }

    /// A log that drops everything (for tools that only ask a driver for its state).
    pub fn discard() -> Self {
        struct Discard;
        impl LogSink for Discard {
            fn log(&self, _: LogLevel, _: &str) {}
        }
        Self::new(Discard)
    }

    /// Rebuilds a [`Log`] from its ABI form (used by the export glue).
    pub fn from_abi(inner: JobLogBox) -> Self {
        Self(inner)
    }

    /// Gives up the ABI form (used by the host when it builds a driver).
    pub fn into_abi(self) -> JobLogBox {
        self.0
    }

    /// Writes an entry at any level.
    pub fn write(&self, level: LogLevel, message: &str) {
        self.0.log(level, RStr::from_str(message));
    }

    /// Writes at `debug`.
    pub fn debug(&self, message: &str) {
        self.write(LogLevel::DEBUG, message);
    }

    /// Writes at `info`.
    pub fn info(&self, message: &str) {
        self.write(LogLevel::INFO, message);
    }

    /// Writes at `warning`.
    pub fn warning(&self, message: &str) {
        self.write(LogLevel::WARNING, message);
    }

    /// Writes at `error`.
    pub fn error(&self, message: &str) {
        self.write(LogLevel::ERROR, message);
    }

    /// Writes board output at `target`.
    pub fn target(&self, message: &str) {
        self.write(LogLevel::TARGET, message);
    }

    /// Writes helper-command output at `feedback`.
    pub fn feedback(&self, message: &str) {
        self.write(LogLevel::FEEDBACK, message);
    }
}

/// A [`LogSink`] that keeps every entry in memory, for tests of drivers and hosts.
#[derive(Default)]
pub struct MemoryLog {
    entries: Mutex<Vec<(LogLevel, String)>>,
}

impl MemoryLog {
    /// Every entry so far, oldest first.
    pub fn entries(&self) -> Vec<(LogLevel, String)> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Every message so far joined by newlines, for `contains` checks in tests.
    pub fn text(&self) -> String {
        self.entries()
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl LogSink for std::sync::Arc<MemoryLog> {
    fn log(&self, level: LogLevel, message: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push((level, message.to_owned()));
        }
    }
}
