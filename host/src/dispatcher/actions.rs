//! LAVA's nested actions as the job log shows them: each action numbered under the one
//! running it (`1`, `1.4`, `1.4.1`), its start and end logged with its timeout, duration and
//! namespace, and its results recorded in the `lava` suite as LAVA's `log_action_results`
//! records them.
//!
//! The rules are LAVA's, so a lab's tools read a Basalt log as they read lava-run's:
//! - top-level actions log `start:`/`end:` at info, nested ones at debug;
//! - a child's level is its parent's and its place among the parent's children, counted
//!   again from 1 at each retry of the parent (LAVA re-runs the same pipeline);
//! - an action that ends well is recorded only when it has results of its own (a download's
//!   checksums, a test definition's overlay), with them as `extra`;
//! - an action that fails is recorded as failed, its error as `extra.fail`, and so is every
//!   action it ran under, as the error passes up through them.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::failure::Failure;
use super::log::JobLogger;
use crate::pipeline::hms;

/// One action running now.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    level: String,
    namespace: String,
    /// How many children it has started (in this attempt).
    children: usize,
}

/// The actions running now, outermost first.
#[derive(Debug, Default)]
pub(super) struct Stack {
    frames: Vec<Frame>,
}

/// What an action records of itself (LAVA's `self.results`).
pub type ActionResults = Map<String, Value>;

/// Where an action goes: at a level the pipeline gave it (a top-level action), or next among
/// the children of the action running now.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// A top-level action: its level and namespace.
    Top {
        /// `1`, `2`, ...
        level: &'a str,
        /// The job action's namespace.
        namespace: &'a str,
    },
    /// The next child of the running action.
    Child,
}

/// An action begun ([`JobLogger::begin`]) and not yet ended.
#[derive(Debug)]
pub struct Begun {
    name: String,
    level: String,
    namespace: String,
    top: bool,
    started: Instant,
}

impl JobLogger {
    /// Runs `body` as the action `name`, until `deadline`: logged, numbered and recorded as
    /// the module says. `body` may fill in the action's results.
    pub fn action<T>(
        &self,
        name: &str,
        place: Place<'_>,
        deadline: Instant,
        body: impl FnOnce(&mut ActionResults) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let begun = self.begin(name, place, deadline);
        let mut results = ActionResults::new();
        let outcome = body(&mut results);
        let failure = outcome.as_ref().err().map(|f| f.message.as_str());
        self.end(begun, results, failure);
        outcome
    }

    /// Begins the action `name`: its level given, its start logged. [`Self::end`] ends it;
    /// actions begun inside it must end first.
    pub fn begin(&self, name: &str, place: Place<'_>, deadline: Instant) -> Begun {
        let (level, namespace, top) = self.enter(place);
        let started = Instant::now();
        let begun = Begun {
            name: name.to_owned(),
            level,
            namespace,
            top,
            started,
        };
        let timeout = hms(round(deadline.saturating_duration_since(started)));
        self.action_line(&begun, "start", &format!("timeout {timeout}"));
        begun
    }

    /// Ends an action: its end logged, and its record (its results, or its `failure`).
    pub fn end(&self, begun: Begun, mut results: ActionResults, failure: Option<&str>) {
        let elapsed = begun.started.elapsed();
        self.leave();
        self.action_line(&begun, "end", &format!("duration {}", hms(round(elapsed))));
        let result = match failure {
            None => "pass",
            Some(failure) => {
                results = ActionResults::new();
                results.insert("fail".into(), Value::from(failure));
                "fail"
            }
        };
        if !results.is_empty() {
            self.action_result(
                &begun.name,
                (&begun.level, &begun.namespace),
                elapsed,
                result,
                Value::Object(results),
            );
        }
    }

    /// A `lava` record of an action (`case`) at its `(level, namespace)`, as LAVA writes one.
    fn action_result(
        &self,
        case: &str,
        (level, namespace): (&str, &str),
        duration: Duration,
        result: &str,
        extra: Value,
    ) {
        self.result(&[
            ("definition", Value::from("lava")),
            ("namespace", Value::from(namespace)),
            ("case", Value::from(case)),
            ("level", Value::from(level)),
            (
                "duration",
                Value::from(format!("{:.2}", duration.as_secs_f64())),
            ),
            ("result", Value::from(result)),
            ("extra", extra),
        ]);
    }

    fn action_line(&self, begun: &Begun, what: &str, detail: &str) {
        let line = format!(
            "{what}: {} {} ({detail}) [{}]",
            begun.level, begun.name, begun.namespace
        );
        if begun.top {
            self.info(&line);
        } else {
            self.debug(&line);
        }
    }

    /// Starts the running action's children from 1 again: it is being retried.
    pub fn restart_children(&self) {
        if let Some(frame) = self.actions().frames.last_mut() {
            frame.children = 0;
        }
    }

    /// The level of the action running now, if any (`1.1.3`).
    pub fn current_level(&self) -> Option<String> {
        self.actions().frames.last().map(|f| f.level.clone())
    }

    fn enter(&self, place: Place<'_>) -> (String, String, bool) {
        let mut stack = self.actions();
        let (level, namespace) = match (place, stack.frames.last_mut()) {
            (Place::Top { level, namespace }, _) => (level.to_owned(), namespace.to_owned()),
            (Place::Child, Some(parent)) => {
                parent.children += 1;
                (
                    format!("{}.{}", parent.level, parent.children),
                    parent.namespace.clone(),
                )
            }
            // Nothing runs it: the job's own steps outside any action (never in a job that
            // builds its actions through the runner; kept numbered rather than lost).
            (Place::Child, None) => ("0".to_owned(), "common".to_owned()),
        };
        let top = stack.frames.is_empty();
        stack.frames.push(Frame {
            level: level.clone(),
            namespace: namespace.clone(),
            children: 0,
        });
        (level, namespace, top)
    }

    fn leave(&self) {
        self.actions().frames.pop();
    }
}

/// A boot plugin's own actions ([`crate::console::BootActions`]), numbered under the boot's:
/// what the plugin began and has not ended yet, ended as failed when the boot returns
/// ([`PluginActions::close`]), so a plugin cannot leave the numbering unbalanced.
pub struct PluginActions {
    log: JobLogger,
    open: Vec<Begun>,
}

impl PluginActions {
    /// Actions of the job logged in `log`.
    pub fn new(log: &JobLogger) -> Self {
        Self {
            log: log.clone(),
            open: Vec::new(),
        }
    }

    /// Ends what the plugin left open.
    pub fn close(&mut self) {
        while let Some(begun) = self.open.pop() {
            self.log.end(
                begun,
                ActionResults::new(),
                Some("the boot plugin did not end this action"),
            );
        }
    }
}

impl crate::console::BootActions for PluginActions {
    fn start(&mut self, name: &str, timeout: Duration) {
        let begun = self.log.begin(name, Place::Child, Instant::now() + timeout);
        self.open.push(begun);
    }

    fn end(&mut self, results: &str, failure: Option<&str>) {
        let Some(begun) = self.open.pop() else {
            self.log
                .warning("the boot plugin ended an action it had not started");
            return;
        };
        let results = match serde_json::from_str(results) {
            Ok(Value::Object(results)) => results,
            _ => ActionResults::new(),
        };
        self.log.end(begun, results, failure);
    }

    fn record(&mut self, case: &str, result: &str, extra: &str, duration: Duration) {
        let (level, namespace) = self
            .log
            .actions()
            .frames
            .last()
            .map(|f| (f.level.clone(), f.namespace.clone()))
            .unwrap_or_else(|| ("0".into(), "common".into()));
        let extra = serde_json::from_str(extra).unwrap_or(Value::Object(ActionResults::new()));
        let result = if result == "fail" { "fail" } else { "pass" };
        self.log
            .action_result(case, (&level, &namespace), duration, result, extra);
    }
}

/// LAVA rounds durations and timeouts to whole seconds for its `start:` and `end:` lines.
fn round(elapsed: Duration) -> Duration {
    Duration::from_secs_f64(elapsed.as_secs_f64().round())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dir: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(dir.join("output.yaml"))
            .unwrap()
            .lines()
            .map(|l| crate::yaml11::from_str(l.trim_start_matches("- ")).unwrap())
            .collect()
    }

    #[test]
    fn children_are_numbered_under_their_parent_and_failures_recorded_up_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = JobLogger::create(dir.path(), false, Vec::new()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        let top = Place::Top {
            level: "2",
            namespace: "target",
        };
        let outcome: Result<(), Failure> = log.action("boot-image-retry", top, deadline, |_| {
            log.action("quiet", Place::Child, deadline, |_| Ok(()))?;
            log.action("measured", Place::Child, deadline, |results| {
                results.insert("size".into(), Value::from(3));
                Ok(())
            })?;
            log.restart_children();
            log.action("again", Place::Child, deadline, |_| {
                log.action("failing", Place::Child, deadline, |_| {
                    Err::<(), _>(Failure::infrastructure("no board"))
                })
            })
        });
        assert!(outcome.is_err());
        let lines = records(dir.path());
        let messages: Vec<String> = lines
            .iter()
            .filter(|l| l["lvl"] != "results")
            .map(|l| {
                format!(
                    "{} {}",
                    l["lvl"].as_str().unwrap(),
                    l["msg"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            messages,
            [
                "info start: 2 boot-image-retry (timeout 00:05:00) [target]",
                "debug start: 2.1 quiet (timeout 00:05:00) [target]",
                "debug end: 2.1 quiet (duration 00:00:00) [target]",
                "debug start: 2.2 measured (timeout 00:05:00) [target]",
                "debug end: 2.2 measured (duration 00:00:00) [target]",
                "debug start: 2.1 again (timeout 00:05:00) [target]",
                "debug start: 2.1.1 failing (timeout 00:05:00) [target]",
                "debug end: 2.1.1 failing (duration 00:00:00) [target]",
                "debug end: 2.1 again (duration 00:00:00) [target]",
                "info end: 2 boot-image-retry (duration 00:00:00) [target]",
            ]
        );
        let recorded: Vec<(String, String, String, Value)> = lines
            .iter()
            .filter(|l| l["lvl"] == "results")
            .map(|l| {
                let m = &l["msg"];
                (
                    m["case"].as_str().unwrap().to_owned(),
                    m["level"].as_str().unwrap().to_owned(),
                    m["result"].as_str().unwrap().to_owned(),
                    m["extra"].clone(),
                )
            })
            .collect();
        let fail = serde_json::json!({"fail": "no board"});
        assert_eq!(
            recorded,
            [
                (
                    "measured".into(),
                    "2.2".into(),
                    "pass".into(),
                    serde_json::json!({"size": 3})
                ),
                (
                    "failing".into(),
                    "2.1.1".into(),
                    "fail".into(),
                    fail.clone()
                ),
                ("again".into(), "2.1".into(), "fail".into(), fail.clone()),
                ("boot-image-retry".into(), "2".into(), "fail".into(), fail),
            ]
        );
        assert_eq!(log.results().cases().len(), 4);
        assert!(log.current_level().is_none());
    }
}
