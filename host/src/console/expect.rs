//! An expect engine over a console stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_plugin_api::{ExpectMatch, Log};
use regex::Regex;

use crate::plugins::{ConsoleStream, DriverError};

/// How much to read from the console at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How far back from the end of what was already searched a new search starts, so a match
/// that straddles two reads is still found. Prompts and LAVA signals are far shorter.
const LOOKBACK: usize = 16 * 1024;
/// How long one read may block, so deadlines are checked often enough.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Output kept for matching beyond which the oldest is dropped: a board that prints megabytes
/// without a match must not grow the dispatcher without bound.
const MAX_BUFFER: usize = 1 << 20;
/// The longest log line written for board output before it is cut.
const MAX_LINE: usize = 64 * 1024;

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
    /// Compiled patterns, by source (test shells wait for the same few over and over).
    compiled: HashMap<String, Regex>,
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
            compiled: HashMap::new(),
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
        let mut regexes = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let regex = match self.compiled.get(pattern) {
                Some(regex) => regex.clone(),
                None => {
                    let regex = Regex::new(pattern).map_err(|source| ExpectError::BadPattern {
                        pattern: pattern.clone(),
                        source,
                    })?;
                    self.compiled.insert(pattern.clone(), regex.clone());
                    regex
                }
            };
            regexes.push(regex);
        }
        let deadline = Instant::now() + timeout;
        // New patterns may match anywhere in what is buffered; after a miss, only the end
        // (plus a lookback) needs searching again.
        let mut search_from = 0;
        loop {
            if let Some(found) = self.find(&regexes, search_from) {
                return Ok(found);
            }
            search_from = self.buffer.len().saturating_sub(LOOKBACK);
            while !self.buffer.is_char_boundary(search_from) {
                search_from -= 1;
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
            let dropped = self.take_output(&String::from_utf8_lossy(&data));
            search_from = search_from.saturating_sub(dropped);
            while !self.buffer.is_char_boundary(search_from) {
                search_from -= 1;
            }
        }
    }

    fn find(&mut self, regexes: &[Regex], from: usize) -> Option<ExpectMatch> {
        let (index, start, end) = regexes
            .iter()
            .enumerate()
            .filter_map(|(i, re)| {
                re.find_at(&self.buffer, from)
                    .map(|m| (i, m.start(), m.end()))
            })
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

    /// Adds console output; returns how many bytes were dropped from the front of the buffer
    /// to keep it bounded.
    fn take_output(&mut self, text: &str) -> usize {
        self.buffer.push_str(text);
        let mut dropped = 0;
        if self.buffer.len() > MAX_BUFFER {
            let mut cut = self.buffer.len() - MAX_BUFFER / 2;
            while !self.buffer.is_char_boundary(cut) {
                cut += 1;
            }
            self.buffer.drain(..cut);
            dropped = cut;
        }
        // Logged as lava-run logs console lines: without carriage returns and without ESC
        // (colour and cursor sequences lose their introducer); matching sees the raw stream.
        let logged = |c: &char| *c != '\r' && *c != '\u{1b}';
        let mut rest = text;
        while let Some(newline) = rest.find('\n') {
            self.partial_line
                .extend(rest[..newline].chars().filter(logged));
            self.flush_partial_line();
            rest = &rest[newline + 1..];
        }
        self.partial_line.extend(rest.chars().filter(logged));
        if self.partial_line.len() > MAX_LINE {
            // A board printing without newlines still gets logged, in pieces.
            self.flush_partial_line();
        }
        dropped
    }

    fn flush_partial_line(&mut self) {
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.log.target(&line);
        }
    }

    /// Switches to another console (one a boot driver opened), closing the current one and
    /// forgetting its unread output.
    pub fn replace_console(&mut self, console: ConsoleStream) {
        self.flush_partial_line();
        self.buffer.clear();
        let mut old = std::mem::replace(&mut self.console, console);
        let _ = old.close();
    }

    /// Closes the console.
    pub fn close(mut self) -> Result<(), DriverError> {
        self.flush_partial_line();
        self.console.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_plugin_api::{console_box, Console, MemoryLog, PluginError};
    use std::collections::VecDeque;

    /// A console that hands out scripted chunks, then reports nothing more.
    struct Scripted(VecDeque<Vec<u8>>);

    impl Console for Scripted {
        fn read(&mut self, _max: usize, timeout: Duration) -> Result<Vec<u8>, PluginError> {
            match self.0.pop_front() {
                Some(chunk) => Ok(chunk),
                None => {
                    std::thread::sleep(timeout.min(Duration::from_millis(5)));
                    Ok(Vec::new())
                }
            }
        }
        fn write(&mut self, _data: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn close(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
    }

    fn expecter(chunks: &[&str]) -> (Expecter, Arc<MemoryLog>) {
        let memory = Arc::new(MemoryLog::default());
        let console = Scripted(chunks.iter().map(|c| c.as_bytes().to_vec()).collect());
        let stream = ConsoleStream::in_process("scripted", console_box(console));
        (Expecter::new(stream, Log::new(memory.clone())), memory)
    }

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn the_earliest_match_wins_and_output_is_consumed_up_to_it() {
        let (mut e, log) = expecter(&["U-Boot\r\nlogin: ", "root\n# "]);
        let found = e
            .expect(&patterns(&["# ", "login: "]), Duration::from_secs(1))
            .unwrap();
        assert_eq!((found.index, found.matched.as_str()), (1, "login: "));
        assert_eq!(found.before, "U-Boot\r\n");
        let found = e
            .expect(&patterns(&["# "]), Duration::from_secs(1))
            .unwrap();
        assert_eq!(found.before, "root\n");
        assert!(log.text().contains("U-Boot"));
    }

    #[test]
    fn console_lines_are_logged_without_escape_bytes_as_lava_run_logs_them() {
        let (mut e, log) = expecter(&["\u{1b}[1;32mOK\u{1b}[0m booted\r\n# "]);
        let found = e
            .expect(&patterns(&["\u{1b}\\[0m booted"]), Duration::from_secs(1))
            .unwrap();
        assert_eq!(found.matched, "\u{1b}[0m booted");
        e.expect(&patterns(&["# "]), Duration::from_secs(1))
            .unwrap();
        let text = log.text();
        assert!(text.contains("[1;32mOK[0m booted"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn a_match_split_across_reads_is_found_after_a_long_stream() {
        let filler = "x".repeat(3 * 1024 * 1024);
        let (mut e, _) = expecter(&[&filler, "... LAVA_SIG", "NAL_END"]);
        let found = e
            .expect(&patterns(&["LAVA_SIGNAL_END"]), Duration::from_secs(5))
            .unwrap();
        assert_eq!(found.matched, "LAVA_SIGNAL_END");
    }

    #[test]
    fn timeouts_and_cancels_say_what_was_awaited() {
        let (mut e, _) = expecter(&["Kernel panic - not syncing"]);
        match e.expect(&patterns(&["login:"]), Duration::from_millis(100)) {
            Err(ExpectError::Timeout { tail, .. }) => assert!(tail.contains("Kernel panic")),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let flag = Arc::new(AtomicBool::new(true));
        e.set_cancel(flag);
        assert!(matches!(
            e.expect(&patterns(&["login:"]), Duration::from_secs(5)),
            Err(ExpectError::Canceled { .. })
        ));
        assert!(matches!(
            e.expect(&patterns(&["("]), Duration::from_secs(1)),
            Err(ExpectError::BadPattern { .. })
        ));
    }
}
