//! The slave's job table: one directory per job under `<state>/jobs/<id>/`, holding the
//! files START brought, the job process's output directory, its stdout/stderr and a
//! `record.json` that says what the slave did with it. Records are replaced atomically
//! (write, fsync, rename), so a slave killed at any instant restarts knowing every job
//! process it started — including one started just before it died, found by its command
//! line — and never starts a job twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::RunSettings;
use crate::transport::JobFiles;

/// How long a finished job's leftover processes get after SIGTERM before SIGKILL.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a job is, as the slave sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaveJobState {
    /// Files written, process being started.
    Starting,
    /// The job process runs.
    Running,
    /// CANCEL received; SIGTERM sent.
    Canceling,
    /// The job process has ended.
    Finished,
}

/// What `record.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: u64,
    /// Its state.
    pub state: SlaveJobState,
    /// The job process (and its process group, as it leads its own session).
    pub pid: Option<i32>,
    /// When CANCEL arrived (seconds since the epoch).
    pub cancel_at: Option<f64>,
    /// The job process's exit status, when the slave saw it (it does not for processes it
    /// re-adopted after a restart).
    pub exit_code: Option<i32>,
    /// The process tag every process of the job carries ([`crate::job_processes`]); absent
    /// in records of slaves that predate it.
    #[serde(default)]
    pub tag: Option<String>,
}

/// One job the slave holds.
pub struct SlaveJob {
    /// What is on disk.
    pub record: JobRecord,
    /// The job's directory.
    pub dir: PathBuf,
    /// The process, when this slave started it (absent for re-adopted ones).
    child: Option<Child>,
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl SlaveJob {
    /// The job's log as the job process writes it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("output").join("output.yaml")
    }

    /// Writes the record atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let tmp = self.dir.join("record.json.tmp");
        let text = serde_json::to_vec_pretty(&self.record).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join("record.json"))
    }

    /// Whether the job process is still there (not a zombie, and still this job's process:
    /// its command line runs the job's own `job.yaml`, which guards against reused pids).
    pub fn alive(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.record.exit_code = status.code();
                    self.child = None;
                    return false;
                }
                Ok(None) => return true,
                Err(_) => self.child = None,
            }
        }
        match self.record.pid {
            Some(pid) => process_runs_job(pid, &self.dir),
            None => false,
        }
    }

    /// Sends `signal` to the job's whole process group.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.record.pid {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    /// Records a CANCEL and asks the job to stop.
    pub fn cancel(&mut self) -> std::io::Result<()> {
        self.record.state = SlaveJobState::Canceling;
        self.record.cancel_at = Some(epoch_secs());
        self.save()?;
        self.signal(Signal::SIGTERM);
        Ok(())
    }

    /// Seconds since CANCEL.
    pub fn canceling_for(&self) -> f64 {
        self.record.cancel_at.map_or(0.0, |at| epoch_secs() - at)
    }

    /// How many bytes of the log were pushed to a LAVA master (0 if none recorded).
    pub fn pushed(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("pushed"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Records how many bytes of the log were pushed (replaced atomically; not synced, as a
    /// power loss only repeats a few lines).
    pub fn save_pushed(&self, bytes: u64) -> std::io::Result<()> {
        let tmp = self.dir.join("pushed.tmp");
        std::fs::write(&tmp, format!("{bytes}\n"))?;
        std::fs::rename(&tmp, self.dir.join("pushed"))
    }

    /// Ends whatever of the job is still running once its job process has gone (killed,
    /// crashed, or forced out before its own clean-up): see [`crate::job_processes`].
    pub fn end_leftovers(&self) -> Vec<crate::job_processes::Ended> {
        match &self.record.tag {
            Some(tag) => crate::job_processes::end(tag, LEFTOVER_GRACE),
            None => Vec::new(),
        }
    }

    /// What the job process printed on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read(self.dir.join("stderr"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The job's outcome file, which `basalt run` writes last; absent if it crashed.
    pub fn result_file(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("output").join("result.yaml")).ok()
    }
}

/// Whether `pid` is a live process whose command line has `dir/job.yaml` as an argument,
/// exactly (job 1's directory is a prefix of job 12's).
fn process_runs_job(pid: i32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may contain anything.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let job = dir.join("job.yaml");
    let job = job.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == job)
}

/// Finds a process running the job in `dir` (a slave killed between starting the process
/// and recording its pid).
fn find_job_process(dir: &Path) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| process_runs_job(pid, dir))
}

/// Loads every job record under `jobs_dir`, re-adopting running processes.
pub fn load(jobs_dir: &Path) -> Vec<SlaveJob> {
    let Ok(entries) = std::fs::read_dir(jobs_dir) else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let record: Result<JobRecord, String> = std::fs::read(dir.join("record.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        let mut record = match record {
            Ok(record) => record,
            Err(why) => match rebuild_record(&dir, &why) {
                Some(record) => record,
                None => {
                    quarantine(jobs_dir, &dir, &why);
                    continue;
                }
            },
        };
        if record.state == SlaveJobState::Starting {
            match find_job_process(&dir) {
                Some(pid) => {
                    record.pid = Some(pid);
                    record.state = SlaveJobState::Running;
                }
                None => {
                    // Never started: forget it; the master re-sends START.
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            }
        }
        let job = SlaveJob {
            record,
            dir,
            child: None,
        };
        if let Err(e) = job.save() {
            tracing::warn!("job {}: cannot save its record: {e}", job.record.id);
        }
        jobs.push(job);
    }
    jobs.sort_by_key(|j| j.record.id);
    jobs
}

/// A record for a job directory whose `record.json` cannot be read, rebuilt from what is
/// there: the id from the directory's name, the process from the command lines (and its tag
/// from its environment), finished if no process runs it. The unreadable file is kept
/// beside it for the admin. None if the directory holds no job that ever ran.
fn rebuild_record(dir: &Path, why: &str) -> Option<JobRecord> {
    let id: u64 = dir.file_name()?.to_str()?.parse().ok()?;
    let pid = find_job_process(dir);
    let started = pid.is_some() || dir.join("output").join("output.yaml").exists();
    if !started {
        return None;
    }
    let kept = dir.join(format!("record.json.corrupt-{}", epoch_secs() as u64));
    let _ = std::fs::rename(dir.join("record.json"), &kept);
    let tag = pid.and_then(crate::job_processes::tag_of);
    let state = if pid.is_some() {
        SlaveJobState::Running
    } else {
        SlaveJobState::Finished
    };
    tracing::warn!(
        "job {id}: its record {} cannot be read ({why}); kept as {}, and rebuilt from what is \
         there: {state:?}{}",
        dir.join("record.json").display(),
        kept.display(),
        pid.map(|p| format!(", process {p}")).unwrap_or_default()
    );
    Some(JobRecord {
        id,
        state,
        pid,
        cancel_at: None,
        exit_code: None,
        tag,
    })
}

/// Moves a job directory the slave cannot use out of the way (`<state>/quarantine/`),
/// keeping it for the admin instead of deleting what may be a job's only log.
fn quarantine(jobs_dir: &Path, dir: &Path, why: &str) {
    let Some(name) = dir.file_name() else { return };
    let target_dir = jobs_dir.parent().unwrap_or(jobs_dir).join("quarantine");
    let target = target_dir.join(format!(
        "{}-{}",
        name.to_string_lossy(),
        epoch_secs() as u64
    ));
    let moved = std::fs::create_dir_all(&target_dir).and_then(|()| std::fs::rename(dir, &target));
    match moved {
        Ok(()) => tracing::warn!(
            "{}: no usable record.json ({why}) and no job ran there: moved to {}",
            dir.display(),
            target.display()
        ),
        Err(e) => tracing::warn!(
            "{}: no usable record.json ({why}), and it cannot be moved aside: {e}",
            dir.display()
        ),
    }
}

/// Why a job process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("job {job}: {what}: {source}")]
pub struct SpawnError {
    job: u64,
    what: String,
    #[source]
    source: std::io::Error,
}

/// The `local_file_dirs` list of a worker's `dispatcher.yaml` (absolute paths only: the job
/// process runs in its own directory).
fn dispatcher_local_dirs(dispatcher: &Value) -> Vec<PathBuf> {
    dispatcher
        .get("local_file_dirs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// Writes the job's files and starts `basalt run` for it in its own session.
pub fn start(
    jobs_dir: &Path,
    id: u64,
    files: &JobFiles,
    settings: &RunSettings,
    basalt: &Path,
) -> Result<SlaveJob, SpawnError> {
    let dir = jobs_dir.join(id.to_string());
    let fail = |what: &str| {
        let what = what.to_owned();
        move |source| SpawnError {
            job: id,
            what,
            source,
        }
    };
    std::fs::create_dir_all(dir.join("output")).map_err(fail("cannot create its directory"))?;
    for (name, text) in [
        ("job.yaml", &files.job),
        ("device.yaml", &files.device),
        ("dispatcher.yaml", &files.dispatcher),
        ("env.yaml", &files.env),
        ("env.dut.yaml", &files.env_dut),
    ] {
        // The job's secrets and the worker's environment: for the slave's user only.
        crate::private_file::write(&dir.join(name), text)
            .map_err(fail(&format!("cannot write {name}")))?;
    }
    let mut job = SlaveJob {
        record: JobRecord {
            id,
            state: SlaveJobState::Starting,
            pid: None,
            cancel_at: None,
            exit_code: None,
            tag: Some(crate::job_processes::new_tag()),
        },
        dir: dir.clone(),
        child: None,
    };
    job.save().map_err(fail("cannot write its record"))?;

    let dispatcher = crate::yaml11::from_str(&files.dispatcher).unwrap_or(Value::Null);
    let server_ip = dispatcher
        .get("dispatcher_ip")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| settings.server_ip.clone());
    let mut command = Command::new(basalt);
    command
        .arg("run")
        .arg("--quiet")
        .arg("--job-id")
        .arg(id.to_string())
        .arg("--device")
        .arg(dir.join("device.yaml"))
        .arg("--output-dir")
        .arg(dir.join("output"));
    if let Some(ip) = server_ip {
        command.arg("--server-ip").arg(ip);
    }
    if let Some(root) = &settings.tftp_root {
        command.arg("--tftp-root").arg(root);
    }
    if !files.env_dut.trim().is_empty() {
        command.arg("--env-dut").arg(dir.join("env.dut.yaml"));
    }
    if let Some(root) = &settings.nfs_root {
        command.arg("--nfs-root").arg(root);
    }
    for plugin_dir in &settings.plugin_dirs {
        command.arg("--plugin-dir").arg(plugin_dir);
    }
    for dir in settings
        .local_file_dirs
        .iter()
        .map(PathBuf::from)
        .chain(dispatcher_local_dirs(&dispatcher))
    {
        command.arg("--local-file-dir").arg(dir);
    }
    command.arg(dir.join("job.yaml"));
    apply_env(&mut command, &files.env);
    // After env.yaml, whose `purge` would clear it.
    if let Some(tag) = &job.record.tag {
        command.env(crate::job_processes::TAG_VAR, tag);
    }
    let stdout = std::fs::File::create(dir.join("stdout")).map_err(fail("cannot create stdout"))?;
    let stderr = std::fs::File::create(dir.join("stderr")).map_err(fail("cannot create stderr"))?;
    command
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the closure touches nothing else.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = command.spawn().map_err(fail("cannot start basalt run"))?;
    job.record.pid = Some(child.id() as i32);
    job.record.state = SlaveJobState::Running;
    job.child = Some(child);
    job.save().map_err(fail("cannot write its record"))?;
    Ok(job)
}

/// Applies LAVA's env.yaml (`purge`, `removes`, `overrides`) to the job process's
/// environment.
fn apply_env(command: &mut Command, env_yaml: &str) {
    let Ok(env) = crate::yaml11::from_str(env_yaml) else {
        return;
    };
    if env.get("purge").and_then(Value::as_bool) == Some(true) {
        command.env_clear();
    }
    for name in crate::data::string_list(env.get("removes")) {
        command.env_remove(name);
    }
    if let Some(overrides) = env.get("overrides").and_then(Value::as_object) {
        for (name, value) in overrides {
            command.env(name, crate::data::text(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_process_is_matched_by_its_own_directory_only() {
        let jobs = tempfile::tempdir().unwrap();
        let twelve = jobs.path().join("12");
        // `sh -c CMD ARG0`: the shell keeps the job file on its command line, as basalt run
        // does (`; :` keeps the shell from exec'ing sleep in its place).
        use std::os::unix::process::CommandExt;
        // In its own process group, so that its sleep goes with it at the end.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 30; :")
            .arg(twelve.join("job.yaml"))
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until the exec, /proc shows the test's own command line.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process_runs_job(pid, &twelve) {
            assert!(std::time::Instant::now() < deadline, "the shell never ran");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !process_runs_job(pid, &jobs.path().join("1")),
            "job 1 must not adopt job 12's process"
        );
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        assert!(
            !process_runs_job(pid, &twelve),
            "a dead process runs nothing"
        );
    }
}
