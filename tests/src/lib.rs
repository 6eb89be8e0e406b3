//! Harness for Basalt's end-to-end tests: the real `basalt` binary and real plugin libraries,
//! run as separate processes in per-test directories.
//!
//! New tests go in `tests/tests/<area>.rs`. Build the workspace first (`cargo xtask test`
//! does); the harness finds `basalt` next to the test binary's directory, or at `BASALT_BIN`.
#![deny(missing_docs)]

pub mod board;
pub mod browser;
pub mod cluster;
pub mod simlab;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The directory holding `basalt` and the plugin libraries (`target/<profile>`).
pub fn build_dir() -> PathBuf {
    basalt_bin()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `basalt` binary under test.
pub fn basalt_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("BASALT_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> -> target/<profile>/basalt
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("basalt"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} does not exist: build the workspace first (`cargo build --workspace`, or run the \
         tests with `cargo xtask test`)",
        bin.display()
    );
    bin
}

/// A program built by this workspace's `tests` crate (e.g. `simboard`).
pub fn test_program(name: &str) -> PathBuf {
    let path = build_dir().join(name);
    assert!(
        path.is_file(),
        "{} does not exist: build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// A library built by this workspace, e.g. `library("basalt_power_command")`.
pub fn library(name: &str) -> PathBuf {
    let path = build_dir().join(format!("lib{name}.{}", std::env::consts::DLL_EXTENSION));
    assert!(
        path.is_file(),
        "{} does not exist: build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// A per-test directory, removed afterwards unless `BASALT_KEEP_TEST_DIR=1`.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// Creates a fresh directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("basalt-e2e-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().to_path_buf();
        if std::env::var_os("BASALT_KEEP_TEST_DIR").is_some_and(|v| v == "1") {
            eprintln!("keeping test directory {}", path.display());
            let _ = dir.keep();
            return Self { dir: None, path };
        }
        Self {
            dir: Some(dir),
            path,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// Creates a subdirectory and returns its path.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path).expect("create test subdirectory");
        path
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// What a finished command did.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Output {
    /// Panics with everything known about the run unless it succeeded.
    pub fn success(self) -> Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Panics with everything known about the run unless it failed.
    pub fn failure(self) -> Self {
        assert!(!self.status.success(), "expected failure:\n{self}");
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// `../shared/lava` (LAVA's templates, dictionaries, renderings and sample jobs), or `None`
/// outside CI when it is missing; under CI its absence fails the test.
pub fn lava_fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lava");
    if dir.join("jobs.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "LAVA fixtures missing at {}",
        dir.display()
    );
    None
}

/// Whether `program` is on `PATH`. Tests of third-party clients skip without them locally,
/// but CI (`CI=true`, or `BASALT_REQUIRE_TOOLS=1` as `.ci/run` sets after installing them)
/// fails instead.
pub fn tool_available(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        let required = std::env::var_os("BASALT_REQUIRE_TOOLS").is_some()
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !required,
            "{program} is not installed, and CI needs the tests that use it: install it \
             (.ci/run shows how)"
        );
        eprintln!("skipping: {program} is not installed (CI installs it)");
    }
    found
}

/// A `basalt` invocation, with `BASALT_*` variables of the caller's environment removed.
pub struct Basalt {
    command: Command,
    shown: String,
    timeout: Duration,
}

impl Basalt {
    /// `basalt <args>`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let bin = basalt_bin();
        let mut command = Command::new(&bin);
        let mut shown = String::from("basalt");
        for arg in args {
            shown.push(' ');
            shown.push_str(&arg.as_ref().to_string_lossy());
            command.arg(arg);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BASALT_") {
                command.env_remove(key);
            }
        }
        Self {
            command,
            shown,
            timeout: Duration::from_secs(60),
        }
    }

    /// Another program (`lavacli`, `chromium`), run with the same care: captured output, a
    /// timeout, `BASALT_*` variables removed.
    pub fn program<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut this = Self::new(std::iter::empty::<&str>());
        this.command = Command::new(program);
        this.shown = program.to_owned();
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BASALT_") {
                this.command.env_remove(key);
            }
        }
        for arg in args {
            this = this.arg(arg);
        }
        this
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Starts the command without waiting (stdout and stderr go to files in `dir`).
    pub fn spawn(mut self, dir: &Path) -> std::process::Child {
        let stdout = std::fs::File::create(dir.join("spawned.stdout")).expect("stdout file");
        let stderr = std::fs::File::create(dir.join("spawned.stderr")).expect("stderr file");
        self.command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown))
    }

    /// Limits every file the command (and what it starts) writes to `bytes` (RLIMIT_FSIZE,
    /// with SIGXFSZ ignored): a write that reaches the limit is cut short and then fails,
    /// as on a file system that fills up.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            self.command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        self
    }

    /// Sets how long `run` waits before killing the command.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to completion, killing the process if it outlives its timeout.
    pub fn run(mut self) -> Output {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown));
        let mut stdout_pipe = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout_pipe.read_to_string(&mut s);
            s
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for basalt") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not finish within {:?}", self.shown, self.timeout);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            command: self.shown,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

/// A job (a JSON object) as a job file: one top-level key per line, each value a JSON flow
/// collection, which YAML reads as the same data.
pub fn job_yaml(job: &serde_json::Value) -> String {
    let mut yaml = String::new();
    for (key, value) in job.as_object().into_iter().flatten() {
        yaml.push_str(&format!("{key}: {value}\n"));
    }
    yaml
}

/// The results `basalt run` wrote into `out` (`results.yaml`: JSON, which YAML readers read
/// too), one value per case.
pub fn results(out: &Path) -> Vec<serde_json::Value> {
    let path = out.join("results.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(cases)) => cases,
        other => panic!("{} is not a list of cases: {other:?}", path.display()),
    }
}

/// The case `name` of `suite` among `results`; fails the test, listing them, when absent.
pub fn case<'a>(
    results: &'a [serde_json::Value],
    suite: &str,
    name: &str,
) -> &'a serde_json::Value {
    results
        .iter()
        .find(|c| c["suite"] == suite && c["name"] == name)
        .unwrap_or_else(|| panic!("no {suite}/{name} in {results:#?}"))
}
