//! An expect engine over a console stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_plugin_api::{ExpectMatch, Log};
use regex::Regex;

use crate::plugins::{ConsoleStream, DriverError};

/// How much to read from the console at a time.
const READ_CHUNK: usize = 4096;
/// How long one read may block, so deadlines are checked often enough.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Output kept for matching beyond which the oldest is dropped: a board that prints megabytes
/// without a match must not grow the dispatcher without bound.
const MAX_BUFFER: usize = 1 << 20;

/// Why an expect failed.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// A pattern is not a valid regular expression.
    #[error("invalid pattern {pattern:?}: {source}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The regex error.
        source: regex::Error,
    },
    /// Nothing matched in time.
    #[error("none of {patterns:?} appeared within {timeout:?}; last output: {tail:?}")]
    Timeout {
        /// The patterns waited for.
        patterns: Vec<String>,
        /// The time waited.
        timeout: Duration,
        /// The end of what the console printed.
        tail: String,
    },
    /// The console failed.
    #[error(transparent)]
    Console(#[from] DriverError),
    /// The job was canceled while waiting.
    #[error("canceled while waiting for {patterns:?}")]
    Canceled {
        /// The patterns waited for.
        patterns: Vec<String>,
    },
}

/// Reads a console, logs what the board prints line by line, and finds patterns in it.
pub struct Expecter {
    console: ConsoleStream,
    log: Log,
    /// Output not yet consumed by a match.
    buffer: String,
    /// The current, unfinished output line, logged once it ends (or at a match).
    partial_line: String,
    /// Set when the job is canceled; every wait checks it.
    cancel: Option<Arc<AtomicBool>>,
}

impl Expecter {
    /// Wraps an open console; board output goes to `log` at `target` level.
    pub fn new(console: ConsoleStream, log: Log) -> Self {
        Self {
            console,
            log,
            buffer: String::new(),
            partial_line: String::new(),
            cancel: None,
        }
    }

    /// Makes every wait stop (with [`ExpectError::Canceled`]) once `flag` is set.
    pub fn set_cancel(&mut self, flag: Arc<AtomicBool>) {
        self.cancel = Some(flag);
    }

    /// Sends text to the board, logging it at `input` level.
    pub fn send(&mut self, text: &str) -> Result<(), DriverError> {
        self.log.write(basalt_plugin_api::LogLevel::INPUT, text);
        self.console.write(text.as_bytes())
    }

    /// Waits until one of `patterns` matches the unconsumed output. When several match, the
    /// one that starts earliest wins (ties go to the earlier pattern), as with pexpect.
    pub fn expect(
        &mut self,
        patterns: &[String],
        timeout: Duration,
    ) -> Result<ExpectMatch, ExpectError> {
        let regexes = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|source| ExpectError::BadPattern {
                    pattern: p.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.find(&regexes) {
                return Ok(found);
            }
            if self
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::SeqCst))
            {
                self.flush_partial_line();
                return Err(ExpectError::Canceled {
                    patterns: patterns.to_vec(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                self.flush_partial_line();
                let start = self.buffer.len().saturating_sub(200);
                let start = (start..self.buffer.len())
                    .find(|i| self.buffer.is_char_boundary(*i))
                    .unwrap_or(self.buffer.len());
                return Err(ExpectError::Timeout {
                    patterns: patterns.to_vec(),
                    timeout,
                    tail: self.buffer[start..].to_owned(),
                });
            }
            let data = self
                .console
                .read(READ_CHUNK, (deadline - now).min(READ_SLICE))?;
            self.take_output(&String::from_utf8_lossy(&data));
        }
    }

    fn find(&mut self, regexes: &[Regex]) -> Option<ExpectMatch> {
        let (index, start, end) = regexes
            .iter()
            .enumerate()
            .filter_map(|(i, re)| re.find(&self.buffer).map(|m| (i, m.start(), m.end())))
            .min_by_key(|(i, start, _)| (*start, *i))?;
        let before = self.buffer[..start].to_owned();
        let matched = self.buffer[start..end].to_owned();
        self.buffer.drain(..end);
        self.flush_partial_line();
        Some(ExpectMatch {
            index,
            before,
            matched,
        })
    }

    fn take_output(&mut self, text: &str) {
        self.buffer.push_str(text);
        if self.buffer.len() > MAX_BUFFER {
            let mut cut = self.buffer.len() - MAX_BUFFER / 2;
            while !self.buffer.is_char_boundary(cut) {
                cut += 1;
            }
            self.buffer.drain(..cut);
        }
        for c in text.chars() {
            match c {
                '\n' => self.flush_partial_line(),
                '\r' => {}
                c => self.partial_line.push(c),
            }
        }
    }

    fn flush_partial_line(&mut self) {
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.log.target(&line);
        }
    }

    /// Closes the console.
    pub fn close(mut self) -> Result<(), DriverError> {
        self.flush_partial_line();
        self.console.close()
    }
}
