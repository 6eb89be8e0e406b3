//! LAVA's scan of the kernel's messages during a boot (`LinuxKernelMessages`): while the
//! boot waits for the login or shell prompt, oopses, warnings, BUGs, faults, KASAN/KCSAN/
//! KFENCE reports, invalid opcodes and panics on the console are collected, each from the
//! start of its line to its end marker, with LAVA's kinds. A panic ends the boot with a job
//! error at once, as does the job's `failure_message`.
//!
//! LAVA's patterns end at a carriage return; here they end at a carriage return or a line
//! feed, so a console that passes bare line feeds ends them too.

use std::time::Instant;

use serde_json::{json, Value};

use crate::login::time_left;
use crate::{BootSession, ExpectMatch, PluginError};

/// One kind of kernel message: where it starts and ends, what it is, whether the kernel
/// survives it.
struct KernelMessage {
    start: &'static str,
    end: &'static str,
    /// `None`: told from the message (Oops, BUG, WARNING).
    kind: Option<&'static str>,
    fatal: bool,
}

/// LAVA's `KERNEL_MESSAGES` (those of lava-dispatcher 2023.01), in its order. Later LAVA
/// also takes a U-Boot SPL banner for a board that reset; not here, because a `minimal`
/// boot's login watches from power-on, where a board's first banner is no reset.
const KERNEL_MESSAGES: &[KernelMessage] = &[
    KernelMessage {
        start: r"-\[ cut here \]",
        end: r"-+\[ end trace \w* \]-+[^\r\n]*[\r\n]",
        kind: None,
        fatal: false,
    },
    KernelMessage {
        start: r"Unhandled fault",
        end: r"[\r\n]",
        kind: Some("fault"),
        fatal: false,
    },
    KernelMessage {
        start: r"BUG: KCSAN:",
        end: r"=+[\r\n]",
        kind: Some("kcsan"),
        fatal: false,
    },
    KernelMessage {
        start: r"BUG: KASAN:",
        end: r"=+[\r\n]",
        kind: Some("kasan"),
        fatal: false,
    },
    KernelMessage {
        start: r"BUG: KFENCE:",
        end: r"=+[\r\n]",
        kind: Some("kfence"),
        fatal: false,
    },
    KernelMessage {
        start: r"Oops(?: -|:)",
        end: r"[\r\n]",
        kind: Some("oops"),
        fatal: false,
    },
    KernelMessage {
        start: r"WARNING:",
        end: r"end trace[^\r\n]*[\r\n]",
        kind: Some("warning"),
        fatal: false,
    },
    KernelMessage {
        start: r"(?:kernel BUG at|BUG:)",
        end: r"[\r\n]",
        kind: Some("bug"),
        fatal: false,
    },
    KernelMessage {
        start: r"invalid opcode:",
        end: r"[\r\n]",
        kind: Some("invalid opcode"),
        fatal: false,
    },
    KernelMessage {
        start: r"Kernel panic - not syncing",
        end: r"end Kernel panic[^\r\n]*[\r\n]",
        kind: Some("panic"),
        fatal: true,
    },
];

/// What the scan found: LAVA's `kernel-messages` record and the login action's results.
#[derive(Debug)]
pub struct Scan {
    /// `{kind, message}` of each message, in order.
    pub found: Vec<Value>,
    /// `fail` once a fatal message or the job's failure message was seen.
    pub result: &'static str,
    started: Instant,
    /// When the scan stopped (the prompt, a fatal message), for the record's duration.
    ended: Option<Instant>,
    /// Whether to look at all (`ignore_kernel_messages: true` turns it off).
    watching: bool,
}

impl Scan {
    /// A scan that watches, unless the job says to ignore kernel messages.
    pub fn new(watching: bool) -> Self {
        Self {
            found: Vec::new(),
            result: "pass",
            started: Instant::now(),
            ended: None,
            watching,
        }
    }

    /// Waits for one of `targets` (regular expressions) as [`BootSession::expect`] does,
    /// collecting the kernel messages before it; the match's index is among `targets`. A
    /// fatal message or `failure_message` ends the wait with a job error.
    pub fn wait(
        &mut self,
        session: &mut BootSession<'_>,
        targets: &[String],
        failure_message: Option<&str>,
        deadline: Instant,
    ) -> Result<ExpectMatch, PluginError> {
        let starts: Vec<&str> = if self.watching {
            KERNEL_MESSAGES.iter().map(|m| m.start).collect()
        } else {
            Vec::new()
        };
        let mut patterns: Vec<String> = starts.iter().map(|s| (*s).to_owned()).collect();
        patterns.extend(targets.iter().cloned());
        // An empty one would match at once; LAVA skips it.
        let failure_message = failure_message.filter(|f| !f.is_empty());
        if let Some(failure) = failure_message {
            patterns.push(failure.to_owned());
        }
        loop {
            let found = session.expect(&patterns, time_left(deadline))?;
            if found.index < starts.len() {
                let kind = &KERNEL_MESSAGES[found.index];
                match self.collect(session, kind, &found, targets, deadline)? {
                    None => continue,
                    // The prompt came before the message's end: the scan stops there.
                    Some(target) => return Ok(self.done(target)),
                }
            }
            let index = found.index - starts.len();
            if index == targets.len() {
                let failure = failure_message.unwrap_or_default();
                self.result = "fail";
                self.ended = Some(Instant::now());
                self.found.push(json!({"message": "kernel-messages"}));
                return Err(PluginError::job(format!(
                    "Matched job-specific failure message: '{failure}'"
                )));
            }
            return Ok(self.done(ExpectMatch { index, ..found }));
        }
    }

    /// The scan ends at a target's match.
    fn done(&mut self, target: ExpectMatch) -> ExpectMatch {
        self.ended = Some(Instant::now());
        target
    }

    /// Reads a kernel message to its end and records it; ends the boot on a fatal one. A
    /// target matched before the end is returned: the message is dropped unrecorded and the
    /// scan stops, as LAVA's does.
    fn collect(
        &mut self,
        session: &mut BootSession<'_>,
        kind: &KernelMessage,
        start: &ExpectMatch,
        targets: &[String],
        deadline: Instant,
    ) -> Result<Option<ExpectMatch>, PluginError> {
        let line_start = start.before.rsplit('\n').next().unwrap_or_default();
        let mut message = format!("{line_start}{}", start.matched);
        let mut ends = vec![kind.end.to_owned()];
        ends.extend(targets.iter().cloned());
        let end = session.expect(&ends, time_left(deadline))?;
        if end.index != 0 {
            session.log(
                crate::LogLevel::WARNING,
                "Unable to match end of the kernel message",
            );
            return Ok(Some(ExpectMatch {
                index: end.index - 1,
                ..end
            }));
        }
        message.push_str(&end.before);
        message.push_str(end.matched.trim_end_matches(['\r', '\n']));
        let kind_name = kind.kind.unwrap_or(if message.contains("Oops") {
            "oops"
        } else if message.contains("BUG") {
            "bug"
        } else if message.contains("WARNING") {
            "warning"
        } else {
            "unknown"
        });
        self.found
            .push(json!({"kind": kind_name, "message": message.clone()}));
        if kind.fatal {
            self.result = "fail";
            self.ended = Some(Instant::now());
            session.log(
                crate::LogLevel::ERROR,
                &format!("login-action kernel '{kind_name}'"),
            );
            return Err(PluginError::job(message));
        }
        session.log(
            crate::LogLevel::WARNING,
            &format!("login-action: kernel '{kind_name}'"),
        );
        Ok(None)
    }

    /// LAVA's `kernel-messages` record, as the running action's result.
    pub fn record(&self, session: &mut BootSession<'_>) {
        if !self.watching {
            return;
        }
        session.record_result(
            "kernel-messages",
            self.result,
            &json!({ "extra": self.found }),
            self.ended
                .unwrap_or_else(Instant::now)
                .duration_since(self.started),
        );
    }

    /// The login action's results as lava-dispatcher 2023.01 gives them: LAVA's words for
    /// no messages, else the messages under `fail`.
    pub fn login_results(&self) -> Option<(String, Value)> {
        if !self.watching {
            return None;
        }
        Some(if self.found.is_empty() {
            (
                "success".into(),
                Value::from("No kernel warnings or errors detected."),
            )
        } else {
            ("fail".into(), Value::Array(self.found.clone()))
        })
    }
}
