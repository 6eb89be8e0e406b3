//! What the test shell makes of LAVA's signals (`<LAVA_SIGNAL_NAME params>`): results with
//! the fields LAVA records, test sets, references, expected cases, the `lava` suite's record
//! of each definition run, and the errors that end the action.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::dispatcher::failure::Failure;
use crate::dispatcher::log::JobLogger;
use crate::dispatcher::overlay::Definition;
use crate::failure::FailureClass;

/// A definition being run: between its STARTRUN and ENDRUN.
struct Run<'d> {
    definition: &'d Definition,
    started: Instant,
    /// The `parse:` pattern's fix-ups of result names (`PASS` → `pass`).
    fixup: Map<String, Value>,
    expected: Vec<String>,
    seen: Vec<String>,
}

/// Turns one stage's signals into results.
pub struct Director<'a, 'd> {
    log: &'a JobLogger,
    definitions: Vec<&'d Definition>,
    namespace: String,
    /// The level of the action running the tests (`3.1`), for the records LAVA gives one.
    level: String,
    run: Option<Run<'d>>,
    test_set: Option<String>,
    /// Cases between STARTTC and ENDTC: case → the log line of each.
    started_cases: Map<String, Value>,
    ended_cases: Map<String, Value>,
    /// Errors that fail the action once the runner is done (a failed install).
    errors: Vec<String>,
}

/// What a signal asks of the shell loop.
pub enum Next {
    /// Keep reading.
    Continue,
    /// The parse pattern of the definition now running, to watch for as well.
    Pattern(Option<String>),
}

impl<'a, 'd> Director<'a, 'd> {
    /// A director for `definitions` (one stage).
    pub fn new(
        log: &'a JobLogger,
        definitions: Vec<&'d Definition>,
        namespace: &str,
        level: &str,
    ) -> Self {
        Self {
            log,
            definitions,
            namespace: namespace.to_owned(),
            level: level.to_owned(),
            run: None,
            test_set: None,
            started_cases: Map::new(),
            ended_cases: Map::new(),
            errors: Vec::new(),
        }
    }

    /// The number of the line just logged.
    fn marker(&self) -> Value {
        Value::from(self.log.lines().saturating_sub(1))
    }

    /// Handles `<LAVA_SIGNAL_{name} {params}>`.
    pub fn signal(&mut self, name: &str, params: &str) -> Result<Next, Failure> {
        let words: Vec<&str> = params.split_whitespace().collect();
        self.log
            .debug(&format!("Received signal: <{name}> {}", words.join(" ")));
        match name {
            "STARTRUN" => return self.start_run(&words),
            "ENDRUN" => {
                self.end_run(&words);
                return Ok(Next::Pattern(None));
            }
            "STARTTC" => {
                if let Some(case) = words.first() {
                    let line = self.marker();
                    self.started_cases.insert((*case).to_owned(), line);
                }
            }
            "ENDTC" => {
                if let Some(case) = words.first() {
                    let line = self.marker();
                    self.ended_cases.insert((*case).to_owned(), line);
                }
            }
            "TESTCASE" => self.test_case(&words)?,
            "TESTSET" => match words.first().copied() {
                Some("START") => {
                    let name = words
                        .get(1)
                        .ok_or_else(|| Failure::job("Test set declared without a name"))?;
                    self.log.info(&format!("Starting test_set {name}"));
                    self.test_set = Some((*name).to_owned());
                }
                Some("STOP") => {
                    if let Some(set) = self.test_set.take() {
                        self.log.info(&format!("Closing test_set {set}"));
                    }
                }
                _ => self.log.error(&format!("Invalid TESTSET signal: {params}")),
            },
            "TESTREFERENCE" => {
                let [case, result, reference] = words[..] else {
                    return Err(Failure::new(
                        FailureClass::Test,
                        "Invalid use of TESTREFERENCE",
                    ));
                };
                let suite = self.suite()?;
                let mut fields = vec![
                    ("case", Value::from(case)),
                    ("definition", Value::from(suite)),
                    ("result", Value::from(result)),
                    ("reference", Value::from(reference)),
                ];
                if let Some(set) = &self.test_set {
                    fields.push(("set", Value::from(set.clone())));
                }
                self.record(fields);
            }
            "TESTRAISE" => {
                return Err(Failure::new(FailureClass::Test, words.join(" ")));
            }
            "TESTEVENT" => self.log.info(&format!("event: {}", words.join(" "))),
            "TESTFEEDBACK" => {
                // Basalt runs one namespace per job; there is no other console to read.
                let namespace = words.first().copied().unwrap_or_default();
                if namespace != self.namespace {
                    self.log
                        .error(&format!("{namespace} is not a valid namespace"));
                }
            }
            _ => {}
        }
        Ok(Next::Continue)
    }

    fn suite(&self) -> Result<String, Failure> {
        self.run
            .as_ref()
            .map(|run| run.definition.suite.clone())
            .ok_or_else(|| {
                self.log.error(
                    "Unknown test uuid. The STARTRUN signal for this test action was not \
                     received correctly.",
                );
                Failure::new(FailureClass::Test, "Invalid TESTCASE signal")
            })
    }

    fn start_run(&mut self, words: &[&str]) -> Result<Next, Failure> {
        let [suite, uuid, ..] = words[..] else {
            return Err(Failure::new(FailureClass::Test, "Invalid signal"));
        };
        let Some(definition) = self.definitions.iter().find(|d| d.suite == suite).copied() else {
            self.log.error(&format!(
                "STARTRUN for {suite}, which this stage does not run"
            ));
            return Ok(Next::Continue);
        };
        self.log
            .info(&format!("Starting test lava.{suite} ({uuid})"));
        let pattern = definition
            .testdef
            .pointer("/parse/pattern")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let fixup = definition
            .testdef
            .pointer("/parse/fixupdict")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match &pattern {
            Some(p) => self
                .log
                .info(&format!("Enabling test definition pattern {p:?}")),
            None => self.log.debug("Skipping test definition patterns."),
        }
        self.run = Some(Run {
            definition,
            started: Instant::now(),
            fixup,
            expected: definition.expected(),
            seen: Vec::new(),
        });
        Ok(Next::Pattern(pattern))
    }

    fn end_run(&mut self, words: &[&str]) {
        let Some(run) = self.run.take() else {
            self.log
                .error(&format!("ENDRUN {} without its STARTRUN", words.join(" ")));
            return;
        };
        self.report_missing(&run);
        let duration = run.started.elapsed().as_secs_f64();
        let definition = run.definition;
        self.log.info("Ending use of test pattern.");
        self.log.info(&format!(
            "Ending test lava.{} ({}), duration {duration:.02}",
            definition.suite, definition.uuid
        ));
        let field = |key: &str| {
            definition
                .params
                .get(key)
                .cloned()
                .unwrap_or(Value::from(""))
        };
        let mut fields = vec![
            ("definition", Value::from("lava")),
            ("case", Value::from(definition.suite.clone())),
            ("uuid", Value::from(definition.uuid.clone())),
            ("repository", field("repository")),
            ("path", field("path")),
            ("duration", Value::from(format!("{duration:.02}"))),
            ("result", Value::from("pass")),
            (
                "revision",
                definition
                    .params
                    .get("revision")
                    .cloned()
                    .unwrap_or(Value::from("unspecified")),
            ),
            ("namespace", Value::from(self.namespace.clone())),
        ];
        if let Some(commit) = &definition.commit_id {
            fields.push(("commit_id", Value::from(commit.clone())));
        }
        self.record(fields);
    }

    /// Cases the definition was expected to report and did not, recorded as `fail`.
    fn report_missing(&mut self, run: &Run<'_>) {
        let mut missing: Vec<&String> = run
            .expected
            .iter()
            .filter(|case| !run.seen.contains(case))
            .collect();
        if missing.is_empty() {
            return;
        }
        missing.sort();
        self.log
            .warning("Reporting missing expected test cases as 'fail' ...");
        for case in missing {
            let mut extra = Map::new();
            extra.insert(
                "reason".into(),
                Value::from("missing expected test cases are reported as 'fail' by LAVA."),
            );
            let mut fields = vec![
                ("definition", Value::from(run.definition.suite.clone())),
                ("case", Value::from(case.clone())),
                ("result", Value::from("fail")),
                ("level", Value::from(self.level.clone())),
                ("extra", Value::Object(extra)),
            ];
            if let Some(set) = &self.test_set {
                fields.push(("set", Value::from(set.clone())));
            }
            self.record(fields);
        }
    }

    fn test_case(&mut self, words: &[&str]) -> Result<(), Failure> {
        let suite = self.suite()?;
        let mut fields = Map::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                self.log.error(&format!(
                    "Ignoring malformed parameter for signal: \"{word}\". "
                ));
                return Ok(());
            };
            fields.insert(key.to_ascii_lowercase(), Value::from(value));
        }
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(case), Some(result)) = (text("test_case_id"), text("result")) else {
            self.log.error("TESTCASE without TEST_CASE_ID or RESULT");
            return Ok(());
        };
        self.add_case(
            &suite,
            &case,
            &result,
            text("measurement"),
            text("units"),
            true,
        );
        Ok(())
    }

    /// A match of the running definition's `parse: pattern:` (its named groups).
    pub fn pattern_match(&mut self, groups: &Map<String, Value>) {
        let Ok(suite) = self.suite() else { return };
        let text = |key: &str| groups.get(key).and_then(Value::as_str).map(str::to_owned);
        let Some(case) = text("test_case_id") else {
            return;
        };
        if case.trim().replace('/', "_").contains(' ') {
            self.log
                .debug(&format!("Skipping invalid test_case_id '{}'", case.trim()));
            return;
        }
        let Some(result) = text("result") else { return };
        self.add_case(
            &suite,
            &case,
            &result,
            text("measurement"),
            text("units"),
            false,
        );
    }

    fn add_case(
        &mut self,
        suite: &str,
        case: &str,
        result: &str,
        measurement: Option<String>,
        units: Option<String>,
        signalled: bool,
    ) {
        let line = self.marker();
        let fixup = self
            .run
            .as_ref()
            .map(|r| r.fixup.clone())
            .unwrap_or_default();
        let mut result = match fixup.get(result).and_then(Value::as_str) {
            Some(fixed) => fixed.to_owned(),
            None if fixup.is_empty() => match result {
                "PASS" => "pass".into(),
                "FAIL" => "fail".into(),
                "SKIP" => "skip".into(),
                "UNKNOWN" => "unknown".into(),
                other => other.to_owned(),
            },
            None => result.to_owned(),
        };
        if !matches!(result.as_str(), "pass" | "fail" | "skip" | "unknown") {
            self.log.error(&format!("Bad test result: '{result}'"));
            return;
        }
        let measurement = match measurement {
            Some(m) => match m.parse::<f64>() {
                Ok(value) => Some(value),
                Err(_) => {
                    self.log.error(&format!("Invalid measurement '{m}'"));
                    return;
                }
            },
            None => None,
        };
        if let Some(run) = self.run.as_mut() {
            if !run.expected.is_empty() && !run.expected.iter().any(|e| e == case) {
                self.log
                    .warning(&format!("'{case}' not found in expected test case list!"));
                if result != "fail" {
                    self.log.warning(&format!(
                        "Forcing unexpected '{case}' result '{result}' to 'fail' ..."
                    ));
                    result = "fail".into();
                }
            }
            run.seen.push(case.to_owned());
        }
        let mut fields = vec![
            ("definition", Value::from(suite)),
            ("case", Value::from(case)),
            ("result", Value::from(result)),
        ];
        if let Some(m) = measurement {
            fields.push(("measurement", Value::from(m)));
            if let Some(units) = units {
                fields.push(("units", Value::from(units)));
            }
        }
        if signalled {
            if let Some(set) = &self.test_set {
                fields.push(("set", Value::from(set.clone())));
            }
        }
        let start = self.started_cases.remove(case).unwrap_or(line.clone());
        let end = self.ended_cases.remove(case).unwrap_or(line);
        fields.push(("starttc", start));
        fields.push(("endtc", end));
        self.record(fields);
    }

    /// Logs a results record and keeps it for `results.yaml`.
    fn record(&mut self, fields: Vec<(&str, Value)>) {
        self.log.result(&fields);
    }

    /// `<LAVA_TEST_RUNNER INSTALL_FAIL>`: the definition's install.sh failed; its run.sh is
    /// skipped and the action fails when the runner is done.
    pub fn install_failed(&mut self, stage: usize) {
        self.log.error(&format!(
            "Unable to start stage {stage}. Read the log for more details."
        ));
        self.errors
            .push(format!("Unable to start test stage {stage}"));
    }

    /// The runner is done (or the action ends otherwise): a definition still running is
    /// recorded as failed, and a failed install fails the action.
    pub fn finish(&mut self) -> Result<(), Failure> {
        self.test_set = None;
        if let Some(run) = self.run.take() {
            self.log.error("Marking unfinished test run as failed");
            let duration = run.started.elapsed().as_secs_f64();
            self.record(vec![
                ("definition", Value::from("lava")),
                ("case", Value::from(run.definition.suite.clone())),
                ("uuid", Value::from(run.definition.uuid.clone())),
                ("result", Value::from("fail")),
                ("duration", Value::from(format!("{duration:.02}"))),
            ]);
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(FailureClass::Test, self.errors.join("; ")))
        }
    }
}
