//! The run loop: stages with retries and timeouts, then the always-run finalisation.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::actions::{Place, PluginActions};
use super::cancel::Cancel;
use super::deploy::{self, DeployContext, Facilities, GuestDisk, ServerDirs};
use super::failure::Failure;
use super::log::JobLogger;
use super::overlay::{self, Overlay};
use super::preflight::{boot_config, preflight};
use super::results::CaseResult;
use super::testshell::TestShell;
use crate::console::{ConsoleBootHost, Expecter, TftpDir};
use crate::data::string_list;
use crate::failure::FailureClass;
use crate::job::{ActionKind, JobDefinition};
use crate::pipeline::{describe, Pipeline, Stage};
use crate::plugins::{Connection, ConsoleStream, PowerDriver, Registry};
use basalt_plugin_api::{console_box, Console, PluginError};

/// How long to wait for the console to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long LAVA's `finalize` may take.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the final power-off may take when the device sets no `power-off` timeout.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading the power state back may take at the end of a job.
const POWER_STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long processes the job left running get to exit after SIGTERM before SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Every action succeeded (tests may still have failed cases).
    Complete,
    /// An action failed.
    Incomplete,
    /// Someone canceled it.
    Canceled,
}

impl JobStatus {
    /// LAVA's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Complete => "Complete",
            Self::Incomplete => "Incomplete",
            Self::Canceled => "Canceled",
        }
    }
}

/// The outcome of a job.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// How it ended.
    pub status: JobStatus,
    /// Why, when it did not complete.
    pub failure: Option<Failure>,
}

/// Everything a job run needs.
pub struct RunRequest {
    /// The validated job.
    pub job: JobDefinition,
    /// The original job text (saved as `job.yaml`).
    pub job_text: String,
    /// The rendered device configuration.
    pub device: Value,
    /// The loaded plugins.
    pub registry: Registry,
    /// Where the log, results and downloads go.
    pub output_dir: PathBuf,
    /// Also print the log on stderr.
    pub echo_log: bool,
    /// The cancel flag (set by signals).
    pub cancel: Cancel,
    /// The address boards reach this worker's TFTP/NFS servers at (`{SERVER_IP}`).
    pub server_ip: String,
    /// Where this worker's TFTP and NFS servers take files from.
    pub servers: ServerDirs,
    /// The worker's directories whose files the job may read (`file://`, local git).
    pub local_files: super::LocalFiles,
    /// The worker's environment for test shells on the board (`env.dut.yaml`).
    pub dut_env: super::DutEnvironment,
    /// The job's process tag ([`crate::job_processes`]): every process the job started
    /// carries it, and whatever still does at the end is ended.
    pub process_tag: String,
}

impl RunRequest {
    /// What this worker offers deploy methods.
    pub fn facilities(&self) -> Facilities {
        Facilities::new(
            self.servers.tftp_root.is_some(),
            self.servers.nfs_root.is_some(),
        )
    }

    /// What LAVA exports to postprocessing steps: the job's `environment:`, `LAVA_JOB_ID`,
    /// `LAVA_DISPATCHER_IP` and `LAVA_DISPATCHER_PREFIX`.
    pub fn postprocess_environment(&self) -> Vec<(String, String)> {
        let mut environment: Vec<(String, String)> = self
            .job
            .raw
            .get("environment")
            .and_then(Value::as_object)
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), crate::data::text(v)))
                    .collect()
            })
            .unwrap_or_default();
        environment.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "LAVA_JOB_ID" | "LAVA_DISPATCHER_IP" | "LAVA_DISPATCHER_PREFIX"
            )
        });
        environment.push(("LAVA_JOB_ID".into(), self.servers.job_id.clone()));
        environment.push(("LAVA_DISPATCHER_IP".into(), self.server_ip.clone()));
        environment.push(("LAVA_DISPATCHER_PREFIX".into(), String::new()));
        environment
    }
}

/// The console of a device that has no connection, until a boot method attaches one.
struct NoConsole;

impl Console for NoConsole {
    fn read(&mut self, _max: usize, _timeout: Duration) -> Result<Vec<u8>, PluginError> {
        Err(Self::missing())
    }
    fn write(&mut self, _data: &[u8]) -> Result<(), PluginError> {
        Err(Self::missing())
    }
    fn close(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

impl NoConsole {
    fn missing() -> PluginError {
        PluginError::invalid_config(
            "the device has no console: set connection_command in its dictionary (or boot it \
             with a method that runs the board itself, such as qemu)",
        )
    }
}

/// The board as the job sees it.
struct Board {
    power: Option<PowerDriver>,
    connection: Option<Connection>,
    console: Option<Expecter>,
    prompts: Vec<String>,
    /// The last boot action's `transfer_overlay`, if it had one.
    transfer_overlay: Option<Value>,
    /// What the test shell types before each test action after this boot (LAVA's
    /// `pre-command-list`: the guest disk mounted), unchecked, as LAVA sends them.
    pre_commands: Vec<String>,
}

struct Job<'a> {
    request: &'a RunRequest,
    log: JobLogger,
    board: Board,
    deployed: Map<String, Value>,
    /// `image_arg` of each deployed image, by key.
    image_args: Map<String, Value>,
    kernel_type: Option<String>,
    suites: usize,
    job_deadline: Instant,
    /// The power state read back at the end (`on`, `off`, `unknown`), when the board has power.
    power_state: Option<String>,
    /// What this worker offers deploy methods (servers, docker).
    facilities: Facilities,
    /// The LAVA overlay, once built (the first deploy or test that needs it builds it).
    overlay: Option<Overlay>,
    /// A deploy put the overlay into the image the board boots.
    overlay_in_image: bool,
    /// The qemu guest disk a `tmpfs` deploy built with the overlay.
    guest: Option<GuestDisk>,
    /// The overlay is on the board as it runs now (in its image, or sent since it booted).
    overlay_on_board: bool,
    /// The job action whose stage built the overlay: a retry of it builds it again, as LAVA
    /// runs the whole pipeline again (and numbers it the same).
    overlay_built_by: Option<usize>,
}

/// Runs a job to its end. Never panics on bad input: every problem ends the job with a
/// failure class and message.
pub fn run_job(request: &RunRequest) -> std::io::Result<JobOutcome> {
    std::fs::create_dir_all(&request.output_dir)?;
    let log = JobLogger::create(&request.output_dir, request.echo_log, request.job.secrets())?;
    log.stop_job_on_failure(request.cancel.clone());
    crate::private_file::write(&request.output_dir.join("job.yaml"), &request.job_text)?;
    std::fs::write(
        request.output_dir.join("device.yaml"),
        serde_yaml::to_string(&request.device).unwrap_or_default(),
    )?;
    let mut job = Job {
        request,
        log,
        board: Board {
            power: None,
            connection: None,
            console: None,
            prompts: Vec::new(),
            transfer_overlay: None,
            pre_commands: Vec::new(),
        },
        deployed: Map::new(),
        image_args: Map::new(),
        kernel_type: None,
        suites: 0,
        power_state: None,
        job_deadline: Instant::now(),
        facilities: request.facilities(),
        overlay: None,
        overlay_in_image: false,
        guest: None,
        overlay_on_board: false,
        overlay_built_by: None,
    };
    let mut outcome = job.run();
    if let Some(reason) = job.log.failure() {
        // Stopped (through the cancel flag) or not, a job with a hole in its log is not
        // Complete, and was not canceled by anyone.
        outcome = JobOutcome {
            status: JobStatus::Incomplete,
            failure: Some(Failure::new(FailureClass::Infrastructure, reason)),
        };
    }
    job.finish(&outcome)?;
    Ok(outcome)
}

impl Job<'_> {
    fn run(&mut self) -> JobOutcome {
        let request = self.request;
        self.log
            .info(&format!("start: 0 validate ({})", request.job.name));
        let pipeline = match self.validate() {
            Ok(pipeline) => pipeline,
            Err(failure) => {
                self.case("lava", "validate", "fail", Some(failure.message.clone()));
                return self.failed(failure);
            }
        };
        self.case("lava", "validate", "pass", None);
        self.job_deadline = Instant::now() + pipeline.job_timeout;
        for stage in &pipeline.stages {
            if let Err(failure) = self.stage(stage) {
                return self.failed(failure);
            }
        }
        JobOutcome {
            status: JobStatus::Complete,
            failure: None,
        }
    }

    fn failed(&self, failure: Failure) -> JobOutcome {
        let status = if failure.class == FailureClass::Canceled || self.request.cancel.is_set() {
            JobStatus::Canceled
        } else {
            JobStatus::Incomplete
        };
        JobOutcome {
            status,
            failure: Some(failure),
        }
    }

    fn case(&mut self, suite: &str, name: &str, result: &str, detail: Option<String>) {
        let mut entry = vec![
            ("definition", Value::from(suite)),
            ("case", Value::from(name)),
            ("result", Value::from(result)),
        ];
        if let Some(detail) = &detail {
            entry.push(("error_msg", Value::from(detail.clone())));
        }
        self.log.result_as(
            &entry,
            CaseResult {
                suite: suite.into(),
                name: name.into(),
                result: result.into(),
                detail,
                ..CaseResult::default()
            },
        );
    }

    /// Builds the pipeline and the drivers: everything that can be checked before the
    /// board is touched ([`preflight`]).
    fn validate(&mut self) -> Result<Pipeline, Failure> {
        let request = self.request;
        let ready = preflight(
            &request.job,
            &request.device,
            &request.registry,
            &self.facilities,
            &|| self.log.plugin_log(),
        )?;
        let pipeline = ready.pipeline;
        for line in describe(&pipeline).lines() {
            self.log.write(basalt_plugin_api::LogLevel::DEBUG, line);
        }
        let _ = std::fs::write(
            request.output_dir.join("description.yaml"),
            serde_yaml::to_string(&describe(&pipeline).lines().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        if ready.power.is_none() {
            self.log
                .info("this device has no power control; power steps are skipped");
        }
        self.board.power = ready.power;
        self.board.connection = ready.connection;
        Ok(pipeline)
    }

    /// Runs a top-level action as one LAVA action (its start and end logged once, its
    /// failure recorded), its runs inside it.
    fn stage(&mut self, stage: &Stage) -> Result<(), Failure> {
        let now = Instant::now();
        if self.job_deadline <= now {
            return Err(Failure::job("the job timed out"));
        }
        let namespace = self.request.job.actions[stage.job_index]
            .namespace()
            .to_owned();
        let log = self.log.clone();
        let place = Place::Top {
            level: &stage.action.level,
            namespace: &namespace,
        };
        let deadline = (now + stage.action.timeout).min(self.job_deadline);
        log.action(&stage.action.name, place, deadline, |_| self.runs(stage))
    }

    /// The runs of a top-level action: one, `failure_retry` until one succeeds, or every one
    /// of a `repeat`; each with the action's whole timeout, within the job's.
    fn runs(&mut self, stage: &Stage) -> Result<(), Failure> {
        let mut attempt = 1;
        // A repeated stage's failure before its last run (LAVA's repeat runs on and fails
        // the action at the end).
        let mut repeat_failed: Option<FailureClass> = None;
        loop {
            let started = Instant::now();
            if self.job_deadline <= started {
                return Err(Failure::job("the job timed out"));
            }
            if attempt > 1 {
                // The same actions again, numbered as the first time.
                self.log.restart_children();
                if self.overlay_built_by == Some(stage.job_index) {
                    self.overlay = None;
                }
            }
            if stage.attempts > 1 {
                self.log.info(&format!(
                    "{}: attempt {attempt} of {}",
                    stage.action.name, stage.attempts
                ));
            }
            let deadline = (started + stage.action.timeout).min(self.job_deadline);
            let result = if self.request.cancel.is_set() {
                Err(Failure::new(FailureClass::Canceled, "the job was canceled"))
            } else {
                self.run_stage(stage, deadline)
            };
            if stage.repeat {
                match self.repeated(stage, attempt, result, &mut repeat_failed) {
                    Some(end) => return end,
                    None => {
                        attempt += 1;
                        continue;
                    }
                }
            }
            match result {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    let retry = attempt < stage.attempts
                        && failure.class != FailureClass::Canceled
                        && !self.request.cancel.is_set();
                    if !retry {
                        self.log
                            .error(&format!("{} failed: {failure}", stage.action.name));
                        return Err(failure);
                    }
                    self.log.error(&format!(
                        "{} failed: {attempt} of {} attempts. '{failure}'",
                        stage.action.name, stage.attempts
                    ));
                    attempt += 1;
                    self.log.warning(&format!(
                        "Retrying: {} {} ({attempt} of {})",
                        stage.action.level, stage.action.name, stage.attempts
                    ));
                }
            }
        }
    }

    /// One run of a `repeat:` stage, as LAVA's `RetryAction` repeats: every run happens
    /// whatever the one before gave ("NAME failed: 1 of 3 attempts"); a failing last run
    /// fails the stage with its own error, an earlier failure with "3 retries out of 3
    /// failed for NAME" of the same class. `None`: run again.
    fn repeated(
        &mut self,
        stage: &Stage,
        attempt: u32,
        result: Result<(), Failure>,
        failed: &mut Option<FailureClass>,
    ) -> Option<Result<(), Failure>> {
        let name = &stage.action.name;
        let last = attempt >= stage.attempts;
        if let Err(failure) = &result {
            self.log.error(&format!(
                "{name} failed: {attempt} of {} attempts. '{failure}'",
                stage.attempts
            ));
            let stop = failure.class == FailureClass::Canceled || self.request.cancel.is_set();
            if last || stop {
                return Some(result);
            }
            *failed = Some(failure.class);
        }
        if !last {
            self.log.info(&format!(
                "{name}: repeating ({} of {})",
                attempt + 1,
                stage.attempts
            ));
            return None;
        }
        Some(match failed.take() {
            None => Ok(()),
            Some(class) => Err(Failure::new(
                class,
                format!(
                    "{attempt} retries out of {} failed for {name}",
                    stage.attempts
                ),
            )),
        })
    }

    fn run_stage(&mut self, stage: &Stage, deadline: Instant) -> Result<(), Failure> {
        let action = &self.request.job.actions[stage.job_index];
        match stage.kind {
            ActionKind::Deploy => {
                let params = Value::Object(action.params.clone());
                if let Some(kernel_type) = params
                    .pointer("/kernel/type")
                    .or_else(|| params.pointer("/images/kernel/type"))
                    .and_then(Value::as_str)
                {
                    self.kernel_type = Some(kernel_type.to_ascii_lowercase());
                }
                let method = deploy::find(action.method().unwrap_or_default())?;
                self.ensure_overlay(stage, deadline)?;
                if (method.console)(&self.request.device) {
                    self.console()?;
                }
                let console = self.board.console.as_mut().map(std::cell::RefCell::new);
                let context = DeployContext {
                    params: &action.params,
                    device: &self.request.device,
                    output_dir: &self.request.output_dir,
                    deadline,
                    local: &self.request.local_files,
                    servers: &self.request.servers,
                    log: &self.log,
                    overlay: self.overlay.as_ref(),
                    overlay_placed: Default::default(),
                    environment: self.request.postprocess_environment(),
                    docker: self.facilities.docker.clone(),
                    power: self.board.power.as_ref(),
                    console: console.as_ref(),
                    guest: Default::default(),
                };
                let deployed = (method.run)(&context)?;
                // The board boots what this deploy prepared: the overlay is in it or not.
                self.overlay_in_image = context.overlay_placed.get();
                if let Some(guest) = context.guest.take() {
                    self.guest = Some(guest);
                }
                // Each image's `image_arg` (qemu), by key, for the boot that follows.
                for (key, image) in crate::pipeline::deploy_artifacts(&action.params) {
                    if let Some(arg) = image.get("image_arg").and_then(Value::as_str) {
                        self.image_args.insert(key, Value::from(arg));
                    }
                }
                self.deployed.extend(deployed);
                Ok(())
            }
            ActionKind::Boot => self.boot(&action.params, deadline),
            ActionKind::Test => self.test(stage, &action.params, deadline),
            ActionKind::Command => self.command(action.method().unwrap_or_default(), deadline),
        }
    }

    fn console(&mut self) -> Result<&mut Expecter, Failure> {
        if self.board.console.is_none() {
            let stream = match &self.board.connection {
                Some(connection) => connection.connect(CONNECT_TIMEOUT)?,
                None => ConsoleStream::in_process("none", console_box(NoConsole)),
            };
            let mut expecter = Expecter::new(stream, self.log.plugin_log());
            expecter.set_cancel(self.request.cancel.flag());
            self.board.console = Some(expecter);
        }
        self.board
            .console
            .as_mut()
            .ok_or_else(|| Failure::infrastructure("the console is not open"))
    }

    /// What the qemu boot needs to attach the guest disk: the file, and the interface and
    /// drive id the device's `guest` parameters give (LAVA's defaults: `ide` on x86, else
    /// `virtio`; `lavatest`).
    fn guest_drive(&self, guest: &GuestDisk) -> Value {
        let parameters = self
            .request
            .device
            .pointer("/actions/deploy/methods/image/parameters/guest");
        let field = |name: &str| {
            parameters
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let arch = self
            .request
            .job
            .raw
            .pointer("/context/arch")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fallback = match arch {
            "amd64" | "x86_64" | "i386" | "i686" => "ide",
            _ => "virtio",
        };
        let file = std::fs::canonicalize(&guest.file).unwrap_or_else(|_| guest.file.clone());
        json!({
            "file": file.display().to_string(),
            "interface": field("interface").unwrap_or_else(|| fallback.to_owned()),
            "driveid": field("driveid").unwrap_or_else(|| "lavatest".to_owned()),
        })
    }

    fn boot(&mut self, params: &Map<String, Value>, deadline: Instant) -> Result<(), Failure> {
        let method = params
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let config = boot_config(&self.request.device, method);
        let driver =
            self.request
                .registry
                .boot(method, &config.to_string(), self.log.plugin_log())?;
        let mut action = Value::Object(params.clone());
        action["_deployed"] = Value::Object(self.deployed.clone());
        action["_image_args"] = Value::Object(self.image_args.clone());
        // How the deploy wrote the ramdisk decides how a bootloader passes it (u-boot).
        if let Some(header) = self
            .request
            .device
            .pointer("/actions/deploy/parameters/add_header")
        {
            action["_add_header"] = header.clone();
        }
        // LAVA's qemu boot attaches the guest disk when no image took the overlay, and has
        // the test shell mount it first.
        let guest = match (method, &self.guest) {
            ("qemu" | "qemu-iso", Some(guest)) if !self.overlay_in_image => Some(guest.clone()),
            _ => None,
        };
        if let Some(guest) = &guest {
            action["_guest_drive"] = self.guest_drive(guest);
        }
        action["_server_ip"] = Value::from(self.request.server_ip.clone());
        action["_job_id"] = Value::from(self.request.servers.job_id.clone());
        if let Some(kernel_type) = &self.kernel_type {
            action["_kernel_type"] = Value::from(kernel_type.clone());
        }
        // The job's `context: arch`, which qemu's boot records as LAVA's does.
        if let Some(arch) = self.request.job.raw.pointer("/context/arch") {
            action["_job_arch"] = arch.clone();
        }
        let log = self.log.plugin_log();
        self.console()?;
        let Board { power, console, .. } = &mut self.board;
        let Some(console) = console.as_mut() else {
            return Err(Failure::infrastructure("the console is not open"));
        };
        let tftp = self.request.servers.tftp_root.clone().map(|root| TftpDir {
            root,
            job: self.request.servers.job_id.clone(),
        });
        let mut actions = PluginActions::new(&self.log);
        let mut host = ConsoleBootHost::new(console, power.as_ref(), &log)
            .with_tftp(tftp)
            .with_actions(&mut actions);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let booted = driver.boot(&mut host, &action.to_string(), timeout);
        drop(host);
        actions.close();
        booted?;
        // What was sent over the console before this boot is gone with the old system.
        self.overlay_on_board = self.overlay_in_image;
        self.board.pre_commands.clear();
        if let (Some(guest), Some(overlay)) = (&guest, &self.overlay) {
            let mountpoint = &overlay.settings.results_dir;
            self.board.pre_commands = vec![
                format!("mkdir {mountpoint}"),
                format!(
                    "mount /dev/disk/by-uuid/{} -t ext2 {mountpoint}",
                    guest.uuid
                ),
                format!("ls -la {mountpoint}/bin/lava-test-runner"),
            ];
            self.overlay_on_board = true;
        }
        self.board.transfer_overlay = params.get("transfer_overlay").cloned();
        self.board.prompts = string_list(params.get("prompts"));
        if self.board.prompts.is_empty() {
            if let Some(prompt) = self
                .request
                .device
                .pointer("/constants/default-shell-prompt")
                .and_then(Value::as_str)
            {
                self.board.prompts.push(regex::escape(prompt));
            }
        }
        Ok(())
    }

    /// Builds the LAVA overlay if the job's tests need one and it is not built yet: LAVA's
    /// `lava-overlay`, a child of the action running (the deploy, or the first test).
    fn ensure_overlay(&mut self, stage: &Stage, deadline: Instant) -> Result<(), Failure> {
        let request = self.request;
        if self.overlay.is_some() || !overlay::needed(&request.job) {
            return Ok(());
        }
        let built = self
            .log
            .action("lava-overlay", Place::Child, deadline, |_| {
                overlay::build(&overlay::Inputs {
                    job: &request.job,
                    device: &request.device,
                    job_id: &request.servers.job_id,
                    workdir: &request.output_dir,
                    local_files: &request.local_files,
                    environment: request.postprocess_environment(),
                    dut_env_lines: request.dut_env.script_lines(),
                    log: &self.log,
                    deadline,
                })
            })?;
        self.overlay = Some(built);
        self.overlay_built_by = Some(stage.job_index);
        Ok(())
    }

    fn test(
        &mut self,
        stage: &Stage,
        params: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        // Monitors watch a board without a shell; everything else types into one.
        let needs_shell = params.contains_key("definitions") || params.contains_key("interactive");
        if needs_shell && self.board.prompts.is_empty() {
            return Err(Failure::job(
                "no shell prompt is known; the boot action before this test needs prompts",
            ));
        }
        self.ensure_overlay(stage, deadline)?;
        // LAVA's test action: a retry action (the stage) around the one that runs the tests.
        let child = if params.contains_key("interactive") {
            "lava-test-interactive"
        } else if params.contains_key("monitors") && !params.contains_key("definitions") {
            "lava-test-monitor"
        } else {
            "lava-test-shell"
        };
        let log = self.log.clone();
        log.action(child, Place::Child, deadline, |_| {
            self.run_tests(stage, params, deadline)
        })
    }

    /// The test action's work on the board: the overlay sent if it is not there, the stage's
    /// definitions run, then its interactive tests and monitors.
    fn run_tests(
        &mut self,
        stage: &Stage,
        params: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let prompts = self.board.prompts.clone();
        let log = self.log.clone();
        let overlay = self.overlay.take();
        let send_overlay = !self.overlay_on_board;
        let transfer = self.board.transfer_overlay.clone();
        let pre_commands = self.board.pre_commands.clone();
        let request = self.request;
        let suite_base = self.suites;
        let console = self.console()?;
        let mut shell = TestShell {
            expecter: console,
            prompts,
            log: &log,
            level: log
                .current_level()
                .unwrap_or_else(|| stage.action.level.clone()),
            namespace: request.job.actions[stage.job_index].namespace().to_owned(),
        };
        let mut sent = false;
        let mut outcome = Ok(0);
        // LAVA's pre-command list: sent before the runner, their results not checked.
        for command in &pre_commands {
            if let Err(failure) = shell.run_line(command, deadline) {
                outcome = Err(failure);
                break;
            }
        }
        if let Some((overlay, stage)) = overlay
            .as_ref()
            .filter(|_| outcome.is_ok())
            .and_then(|o| o.stage_of(stage.job_index).map(|s| (o, s)))
        {
            let ran = (|| {
                if send_overlay {
                    match &transfer {
                        Some(transfer) => shell.fetch_overlay(
                            overlay,
                            transfer,
                            (&request.server_ip, &request.servers.job_id),
                            deadline,
                        )?,
                        None => shell.send_overlay(overlay, deadline)?,
                    }
                    sent = true;
                }
                shell.run_stage(overlay, stage, deadline, started)
            })();
            outcome = ran.map(|()| overlay.stage(stage).count());
        }
        if let Ok(definitions) = outcome {
            outcome = shell
                .run_interactives(params, suite_base + definitions, deadline)
                .map(|n| definitions + n);
        }
        if outcome.is_ok() {
            if let Err(failure) = shell.run_monitors(params, deadline) {
                outcome = Err(failure);
            }
        }
        self.overlay = overlay;
        if sent {
            self.overlay_on_board = true;
        }
        self.suites += outcome.as_ref().copied().unwrap_or(0);
        outcome.map(|_| ())
    }

    fn command(&mut self, name: &str, deadline: Instant) -> Result<(), Failure> {
        let command = self
            .request
            .device
            .pointer(&format!("/commands/users/{name}/do"))
            .cloned()
            .unwrap_or(Value::Null);
        let commands: Vec<String> = match command {
            Value::String(s) => vec![s],
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let log = self.log.plugin_log();
        for command in commands {
            basalt_plugin_api::process::run_command(
                &format!("user command {name}"),
                &command,
                deadline,
                &log,
            )
            .map_err(|e| {
                Failure::new(
                    FailureClass::of_plugin_error(e.kind),
                    e.message().to_owned(),
                )
            })?;
        }
        Ok(())
    }

    /// Whatever happened: undo user commands, power off, close the console, write results.
    fn finish(&mut self, outcome: &JobOutcome) -> std::io::Result<()> {
        // LAVA's `finalize`, the action after the job's own: the board powered off (its
        // `power-off` recorded), the console closed, what the job left running ended.
        let log = self.log.clone();
        let level = (self.request.job.actions.len() + 1).to_string();
        let place = Place::Top {
            level: &level,
            namespace: "common",
        };
        // A failed power-off fails `finalize` (as LAVA records it), not the job, which has
        // its outcome already.
        let _ = log.action("finalize", place, Instant::now() + FINALIZE_TIMEOUT, |_| {
            self.finalize_board()
        });
        // LAVA's closing words, then the job's own record.
        match &outcome.failure {
            None => self.log.info("Job finished correctly"),
            Some(f) => {
                self.log.error(&format!(
                    "Job finished: {} ({}: {})",
                    outcome.status.name(),
                    f.class.lava_name(),
                    f.message
                ));
                self.log.error(f.class.lava_help());
            }
        }
        let (result, detail) = match &outcome.failure {
            None => ("pass", None),
            Some(f) => ("fail", Some(f.to_string())),
        };
        self.case("lava", "job", result, detail);
        self.log.results().write(&self.request.output_dir)?;
        let summary = json!({
            "status": outcome.status.name(),
            "error_type": outcome.failure.as_ref().map(|f| f.class.lava_name()),
            "error_msg": outcome.failure.as_ref().map(|f| f.message.clone()),
            "power_state": self.power_state,
        });
        // JSON, which is YAML too, with every string quoted: its readers use YAML 1.1, where
        // a plain `off` is the boolean false.
        std::fs::write(
            self.request.output_dir.join("result.yaml"),
            serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
        )?;
        Ok(())
    }

    /// Undoes the user commands, cleans the served files, powers the board off and reads its
    /// power state back, closes the console and ends leftover processes; the power-off's
    /// failure, if it failed, once all of that is done.
    fn finalize_board(&mut self) -> Result<(), Failure> {
        self.undo_user_commands();
        self.request.servers.clean();
        let mut powered_off = Ok(());
        if let Some(power) = &self.board.power {
            let timeout = self
                .request
                .device
                .pointer("/timeouts/actions/power-off")
                .and_then(crate::job::timeout_of)
                .unwrap_or(POWER_OFF_TIMEOUT);
            powered_off = self.log.action(
                "power-off",
                Place::Child,
                Instant::now() + timeout,
                |results| match power.off(timeout) {
                    Ok(()) => {
                        self.log.info("finalize: board powered off");
                        results.insert("status".into(), Value::from("success"));
                        Ok(())
                    }
                    Err(e) => {
                        self.log.error(&format!("finalize: power off failed: {e}"));
                        Err(Failure::infrastructure(format!("power off failed: {e}")))
                    }
                },
            );
            // Read back what the PDU says, for the master's view of the device; drivers that
            // cannot tell answer unknown.
            self.power_state = Some(match power.state(POWER_STATE_TIMEOUT) {
                Ok(state) => state.name().to_owned(),
                Err(e) => {
                    self.log
                        .error(&format!("finalize: power state read-back failed: {e}"));
                    "unknown".to_owned()
                }
            });
            if let Some(state) = &self.power_state {
                self.log
                    .info(&format!("finalize: power state read back: {state}"));
            }
        }
        if let Some(console) = self.board.console.take() {
            let _ = console.close();
        }
        self.end_leftover_processes();
        powered_off
    }

    /// Ends what the job started and did not end itself (a background command, a console
    /// helper in its own session), so that nothing of it holds the board afterwards.
    fn end_leftover_processes(&mut self) {
        let ended = crate::job_processes::end(&self.request.process_tag, LEFTOVER_GRACE);
        if !ended.is_empty() {
            let list: Vec<String> = ended.iter().map(ToString::to_string).collect();
            self.log.write(
                basalt_plugin_api::LogLevel::WARNING,
                &format!(
                    "finalize: ended {} process(es) the job left running: {}",
                    ended.len(),
                    list.join(", ")
                ),
            );
        }
    }

    fn undo_user_commands(&mut self) {
        let names: Vec<String> = self
            .request
            .job
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Command)
            .filter_map(|a| a.method().map(str::to_owned))
            .collect();
        let log = self.log.plugin_log();
        for name in names {
            if let Some(undo) = self
                .request
                .device
                .pointer(&format!("/commands/users/{name}/undo"))
                .and_then(Value::as_str)
            {
                let deadline = Instant::now() + POWER_OFF_TIMEOUT;
                if let Err(e) = basalt_plugin_api::process::run_command(
                    &format!("user command {name} (undo)"),
                    undo,
                    deadline,
                    &log,
                ) {
                    self.log.error(&format!("undo of {name} failed: {e}"));
                }
            }
        }
    }
}
