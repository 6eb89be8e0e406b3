//! Test actions on the board's shell: LAVA test definitions and interactive tests.
//!
//! A definition's steps become a `run.sh` that reports with LAVA's signal protocol
//! (`<LAVA_SIGNAL_STARTRUN …>`, `<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=… RESULT=…>`,
//! `<LAVA_SIGNAL_ENDRUN …>`) through the `lava-test-*` helpers. Scripts and helpers are typed
//! into the board's shell as here-documents, so any POSIX shell on any console will do, with
//! no network on the board. The helpers build each signal with `printf` from pieces, so the
//! board echoing the scripts back never looks like a signal.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};

use super::archive::Compression;
use super::download::{download, Checksums, Limits};
use super::failure::Failure;
use super::log::JobLogger;
use super::results::{CaseResult, Results};
use crate::console::Expecter;
use crate::data::string_list;
use crate::failure::FailureClass;
use crate::job::confine;

/// What a signal looks like in the console output.
const SIGNAL_PATTERN: &str = r"<LAVA_SIGNAL_(\w+)([^>\r\n]*)>";

static SIGNAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SIGNAL_PATTERN).expect("valid signal regex"));

/// The end of a here-document; never appears in a script we send.
const HEREDOC_END: &str = "BASALT_HEREDOC_END";

/// The helper commands test definitions call.
const HELPERS: &[(&str, &str)] = &[
    (
        "lava-test-case",
        r#"#!/bin/sh
# lava-test-case NAME --result pass|fail|skip|unknown [--measurement M] [--units U]
# lava-test-case NAME --shell COMMAND...
NAME="$1"; shift
RESULT=""; MEASUREMENT=""; UNITS=""
if [ "$1" = "--shell" ]; then
    shift
    if "$@"; then RESULT=pass; else RESULT=fail; fi
else
    while [ $# -gt 0 ]; do
        case "$1" in
            --result) RESULT="$2"; shift 2 ;;
            --measurement) MEASUREMENT="$2"; shift 2 ;;
            --units) UNITS="$2"; shift 2 ;;
            *) shift ;;
        esac
    done
fi
SIG="TEST_CASE_ID=$NAME RESULT=${RESULT:-unknown}"
[ -n "$MEASUREMENT" ] && SIG="$SIG MEASUREMENT=$MEASUREMENT"
[ -n "$UNITS" ] && SIG="$SIG UNITS=$UNITS"
printf '<%s_SIGNAL_%s %s>\n' LAVA TESTCASE "$SIG"
"#,
    ),
    (
        "lava-test-set",
        r#"#!/bin/sh
# lava-test-set start|stop NAME
printf '<%s_SIGNAL_%s %s %s>\n' LAVA TESTSET "$(echo "$1" | tr a-z A-Z)" "$2"
"#,
    ),
    (
        "lava-test-raise",
        r#"#!/bin/sh
# lava-test-raise MESSAGE: stop the job with a test error
printf '<%s_SIGNAL_%s %s>\n' LAVA TESTRAISE "$*"
"#,
    ),
    (
        "lava-test-reference",
        r#"#!/bin/sh
# lava-test-reference NAME --result R --reference URL
NAME="$1"; RESULT="$3"; REF="$5"
printf '<%s_SIGNAL_%s TEST_CASE_ID=%s RESULT=%s REFERENCE=%s>\n' LAVA TESTREFERENCE "$NAME" "$RESULT" "$REF"
"#,
    ),
];

/// Everything a test action needs from the runner.
pub struct TestShell<'a> {
    /// The board's console.
    pub expecter: &'a mut Expecter,
    /// The shell prompt patterns (from the boot action).
    pub prompts: Vec<String>,
    /// The job log.
    pub log: &'a JobLogger,
    /// Where results go.
    pub results: &'a mut Results,
    /// The job's directory on the worker (for cloning test repositories).
    pub workdir: &'a Path,
    /// The directory on the board for scripts (`/lava-<id>`).
    pub board_dir: String,
    /// The worker's environment for every test script (`env.dut.yaml`).
    pub dut_env: &'a super::DutEnvironment,
    /// The worker's directories whose files may be read (`file://`, local repositories).
    pub local_files: &'a super::LocalFiles,
}

/// The LAVA overlay's helpers as files on the board: `BOARD_DIR/bin/NAME` and the script.
/// Typed into the shell before tests run, and put into ramdisks and root file systems where
/// a deploy asks for the overlay (`overlays: {lava: true}`, `install_overlay`).
pub(super) fn overlay_helpers(board_dir: &str) -> Vec<(String, &'static str)> {
    HELPERS
        .iter()
        .map(|(name, body)| (format!("{board_dir}/bin/{name}"), *body))
        .collect()
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r#"'"'"'"#))
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl TestShell<'_> {
    /// Sends a line and waits for the prompt.
    fn run_line(&mut self, line: &str, deadline: Instant) -> Result<(), Failure> {
        self.expecter.send(&format!("{line}\n"))?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    /// Makes sure the shell is at a prompt before typing into it.
    fn sync(&mut self, deadline: Instant) -> Result<(), Failure> {
        self.run_line("", deadline)
    }

    /// Writes files on the board with here-documents, in one shell command.
    fn send_files(&mut self, files: &[(String, String)], deadline: Instant) -> Result<(), Failure> {
        let mut text = String::from("{\n");
        for (path, content) in files {
            if let Some(parent) = Path::new(path).parent() {
                text.push_str(&format!(
                    "mkdir -p {}\n",
                    quote(&parent.display().to_string())
                ));
            }
            text.push_str(&format!("cat > {} << '{HEREDOC_END}'\n", quote(path)));
            text.push_str(content);
            if !content.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(HEREDOC_END);
            text.push('\n');
            text.push_str(&format!("chmod +x {}\n", quote(path)));
        }
        text.push_str("}\n");
        self.expecter.send(&text)?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    fn install_helpers(&mut self, deadline: Instant) -> Result<(), Failure> {
        let files: Vec<(String, String)> = overlay_helpers(&self.board_dir)
            .into_iter()
            .map(|(path, body)| (path, body.to_owned()))
            .collect();
        self.send_files(&files, deadline)
    }

    /// Runs a `test:` action: its definitions, then its interactive tests. Returns how many
    /// suites it ran, so the next action numbers its suites after them.
    pub fn run(
        &mut self,
        params: &Map<String, Value>,
        suite_base: usize,
        deadline: Instant,
    ) -> Result<usize, Failure> {
        self.sync(deadline)?;
        let mut suites = 0;
        if let Some(definitions) = params.get("definitions").and_then(Value::as_array) {
            self.install_helpers(deadline)?;
            for definition in definitions {
                let empty = Map::new();
                let definition = definition.as_object().unwrap_or(&empty);
                let name = definition
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("test");
                let suite = format!("{}_{name}", suite_base + suites);
                self.run_definition(&suite, definition, deadline)?;
                suites += 1;
            }
        }
        if let Some(interactive) = params.get("interactive").and_then(Value::as_array) {
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

    fn load_definition(
        &self,
        suite: &str,
        definition: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<Value, Failure> {
        let from = definition.get("from").and_then(Value::as_str).unwrap_or("");
        let repository = definition.get("repository");
        let path = definition.get("path").and_then(Value::as_str).unwrap_or("");
        match from {
            "inline" => repository
                .filter(|r| r.is_object())
                .cloned()
                .ok_or_else(|| {
                    Failure::job(format!(
                        "{suite}: an inline definition needs repository: <the test definition>"
                    ))
                }),
            "git" => {
                let repo = repository.and_then(Value::as_str).ok_or_else(|| {
                    Failure::job(format!(
                        "{suite}: a git definition needs repository: <url or path>"
                    ))
                })?;
                let relative = definition_path(suite, path)?;
                let local = self.git_source(suite, repo)?;
                let checkout = self.workdir.join("tests").join(suite);
                let mut clone = git_command(local);
                clone.args(["clone", "--quiet"]);
                if let Some(branch) = definition.get("branch").and_then(Value::as_str) {
                    clone.args(["--branch", branch]);
                }
                clone.arg("--").arg(repo).arg(&checkout);
                run_git(clone, deadline, &format!("{suite}: git clone {repo}"))?;
                if let Some(revision) = definition.get("revision").and_then(Value::as_str) {
                    if revision.starts_with('-') {
                        return Err(Failure::job(format!(
                            "{suite}: revision {revision:?} is not a revision"
                        )));
                    }
                    let mut checkout_cmd = git_command(local);
                    checkout_cmd
                        .arg("-C")
                        .arg(&checkout)
                        .args(["checkout", "--quiet", revision, "--"]);
                    run_git(
                        checkout_cmd,
                        deadline,
                        &format!("{suite}: git checkout {revision}"),
                    )?;
                }
                // The repository is the submitter's: a symlink in it may point anywhere.
                let file = confine::resolve_inside(&checkout, relative)
                    .map_err(|e| Failure::job(format!("{suite}: test definition {path}: {e}")))?;
                read_definition(&file, suite)
            }
            "url" => {
                let url = repository.and_then(Value::as_str).ok_or_else(|| {
                    Failure::job(format!("{suite}: a url definition needs repository: <url>"))
                })?;
                let target = self.workdir.join(format!("{suite}.yaml"));
                download(
                    url,
                    Compression::None,
                    &target,
                    Limits::within(left(deadline)),
                    self.local_files,
                    Checksums::default(),
                    &|line| self.log.debug(line),
                )
                .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))?;
                read_definition(&target, suite)
            }
            other => Err(Failure::job(format!(
                "{suite}: unknown definition source '{other}'"
            ))),
        }
    }

    /// Whether `repo` is a repository on this worker (a path, `file://`), checked against
    /// the allowed directories; network repositories (`https://`, `git://`, `ssh://`,
    /// `user@host:path`) are `false`.
    fn git_source(&self, suite: &str, repo: &str) -> Result<bool, Failure> {
        if repo.starts_with('-') {
            return Err(Failure::job(format!(
                "{suite}: repository {repo:?} is not a repository"
            )));
        }
        let remote = ["http://", "https://", "git://", "ssh://"]
            .iter()
            .any(|scheme| repo.starts_with(scheme))
            || is_scp_like(repo);
        if remote {
            return Ok(false);
        }
        let path = repo.strip_prefix("file://").unwrap_or(repo);
        self.local_files
            .check(Path::new(path))
            .map_err(|e| Failure::job(format!("{suite}: repository: {e}")))?;
        Ok(true)
    }

    fn run_definition(
        &mut self,
        suite: &str,
        definition: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let test = self.load_definition(suite, definition, deadline)?;
        let steps: Vec<String> = test
            .pointer("/run/steps")
            .and_then(Value::as_array)
            .map(|steps| steps.iter().map(crate::data::text).collect())
            .unwrap_or_default();
        let mut script = String::from("#!/bin/sh\n");
        script.push_str(&self.dut_env.script_lines());
        let mut params = test
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in ["parameters", "params"] {
            if let Some(overrides) = definition.get(key).and_then(Value::as_object) {
                params.extend(overrides.clone());
            }
        }
        for (name, value) in &params {
            let value = crate::data::text(value);
            script.push_str(&format!("export {name}={}\n", quote(&value)));
        }
        let uuid = format!("{}_{}", std::process::id(), suite);
        script.push_str(&format!("export TESTRUN_ID={}\n", quote(suite)));
        script.push_str(&format!(
            "printf '<%s_SIGNAL_%s %s %s>\\n' LAVA STARTRUN {} {}\n",
            quote(suite),
            quote(&uuid)
        ));
        for step in &steps {
            script.push_str(step);
            script.push('\n');
        }
        script.push_str(&format!(
            "printf '<%s_SIGNAL_%s %s %s>\\n' LAVA ENDRUN {} {}\n",
            quote(suite),
            quote(&uuid)
        ));
        let script_path = format!("{}/{suite}/run.sh", self.board_dir);
        self.send_files(&[(script_path.clone(), script)], deadline)?;
        self.log
            .info(&format!("{suite}: running {} step(s)", steps.len()));
        self.expecter.send(&format!(
            "PATH={}/bin:$PATH sh {}\n",
            quote(&self.board_dir),
            quote(&script_path)
        ))?;
        self.collect_signals(suite, deadline)?;
        self.expecter.expect(&self.prompts, left(deadline))?;
        Ok(())
    }

    fn collect_signals(&mut self, suite: &str, deadline: Instant) -> Result<(), Failure> {
        let patterns = [SIGNAL_PATTERN.to_owned()];
        let mut test_set: Option<String> = None;
        loop {
            let found = self
                .expecter
                .expect(&patterns, left(deadline))
                .map_err(|e| match Failure::from(e) {
                    f if f.class == FailureClass::Infrastructure => Failure::job(format!(
                        "{suite} did not finish within the test timeout: {}",
                        f.message
                    )),
                    other => other,
                })?;
            let Some(captures) = SIGNAL.captures(&found.matched) else {
                continue;
            };
            let name = captures.get(1).map_or("", |m| m.as_str());
            let args = captures.get(2).map_or("", |m| m.as_str()).trim();
            let fields: Map<String, Value> = args
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            match name {
                "STARTRUN" => self.log.info(&format!("{suite}: started")),
                "ENDRUN" => {
                    self.log.info(&format!("{suite}: finished"));
                    return Ok(());
                }
                "TESTSET" => {
                    let mut words = args.split_whitespace();
                    test_set = match words.next() {
                        Some("START") => words.next().map(str::to_owned),
                        _ => None,
                    };
                }
                "TESTCASE" | "TESTREFERENCE" => {
                    self.record(suite, &fields, test_set.as_deref());
                }
                "TESTRAISE" => {
                    return Err(Failure::new(
                        FailureClass::Test,
                        format!("{suite}: lava-test-raise: {args}"),
                    ))
                }
                other => self.log.info(&format!("{suite}: ignoring signal {other}")),
            }
        }
    }

    fn record(&mut self, suite: &str, fields: &Map<String, Value>, set: Option<&str>) {
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let name = text("TEST_CASE_ID").unwrap_or_else(|| "unnamed".into());
        let result = match text("RESULT").as_deref() {
            Some(r @ ("pass" | "fail" | "skip" | "unknown")) => r.to_owned(),
            _ => "unknown".into(),
        };
        let measurement = text("MEASUREMENT").and_then(|m| m.parse::<f64>().ok());
        let units = text("UNITS");
        let mut entry = vec![
            ("definition", Value::from(suite)),
            ("case", Value::from(name.clone())),
            ("result", Value::from(result.clone())),
        ];
        if let Some(m) = measurement {
            entry.push(("measurement", Value::from(m)));
        }
        if let Some(u) = &units {
            entry.push(("units", Value::from(u.clone())));
        }
        if let Some(set) = set {
            entry.push(("set", Value::from(set)));
        }
        self.log.result(&entry);
        self.results.add(CaseResult {
            suite: suite.to_owned(),
            name,
            result,
            measurement,
            units,
            detail: set.map(str::to_owned),
        });
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
            let mut fields = Map::new();
            fields.insert("TEST_CASE_ID".into(), Value::from(name.clone()));
            fields.insert(
                "RESULT".into(),
                Value::from(if passed { "pass" } else { "fail" }),
            );
            self.record(suite, &fields, None);
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

/// A definition's `path:` inside its repository, checked to stay there.
fn definition_path<'p>(suite: &str, path: &'p str) -> Result<&'p Path, Failure> {
    confine::relative_path(path, "the repository")
        .map_err(|e| Failure::job(format!("{suite}: path: {e}")))
}

/// `git` with the transports a job may use: http(s), git and ssh always, local ones (`file`)
/// only for a repository the worker allows; never `ext` (it runs commands).
fn git_command(local: bool) -> Command {
    let mut git = Command::new("git");
    let allowed = if local {
        "http:https:git:ssh:file"
    } else {
        "http:https:git:ssh"
    };
    git.env("GIT_ALLOW_PROTOCOL", allowed)
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "protocol.ext.allow=never"]);
    git
}

fn read_definition(path: &Path, suite: &str) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::job(format!(
            "{suite}: cannot read test definition {}: {e}",
            path.display()
        ))
    })?;
    crate::yaml11::from_str(&text).map_err(|e| {
        Failure::job(format!(
            "{suite}: {} is not valid YAML: {e}",
            path.display()
        ))
    })
}

/// git's scp-like syntax, `[user@]host:path`: a colon before any slash.
fn is_scp_like(repo: &str) -> bool {
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon < slash && colon > 0,
        (Some(colon), None) => colon > 0,
        _ => false,
    }
}

fn run_git(mut command: Command, deadline: Instant, what: &str) -> Result<(), Failure> {
    if left(deadline).is_zero() {
        return Err(Failure::job(format!("{what}: no time left")));
    }
    let output = command
        .output()
        .map_err(|e| Failure::infrastructure(format!("{what}: cannot run git: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Failure::job(format!(
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
