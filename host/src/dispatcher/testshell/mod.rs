//! Test actions on the board's shell: LAVA test definitions run by the overlay's
//! `lava-test-runner`, and interactive tests.
//!
//! For definitions the shell does what lava-run's test shell does: puts the overlay on the
//! board if no deploy did (sent over the console as one gzip tarball, base64 in a
//! here-document, unpacked with `tar`), exports `SHELL`, sources the overlay's `environment`
//! and starts `lava-test-runner` on the action's stage; then it reads signals
//! ([`signals::Director`]) until the runner says it is done.

mod signals;

use std::io::Read;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};

use super::failure::Failure;
use super::log::JobLogger;
use super::overlay::Overlay;
use crate::console::Expecter;
use crate::data::string_list;
use crate::failure::FailureClass;
use signals::{Director, Next};

/// A signal on the console: `<LAVA_SIGNAL_NAME params>`.
const SIGNAL_PATTERN: &str = r"<LAVA_SIGNAL_(\S+) ([^>]+)>";
/// The runner's last word, however it ends.
const RUNNER_EXIT: &str = "<LAVA_TEST_RUNNER EXIT>";
/// A definition's install.sh failed.
const RUNNER_INSTALL_FAIL: &str = "<LAVA_TEST_RUNNER INSTALL_FAIL>";
/// The exit status of a checked command (LAVA's spelling).
const RETURN_CODE: &str = r"<LAVA_SIGNAL_RETRUNCODE (\d+)>";

static SIGNAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SIGNAL_PATTERN).expect("valid signal regex"));
static RETURN_CODE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(RETURN_CODE).expect("valid return code regex"));

/// Base64 characters per line sent: what `base64` itself writes, short of any terminal width.
const LINE_BYTES: usize = 76;
/// Lines sent before waiting for the echo of the last: 2.5 KB, within the 4 KiB a terminal
/// buffers.
const LINES_PER_ACK: usize = 32;

/// Everything a test action needs from the runner.
pub struct TestShell<'a> {
    /// The board's console.
    pub expecter: &'a mut Expecter,
    /// The shell prompt patterns (from the boot action).
    pub prompts: Vec<String>,
    /// The job log.
    pub log: &'a JobLogger,
    /// The level of the action running the tests (`3.1`, LAVA's `lava-test-shell`), for the
    /// records LAVA gives one.
    pub level: String,
    /// The action's namespace (`common` unless the job names one).
    pub namespace: String,
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl TestShell<'_> {
    /// Sends a line and waits for the prompt.
    pub fn run_line(&mut self, line: &str, deadline: Instant) -> Result<(), Failure> {
        self.log.debug(&format!("Sending line: {line:?}"));
        self.expecter.send(&format!("{line}\n"))?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    /// Makes sure the shell is at a prompt before typing into it.
    fn sync(&mut self, deadline: Instant) -> Result<(), Failure> {
        self.expecter.send("\n")?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    /// Runs `line` and fails unless it exits 0, as LAVA's checked commands do.
    fn run_checked(&mut self, line: &str, deadline: Instant) -> Result<(), Failure> {
        self.log.debug(&format!(
            "Checking {line:?} return code... (timeout {})",
            crate::pipeline::hms(left(deadline))
        ));
        self.expecter.send(&format!(
            "{line} ; printf \"<LAVA_SIGNAL_RETRUNCODE $?>\\n\"\n"
        ))?;
        // The prompt first means the shell never ran the printf (a failing `.` in dash ends
        // the whole line).
        let mut patterns = vec![RETURN_CODE.to_owned()];
        patterns.extend(self.prompts.iter().cloned());
        let failed = || Failure::job(format!("Failed to check '{line}' return code!"));
        let found = self
            .expecter
            .expect(&patterns, left(deadline))
            .map_err(|_| failed())?;
        if found.index != 0 {
            return Err(failed());
        }
        let code = RETURN_CODE_RE
            .captures(&found.matched)
            .and_then(|c| c.get(1))
            .map_or("", |m| m.as_str())
            .to_owned();
        self.expecter.expect(&self.prompts, left(deadline))?;
        if code != "0" {
            return Err(Failure::job(format!(
                "'{line}' failed with return code {code}!"
            )));
        }
        Ok(())
    }

    /// Sends the overlay over the console: `base64 -d` on the board reads the tarball's base64
    /// straight from the terminal (lines of 76, so no line editor ever redraws a long line),
    /// until an end-of-file character; every 32 lines wait for the terminal's echo of the last
    /// one, so a console with a small input buffer is never overrun. Then it is unpacked at
    /// the root.
    pub fn send_overlay(&mut self, overlay: &Overlay, deadline: Instant) -> Result<(), Failure> {
        use base64::Engine;
        let mut bytes = Vec::new();
        std::fs::File::open(&overlay.tarball)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| {
                Failure::infrastructure(format!(
                    "the LAVA overlay {}: {e}",
                    overlay.tarball.display()
                ))
            })?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        // Next to the overlay's directory (`/lava-12-overlay.tar.gz`), named after it: boards
        // that share a file system (a test harness's) never share the file.
        let tarball = format!("{}-overlay.tar.gz", overlay.settings.results_dir);
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(LINE_BYTES)
            .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
            .collect();
        self.log.info(&format!(
            "Sending the LAVA overlay over the console: {} bytes in {} lines of base64",
            bytes.len(),
            lines.len()
        ));
        self.sync(deadline)?;
        self.expecter.send(&format!("base64 -d > {tarball}\n"))?;
        for chunk in lines.chunks(LINES_PER_ACK) {
            let mut text = chunk.join("\n");
            text.push('\n');
            self.expecter.send(&text)?;
            if let Some(last) = chunk.last() {
                // Base64 holds no regex syntax but `+`, which escape() takes care of.
                self.expecter
                    .expect(&[regex::escape(last)], left(deadline))
                    .map_err(|e| {
                        Failure::infrastructure(format!(
                            "the board stopped taking the LAVA overlay: {e}"
                        ))
                    })?;
            }
        }
        // End of file for base64 (the terminal's VEOF, Ctrl-D, at the start of a line).
        self.expecter.send("\u{4}")?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        self.run_checked(&format!("tar -C / -xzf {tarball}"), deadline)
            .map_err(|e| {
                Failure::job(format!(
                    "the board could not unpack the LAVA overlay sent over its console (it \
                     needs base64 and tar with gzip): {}",
                    e.message
                ))
            })?;
        self.run_line(&format!("rm -f {tarball}"), deadline)
    }

    /// LAVA's `transfer_overlay` (from the boot action): the board fetches the tarball with
    /// `download_command` from the worker (served for the length of the transfer) and
    /// unpacks it with `unpack_command`, each checked for its exit status.
    pub fn fetch_overlay(
        &mut self,
        overlay: &Overlay,
        transfer: &Value,
        server: (&str, &str),
        deadline: Instant,
    ) -> Result<(), Failure> {
        let field = |key: &str| transfer.get(key).and_then(Value::as_str);
        let method = field("transfer_method").unwrap_or("http");
        if method != "http" {
            return Err(Failure::job(format!(
                "transfer_overlay: transfer_method {method} is not built in Basalt; use http, \
                 or leave transfer_overlay out and the overlay is sent over the console"
            )));
        }
        let (Some(download), Some(unpack)) = (field("download_command"), field("unpack_command"))
        else {
            return Err(Failure::job(
                "transfer_overlay needs download_command and unpack_command",
            ));
        };
        let (ip, job_id) = server;
        let serving =
            super::overlay::serve::OverlayServer::start(ip, job_id, overlay.tarball.clone())
                .map_err(|e| {
                    Failure::infrastructure(format!(
                        "cannot serve the LAVA overlay on {ip} for transfer_overlay: {e}"
                    ))
                })?;
        let name = overlay
            .tarball
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.log.info(&format!(
            "Transferring the LAVA overlay from {}",
            serving.url()
        ));
        self.sync(deadline)?;
        self.run_line(&format!("rm {name}"), deadline)?;
        self.run_checked(&format!("{download} {}", serving.url()), deadline)?;
        self.run_checked(&format!("{unpack} {name}"), deadline)?;
        drop(serving);
        Ok(())
    }

    /// Runs one stage of definitions through the overlay's `lava-test-runner`.
    pub fn run_stage(
        &mut self,
        overlay: &Overlay,
        stage: usize,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), Failure> {
        let settings = &overlay.settings;
        self.run_line(&format!("export SHELL={}", settings.sh_cmd), deadline)?;
        self.run_checked(&format!(". {}/environment", settings.results_dir), deadline)?;
        let runner = format!(
            "{}/bin/lava-test-runner {}",
            settings.results_dir,
            settings.stage_dir(stage)
        );
        self.log.info(&format!(
            "Test shell timeout: {}s (the action's)",
            left(deadline).as_secs()
        ));
        self.log.debug(&format!("Sending line: {runner:?}"));
        self.expecter.send(&format!("{runner}\n"))?;
        let mut director = Director::new(
            self.log,
            overlay.stage(stage).collect(),
            &self.namespace,
            &self.level,
        );
        let mut pattern: Option<String> = None;
        let outcome = loop {
            let mut patterns = vec![
                regex::escape(RUNNER_EXIT),
                regex::escape(RUNNER_INSTALL_FAIL),
                SIGNAL_PATTERN.to_owned(),
            ];
            if let Some(p) = &pattern {
                patterns.push(format!("(?m){p}"));
            }
            let found = match self.expecter.expect(&patterns, left(deadline)) {
                Ok(found) => found,
                Err(e) => {
                    let failure = Failure::from(e);
                    break Err(match failure.class {
                        FailureClass::Infrastructure if left(deadline).is_zero() => Failure::new(
                            FailureClass::Test,
                            format!(
                                "lava-test-shell timed out after {} seconds",
                                started.elapsed().as_secs()
                            ),
                        ),
                        _ => failure,
                    });
                }
            };
            match found.index {
                0 => {
                    self.log.info("ok: lava_test_shell seems to have completed");
                    break Ok(());
                }
                1 => director.install_failed(stage),
                2 => {
                    let Some(captures) = SIGNAL.captures(&found.matched) else {
                        continue;
                    };
                    let name = captures.get(1).map_or("", |m| m.as_str());
                    let params = captures.get(2).map_or("", |m| m.as_str());
                    match director.signal(name, params) {
                        Ok(Next::Continue) => {}
                        Ok(Next::Pattern(p)) => pattern = p,
                        Err(failure) => break Err(failure),
                    }
                }
                _ => {
                    // An empty match leaves the console where it was: it would match again
                    // forever.
                    if found.matched.is_empty() {
                        break Err(Failure::job(format!(
                            "the parse pattern {:?} matched empty text; it must match at \
                             least one character",
                            pattern.as_deref().unwrap_or_default()
                        )));
                    }
                    if let Some(p) = &pattern {
                        director.pattern_match(&named_groups(p, &found.matched));
                    }
                }
            }
        };
        let finished = director.finish();
        outcome?;
        finished?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    /// Runs the `monitors:` of a test action, as LAVA's `lava-test-monitor` does for boards
    /// without a shell (RTOS images): for each monitor, waits for its `start` message, then
    /// records every match of its `pattern` until its `end` message.
    pub fn run_monitors(
        &mut self,
        params: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let Some(monitors) = params.get("monitors").and_then(Value::as_array) else {
            return Ok(());
        };
        for monitor in monitors {
            let field = |key: &str| monitor.get(key).and_then(Value::as_str).unwrap_or("");
            let suite = field("name").replace(' ', "-").to_lowercase();
            let (start, end, pattern) = (field("start"), field("end"), field("pattern"));
            if start.is_empty() || end.is_empty() || pattern.is_empty() {
                return Err(Failure::job(format!(
                    "monitor {suite:?} needs start, end and pattern"
                )));
            }
            let fixup = monitor
                .get("fixupdict")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            self.log
                .info(&format!("Waiting for start message: {start}"));
            self.expecter
                .expect(&[start.to_owned()], left(deadline))
                .map_err(|e| Failure::new(FailureClass::Test, format!("{suite}: {e}")))?;
            self.log
                .info("ok: start string found, lava test monitoring started");
            loop {
                let found = match self
                    .expecter
                    .expect(&[end.to_owned(), pattern.to_owned()], left(deadline))
                {
                    Ok(found) => found,
                    Err(e) => {
                        self.log.warning("err: lava test monitoring has timed out");
                        return Err(Failure::new(
                            FailureClass::Test,
                            format!("{suite}: lava test monitoring has timed out: {e}"),
                        ));
                    }
                };
                if found.index == 0 {
                    self.log
                        .info("ok: end string found, lava test monitoring stopped");
                    break;
                }
                if found.matched.is_empty() {
                    return Err(Failure::job(format!(
                        "{suite}: the pattern {pattern:?} matched empty text; it must match at \
                         least one character"
                    )));
                }
                let groups = named_groups(pattern, &found.matched);
                let text = |key: &str| groups.get(key).and_then(Value::as_str);
                let Some(id) = text("test_case_id") else {
                    continue;
                };
                let case = non_word_runs(&id.trim().to_lowercase());
                let mut fields = vec![
                    ("definition", Value::from(suite.clone())),
                    ("case", Value::from(case)),
                    ("level", Value::from(self.level.clone())),
                ];
                match text("result") {
                    Some(result) => {
                        let result = fixup
                            .get(result)
                            .and_then(Value::as_str)
                            .unwrap_or(result)
                            .to_owned();
                        if !matches!(result.as_str(), "pass" | "fail" | "skip" | "unknown") {
                            self.log
                                .error(&format!("error: bad test results: {result}"));
                            continue;
                        }
                        fields.push(("result", Value::from(result)));
                        if let Some(m) = text("measurement") {
                            match m.parse::<f64>() {
                                Ok(m) => fields.push(("measurement", Value::from(m))),
                                Err(_) => {
                                    self.log.error(&format!("Invalid measurement '{m}'"));
                                    continue;
                                }
                            }
                        }
                        if let Some(units) = text("units") {
                            fields.push(("units", Value::from(units)));
                        }
                    }
                    None => {
                        let Some(m) = text("measurement").and_then(|m| m.parse::<f64>().ok())
                        else {
                            continue;
                        };
                        fields.push(("result", Value::from("pass")));
                        fields.push(("measurement", Value::from(m)));
                        if let Some(units) = text("units") {
                            fields.push(("units", Value::from(units)));
                        }
                    }
                }
                self.log.result(&fields);
            }
        }
        Ok(())
    }

    /// Records one case of an interactive test.
    fn record(&mut self, suite: &str, case: &str, result: &str) {
        let fields = [
            ("definition", Value::from(suite)),
            ("case", Value::from(case)),
            ("result", Value::from(result)),
        ];
        self.log.result(&fields);
    }

    /// Runs the `interactive:` tests of a test action.
    pub fn run_interactives(
        &mut self,
        params: &Map<String, Value>,
        suite_base: usize,
        deadline: Instant,
    ) -> Result<usize, Failure> {
        let mut suites = 0;
        if let Some(interactive) = params.get("interactive").and_then(Value::as_array) {
            self.sync(deadline)?;
            for item in interactive {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("interactive");
                let suite = format!("{}_{name}", suite_base + suites);
                self.run_interactive(&suite, item, deadline)?;
                suites += 1;
            }
        }
        Ok(suites)
    }

    fn run_interactive(
        &mut self,
        suite: &str,
        item: &Value,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let mut prompts = string_list(item.get("prompts"));
        if prompts.is_empty() {
            prompts = self.prompts.clone();
        }
        let steps = item
            .get("script")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            let name = step
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("step-{}", i + 1));
            if let Some(command) = step.get("command").and_then(Value::as_str) {
                self.expecter.send(&format!("{command}\n"))?;
            }
            let messages = |key: &str| -> Vec<Value> {
                step.get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let successes = messages("successes");
            let failures = messages("failures");
            if successes.is_empty() && failures.is_empty() {
                self.expecter.expect(&prompts, left(deadline))?;
                continue;
            }
            let patterns: Vec<String> = successes
                .iter()
                .chain(failures.iter())
                .filter_map(|m| m.get("message").and_then(Value::as_str))
                .map(regex::escape)
                .collect();
            let found = self
                .expecter
                .expect(&patterns, left(deadline))
                .map_err(|e| Failure::job(format!("{suite}: {name}: no expected message: {e}")))?;
            let passed = found.index < successes.len();
            self.record(suite, &name, if passed { "pass" } else { "fail" });
            if !passed {
                if let Some(failure) = failures.get(found.index - successes.len()) {
                    if let Some(exception) = failure.get("exception").and_then(Value::as_str) {
                        let class = match exception {
                            "InfrastructureError" => FailureClass::Infrastructure,
                            "JobError" => FailureClass::Job,
                            _ => FailureClass::Test,
                        };
                        let error = failure.get("error").and_then(Value::as_str).unwrap_or("");
                        return Err(Failure::new(class, format!("{suite}: {name}: {error}")));
                    }
                }
            }
            self.expecter.expect(&prompts, left(deadline))?;
        }
        Ok(())
    }
}

/// `text` with each run of non-word characters made one `_`, as LAVA names monitored cases.
fn non_word_runs(text: &str) -> String {
    static NON_WORD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\W+").expect("valid non-word regex"));
    NON_WORD.replace_all(text, "_").into_owned()
}

/// The named groups of `pattern`'s match in `text`, as text.
fn named_groups(pattern: &str, text: &str) -> Map<String, Value> {
    let mut groups = Map::new();
    let Ok(regex) = Regex::new(&format!("(?m){pattern}")) else {
        return groups;
    };
    if let Some(captures) = regex.captures(text) {
        for name in regex.capture_names().flatten() {
            if let Some(m) = captures.name(name) {
                groups.insert(name.to_owned(), Value::from(m.as_str()));
            }
        }
    }
    groups
}
