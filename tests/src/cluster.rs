//! A master and a slave on 127.0.0.1 with the simulated board registered: the harness of the
//! master/slave tests. Daemons are real `basalt` processes; the master's first start binds
//! port 0 and reports the ports the kernel gave it in its ready file, so no other process
//! can hold a port between choosing and binding it; later starts reuse them (the slave
//! knows them). Fast protocol timing; each can be killed (`SIGKILL`) or stopped (`SIGTERM`) and started again on the
//! same data. Dropping the cluster kills every process whose command line names its
//! directory, job processes included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::simlab::{SimBoard, SimJob};
use crate::{basalt_bin, test_program, Basalt, Output, TestDir};

/// The ports a master (or a stand-in for one) listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The control socket.
    pub control: u16,
    /// The log socket.
    pub log: u16,
    /// The HTTP API (0 for a stand-in master, which has none).
    pub http: u16,
}

impl Ports {
    /// What a master's ready file (`--ready-file`) says, if it is there, whole and written
    /// by process `pid`.
    pub fn from_ready_file(file: &Path, pid: u32) -> Option<Self> {
        let text = std::fs::read(file).ok()?;
        let ready: Value = serde_json::from_slice(&text).ok()?;
        let port = |key: &str| ready[key].as_u64().and_then(|p| u16::try_from(p).ok());
        (ready["pid"].as_u64() == Some(u64::from(pid))).then_some(())?;
        Some(Self {
            control: port("control_port")?,
            log: port("log_port")?,
            http: port("http_port")?,
        })
    }
}

impl Ports {
    /// Waits up to 30 s for the master `child` to write `ready_file`; the error says why not
    /// (it exited, or wrote nothing).
    pub fn await_master(child: &mut Child, ready_file: &Path) -> Result<Self, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(ports) = Self::from_ready_file(ready_file, child.id()) {
                return Ok(ports);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the master exited ({status}) before it was ready"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the master wrote no ready file {} within 30 s",
                    ready_file.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits for the master `child` to write its ready file; fails with its log if it does not.
pub fn await_ready(child: &mut Child, ready_file: &Path, log: &Path) -> Ports {
    Ports::await_master(child, ready_file).unwrap_or_else(|why| {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{why}:\n{log}")
    })
}

/// Waits until `check` returns something, or panics saying what was awaited.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The variable that marks every process a cluster's daemons start with its directory.
const CLUSTER_VAR: &str = "E2E_CLUSTER";

/// A running daemon.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (VmRSS) in bytes, from /proc.
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// SIGKILL, as a crash or `kill -9` would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("daemon did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A master, a slave named `w1` and a simulated beaglebone-black `sim-01`.
pub struct Cluster {
    /// The test directory.
    pub dir: TestDir,
    /// The simulated board `sim-01`.
    pub board: SimBoard,
    /// The master's ports, once one has listened.
    ports: Option<Ports>,
    starts: u32,
    /// Where the certificates are, when the link is encrypted ([`Cluster::encrypted`]).
    certs: Option<PathBuf>,
    /// Whether the daemons run in the test directory and are given relative paths.
    relative: bool,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// Ports and directories; nothing started.
    pub fn new() -> Self {
        let dir = TestDir::new();
        let board = SimBoard::write(dir.path(), "sim-01", &test_program("simboard"), "")
            .expect("the simulated board's files");
        Self {
            dir,
            board,
            ports: None,
            starts: 0,
            certs: None,
            relative: false,
        }
    }

    /// Like [`Cluster::new`], with daemons started in the test directory and given their
    /// data and state directories as relative paths, as an admin in a shell might.
    pub fn with_relative_paths() -> Self {
        let mut cluster = Self::new();
        cluster.relative = true;
        cluster
    }

    /// The directory the slave's jobs may read files from: the test directory, as told
    /// (`.` when the daemons run in it with relative paths).
    fn local_file_dir(&self) -> String {
        match self.told(self.dir.path().to_path_buf()) {
            dir if dir.is_empty() => ".".to_owned(),
            dir => dir,
        }
    }

    /// `path` as the daemons are told it: relative to the test directory if so configured.
    fn told(&self, path: PathBuf) -> String {
        match path.strip_prefix(self.dir.path()) {
            Ok(relative) if self.relative => relative.display().to_string(),
            _ => path.display().to_string(),
        }
    }

    /// Like [`Cluster::new`], with an encrypted link: `basalt certs generate` writes the
    /// master's pair and pairs for workers `w1` and `w2`, whose public certificates the
    /// master admits (`certs/slaves/`).
    pub fn encrypted() -> Self {
        let mut cluster = Self::new();
        let certs = cluster.dir.path().join("certs");
        for name in ["master", "w1", "w2"] {
            let dir = certs.join(name);
            Basalt::new([
                "certs",
                "generate",
                name,
                "--dir",
                &dir.display().to_string(),
            ])
            .run()
            .success();
        }
        let slaves = certs.join("slaves");
        std::fs::create_dir_all(&slaves).expect("certs/slaves");
        for name in ["w1", "w2"] {
            std::fs::copy(
                certs.join(name).join(format!("{name}.key")),
                slaves.join(format!("{name}.key")),
            )
            .expect("copy a public certificate");
        }
        cluster.certs = Some(certs);
        cluster
    }

    /// A certificate file of an encrypted cluster: `cert("w1", true)` is w1's secret one.
    pub fn cert(&self, name: &str, secret: bool) -> PathBuf {
        let certs = self.certs.as_ref().expect("an encrypted cluster");
        let suffix = if secret { "key_secret" } else { "key" };
        certs.join(name).join(format!("{name}.{suffix}"))
    }

    /// The directory of the slaves' public certificates the master admits.
    pub fn slaves_certs(&self) -> PathBuf {
        self.certs
            .as_ref()
            .expect("an encrypted cluster")
            .join("slaves")
    }

    /// The master's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("master")
    }

    /// The slave's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("slave")
    }

    /// The master's control and log ports (after a master or a stand-in has listened).
    pub fn ports(&self) -> (u16, u16) {
        let ports = self.listening();
        (ports.control, ports.log)
    }

    fn listening(&self) -> Ports {
        self.ports
            .expect("no master has listened yet: start one (or a stand-in) first")
    }

    /// Tells the cluster where a stand-in master listens, for the slave to connect there.
    pub fn listen_on(&mut self, control: u16, log: u16) {
        self.ports = Some(Ports {
            control,
            log,
            http: 0,
        });
    }

    /// The master's ready file.
    pub fn ready_file(&self) -> PathBuf {
        self.dir.path().join("master.ready")
    }

    /// Waits until the master `child` (started from [`Cluster::master_args`]) is ready, and
    /// learns its ports.
    pub fn await_master(&mut self, child: &mut Child, log: &Path) {
        self.ports = Some(await_ready(child, &self.ready_file(), log));
    }

    fn spawn(&mut self, name: &str, args: &[String]) -> (Daemon, PathBuf) {
        self.starts += 1;
        let log = self.dir.path().join(format!("{name}-{}.log", self.starts));
        let file = std::fs::File::create(&log).expect("daemon log");
        let mut command = Command::new(basalt_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BASALT_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(args)
            .current_dir(self.dir.path())
            // Everything the daemon starts inherits it: found again at drop even when no
            // command line names the test directory (relative paths, a console's telnet).
            .env(CLUSTER_VAR, self.dir.path())
            .env("BASALT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start basalt {name}: {e}"));
        (Daemon { child }, log)
    }

    /// Starts the master and waits until its API answers.
    pub fn start_master(&mut self) -> Daemon {
        self.start_master_with(&[])
    }

    /// The master's arguments, with `extra` at the end: the ports it had before, or port 0
    /// for the kernel to choose, and its ready file.
    pub fn master_args(&self, extra: &[&str]) -> Vec<String> {
        let ports = self.ports.unwrap_or(Ports {
            control: 0,
            log: 0,
            http: 0,
        });
        let ready = self.ready_file();
        let args: Vec<String> = [
            "master",
            "--data-dir",
            &self.told(self.data_dir()),
            "--listen",
            "127.0.0.1",
            "--control-port",
            &ports.control.to_string(),
            "--log-port",
            &ports.log.to_string(),
            "--http-port",
            &ports.http.to_string(),
            "--ready-file",
            &self.told(ready),
            "--ping-interval",
            "1",
            "--offline-after",
            "3",
            "--resend",
            "0.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args = args;
        if self.certs.is_some() {
            args.extend([
                "--encrypt".into(),
                "--master-cert".into(),
                self.cert("master", true).display().to_string(),
                "--slaves-certs".into(),
                self.slaves_certs().display().to_string(),
            ]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// Runs `basalt master` with `extra` arguments until it exits (one that must refuse to
    /// start), for at most 20 s.
    pub fn run_master_to_exit(&self, extra: &[&str]) -> Output {
        Basalt::new(self.master_args(extra))
            .timeout(Duration::from_secs(20))
            .run()
    }

    /// Starts the master with `extra` arguments (`--init`) and waits until it says, in its
    /// ready file, that it listens.
    pub fn start_master_with(&mut self, extra: &[&str]) -> Daemon {
        let args = self.master_args(extra);
        let _ = std::fs::remove_file(self.ready_file());
        let (mut daemon, log) = self.spawn("master", &args);
        self.await_master(&mut daemon.child, &log);
        daemon
    }

    /// Starts the slave `w1`.
    pub fn start_slave(&mut self) -> Daemon {
        self.start_slave_with(&[])
    }

    /// Starts the slave `w1` with `extra` arguments (`--plugin-dir DIR`).
    pub fn start_slave_with(&mut self, extra: &[&str]) -> Daemon {
        let ports = self.listening();
        let args: Vec<String> = [
            "slave",
            "--master",
            "127.0.0.1",
            "--control-port",
            &ports.control.to_string(),
            "--log-port",
            &ports.log.to_string(),
            "--name",
            "w1",
            "--state-dir",
            &self.told(self.state_dir()),
            "--resend",
            "0.5",
            "--cancel-grace",
            "5",
            "--keep-finished",
            // The jobs' kernel is a file in the test directory.
            "--local-file-dir",
            &self.local_file_dir(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args = args;
        if self.certs.is_some() {
            args.extend([
                "--encrypt".into(),
                "--master-cert".into(),
                self.cert("master", false).display().to_string(),
                "--slave-cert".into(),
                self.cert("w1", true).display().to_string(),
            ]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        self.spawn("slave", &args).0
    }

    /// The master's HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listening().http)
    }

    /// `basalt ARGS` against the master, with its URL and admin token.
    pub fn cli(&self, args: &[&str]) -> Output {
        let token = std::fs::read_to_string(self.data_dir().join("admin-token"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        Basalt::new(args)
            .env("BASALT_URL", self.url())
            .env("BASALT_TOKEN", token)
            .timeout(Duration::from_secs(120))
            .run()
    }

    /// Registers worker `w1`, the device type and `sim-01`.
    pub fn register_board(&self) {
        self.register_board_with_dictionary(&self.board_dictionary());
    }

    /// Like [`Cluster::register_board`], with `sim-01`'s dictionary from `dictionary`.
    pub fn register_board_with_dictionary(&self, dictionary: &Path) {
        self.cli(&["workers", "add", "w1"]).success();
        self.cli(&["device-types", "add", "beaglebone-black"])
            .success();
        self.cli(&[
            "devices",
            "add",
            "sim-01",
            "--type",
            "beaglebone-black",
            "--worker",
            "w1",
            "--dict",
            &dictionary.display().to_string(),
        ])
        .success();
    }

    /// The dictionary of the simulated board `sim-01` (a beaglebone-black whose console and
    /// power are the simulator's).
    pub fn board_dictionary(&self) -> PathBuf {
        self.board.dictionary.clone()
    }

    /// `sim-01`'s configuration as `basalt devices render` gives it for its dictionary (what
    /// a master's START carries, for tests that play the master).
    pub fn rendered_board(&self) -> String {
        Basalt::new([
            "devices",
            "render",
            &self.board_dictionary().display().to_string(),
        ])
        .run()
        .success()
        .stdout
    }

    /// Writes a job whose test definition runs `steps` on the board.
    pub fn job(&self, name: &str, steps: &[&str]) -> PathBuf {
        self.board
            .write_job(
                self.dir.path(),
                &format!("{name}.yaml"),
                &SimJob::new(name, steps),
            )
            .expect("the job file")
    }

    /// Submits a job file; returns its id.
    pub fn submit(&self, job: &Path) -> u64 {
        let out = self
            .cli(&["jobs", "submit", &job.display().to_string()])
            .success();
        out.stdout
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no job id in {:?}", out.stdout))
    }

    /// The job as the master's API shows it (None while the master is down).
    pub fn try_job(&self, id: u64) -> Option<Value> {
        let out = Basalt::new(["jobs", "show", &id.to_string(), "--format", "json"])
            .env("BASALT_URL", self.url())
            .run();
        out.status.success().then(|| out.json())
    }

    /// Waits for a job to reach `state`.
    pub fn wait_state(&self, id: u64, state: &str, timeout: Duration) -> Value {
        wait_for(&format!("job {id} to be {state}"), timeout, || {
            self.try_job(id).filter(|job| job["state"] == state)
        })
    }

    /// The job's log as the master stored it.
    pub fn master_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.data_dir().join(format!("jobs/{id}/output.yaml")))
            .unwrap_or_default()
    }

    /// The job's log as its job process wrote it on the slave (kept after delivery).
    pub fn slave_log(&self, id: u64) -> String {
        let kept = self
            .state_dir()
            .join(format!("finished/{id}/output/output.yaml"));
        let live = self
            .state_dir()
            .join(format!("jobs/{id}/output/output.yaml"));
        std::fs::read_to_string(kept)
            .or_else(|_| std::fs::read_to_string(live))
            .unwrap_or_default()
    }

    /// The job process's pid on the slave, from the slave's job record.
    pub fn job_pid(&self, id: u64) -> Option<i32> {
        let record = std::fs::read(self.state_dir().join(format!("jobs/{id}/record.json"))).ok()?;
        let record: Value = serde_json::from_slice(&record).ok()?;
        record["pid"].as_i64().map(|p| p as i32)
    }

    /// Whether the simulated board's console is in use (a probe of the lock the simulator
    /// holds, free as soon as the holder has exited, reaped or not).
    pub fn console_held(&self) -> bool {
        use std::os::fd::AsRawFd;
        let Ok(file) = std::fs::File::open(self.board.state.join("console.lock")) else {
            return false;
        };
        // SAFETY: flock on a file this function owns; the lock goes with the file.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }

    /// Whether the job process on the slave has ended (its outcome file is written).
    pub fn job_process_done(&self, id: u64) -> bool {
        self.state_dir()
            .join(format!("jobs/{id}/output/result.yaml"))
            .exists()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The daemons' logs say why a test failed.
            let mut logs: Vec<_> = std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            for log in logs {
                eprintln!("==== {} ====", log.display());
                eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        }
        let marker = self.dir.path().as_os_str().as_encoded_bytes().to_vec();
        let mut mark = format!("{CLUSTER_VAR}=").into_bytes();
        mark.extend_from_slice(&marker);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let marked = || {
                std::fs::read(entry.path().join("environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == mark.as_slice()))
            };
            if cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_slice())
                || marked()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
