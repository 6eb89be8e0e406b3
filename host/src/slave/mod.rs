//! `basalt slave`: connects out to the master, takes jobs, runs each as a separate
//! `basalt run` process in its own session, ships their logs and reports their end.
//!
//! The slave knows nothing about devices: everything a job needs comes in START. Job
//! processes outlive the slave (their own session; systemd's `KillMode=process`), and the
//! job table on disk ([`jobs`]) lets a restarted slave re-adopt them. Towards a Basalt
//! master, logs go as acknowledged byte ranges of each job's `output.yaml` (the durable
//! spool), and END — carrying the log's length — goes only once all of it is acknowledged,
//! so the master's copy is complete and has each line once however often either side is
//! killed. Towards a LAVA master, lines are pushed to its log socket as LAVA's lava-run does.

pub mod config;
pub mod jobs;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

pub use config::SlaveConfig;
use jobs::{SlaveJob, SlaveJobState};

use crate::transport::{
    ClientCurve, ControlMessage, LogPusher, SlaveSocket, FEATURE_ACKED_LOGS, PROTOCOL_VERSION,
};

/// The most log bytes one LOGS message carries.
const LOG_CHUNK: u64 = 1024 * 1024;
/// The most unacknowledged log bytes per job.
const LOG_WINDOW: u64 = 4 * LOG_CHUNK;
/// The longest the loop sleeps.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// How long HELLO may go unanswered on one connection before the slave opens a new one.
/// An encrypted master's ROUTER keeps a name with the connection that holds it: a new
/// connection that arrives before the master has seen the old one close stays unnamed, its
/// messages unread, for as long as it lives (libzmq without handover). A fresh connection
/// later is named.
const HELLO_RECONNECT: Duration = Duration::from_secs(10);
/// The shortest wait for the answer to a PING before connecting again.
const MIN_PING_WAIT: Duration = Duration::from_secs(5);

/// Log delivery progress of one job (in memory: after a restart the master is asked).
#[derive(Default)]
struct Shipping {
    /// Bytes the master confirmed; None until it said.
    acked: Option<u64>,
    /// Bytes sent (acknowledged or not).
    sent: u64,
    /// Bytes of the log pushed to a LAVA master's log socket, which acknowledges nothing:
    /// kept in the job's directory, so a restarted slave resumes after them.
    pushed: u64,
    /// When the last LOGS went out / the last progress was acknowledged.
    last_send: Option<Instant>,
    last_progress: Option<Instant>,
    /// When END was last sent.
    end_sent: Option<Instant>,
}

/// The slave's state.
pub struct Slave {
    config: SlaveConfig,
    name: String,
    socket: SlaveSocket,
    curve: Option<ClientCurve>,
    pusher: Option<LogPusher>,
    basalt: PathBuf,
    jobs: HashMap<u64, SlaveJob>,
    shipping: HashMap<u64, Shipping>,
    acked_logs: bool,
    ping_interval: Duration,
    last_heard: Instant,
    last_ping: Instant,
}

impl Slave {
    fn jobs_dir(&self) -> PathBuf {
        self.config.state_dir.join("jobs")
    }

    /// Connects, says HELLO until the master answers, then serves until `stop` is set.
    pub fn run(config: SlaveConfig, stop: &AtomicBool) -> anyhow::Result<()> {
        let name = config.worker_name();
        if name == "lava-logs" {
            anyhow::bail!("the worker name lava-logs is reserved by LAVA's protocol");
        }
        let jobs_dir = config.state_dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir)
            .with_context(|| format!("cannot create {}", jobs_dir.display()))?;
        let curve = config
            .curve()
            .context("--encrypt needs the master's public and this slave's secret certificate")?;
        let socket = SlaveSocket::connect_with(
            &config.endpoint(config.control_port),
            &name,
            curve.as_ref(),
        )?;
        let basalt = std::env::current_exe().context("cannot find the basalt executable")?;
        let jobs: HashMap<u64, SlaveJob> = jobs::load(&jobs_dir)
            .into_iter()
            .map(|j| (j.record.id, j))
            .collect();
        for job in jobs.values() {
            info!("re-adopted job {} ({:?})", job.record.id, job.record.state);
            // A slave that died between a job's end and its sweep, or a job process killed
            // while no slave ran: nothing of a finished job may keep running.
            if job.record.state == SlaveJobState::Finished {
                report_leftovers(job.record.id, &job.end_leftovers());
            }
        }
        let now = Instant::now();
        let mut slave = Slave {
            name,
            socket,
            curve,
            pusher: None,
            basalt,
            shipping: jobs
                .iter()
                .map(|(&id, job)| {
                    let shipping = Shipping {
                        pushed: job.pushed(),
                        ..Shipping::default()
                    };
                    (id, shipping)
                })
                .collect(),
            jobs,
            acked_logs: false,
            ping_interval: Duration::from_secs(5),
            last_heard: now,
            last_ping: now,
            config,
        };
        if !slave.hello(stop) {
            return Ok(());
        }
        slave.serve(stop);
        info!("slave stopping; job processes keep running");
        Ok(())
    }

    /// HELLO, then HELLO_RETRY until HELLO_OK. False if stopped first.
    fn hello(&mut self, stop: &AtomicBool) -> bool {
        let features = vec![FEATURE_ACKED_LOGS.to_owned()];
        let version = Some(format!("basalt {}", env!("CARGO_PKG_VERSION")));
        let hello = ControlMessage::Hello {
            protocol: PROTOCOL_VERSION,
            version: version.clone(),
            features: features.clone(),
        };
        self.socket.send(&hello);
        info!(
            "{} connecting to {}",
            self.name,
            self.config.endpoint(self.config.control_port)
        );
        let mut last = Instant::now();
        let mut connected_at = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if connected_at.elapsed() >= HELLO_RECONNECT {
                warn!(
                    "no HELLO_OK for {:?}: connecting again on a new connection",
                    connected_at.elapsed()
                );
                self.new_socket();
                self.socket.send(&hello);
                connected_at = Instant::now();
                last = Instant::now();
            }
            let mut batch = self.socket.recv(MAX_WAIT).into_iter();
            while let Some(frames) = batch.next() {
                match ControlMessage::decode(&frames) {
                    Ok(ControlMessage::HelloOk { features }) => {
                        self.acked_logs = features.iter().any(|f| f == FEATURE_ACKED_LOGS);
                        info!(
                            "connected to the master ({} logs)",
                            if self.acked_logs {
                                "acknowledged"
                            } else {
                                "LAVA"
                            }
                        );
                        if !self.acked_logs {
                            self.pusher = LogPusher::connect(
                                &self.config.endpoint(self.config.log_port),
                                self.curve.as_ref(),
                            )
                            .map_err(|e| warn!("{e}"))
                            .ok();
                        }
                        self.last_heard = Instant::now();
                        // What came right behind HELLO_OK is already the main loop's.
                        for frames in batch {
                            self.receive(&frames);
                        }
                        return true;
                    }
                    Ok(other) => debug!("ignoring {} before HELLO_OK", other.action()),
                    Err(e) => warn!("dropping an invalid message from the master: {e}"),
                }
            }
            // Jobs go on without a master: their ends are noticed and cancels enforced;
            // their logs wait in their files until a master takes them.
            self.watch_processes();
            if last.elapsed() >= self.config.timing.hello_retry() {
                last = Instant::now();
                self.socket.send(&ControlMessage::HelloRetry {
                    protocol: PROTOCOL_VERSION,
                    version: version.clone(),
                    features: features.clone(),
                });
            }
        }
        false
    }

    fn serve(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            for frames in self.socket.recv(MAX_WAIT) {
                self.receive(&frames);
            }
            if self.last_ping > self.last_heard
                && self.last_ping.elapsed() >= self.ping_interval.max(MIN_PING_WAIT)
            {
                // A PING went unanswered: the master restarted, the network failed, or
                // someone took this worker's name over at the master. A new connection and
                // HELLO take the name back and make the master ask about every job.
                warn!(
                    "no answer from the master for {:?}: connecting again",
                    self.last_heard.elapsed()
                );
                if !self.reconnect(stop) {
                    return;
                }
                continue;
            }
            if self.last_heard.elapsed() >= self.ping_interval
                && self.last_ping.elapsed() >= self.ping_interval
            {
                self.socket.send(&ControlMessage::Ping);
                self.last_ping = Instant::now();
                if self.last_heard.elapsed() > 4 * self.ping_interval {
                    warn!(
                        "the master has been silent for {:?}",
                        self.last_heard.elapsed()
                    );
                }
            }
            self.check_jobs();
        }
    }

    /// A new socket and HELLO. False if stopped first.
    /// Replaces the control socket by a new connection (keeping the old one if that fails).
    fn new_socket(&mut self) {
        let endpoint = self.config.endpoint(self.config.control_port);
        match SlaveSocket::connect_with(&endpoint, &self.name, self.curve.as_ref()) {
            Ok(socket) => self.socket = socket,
            Err(e) => warn!("{e}"),
        }
    }

    fn reconnect(&mut self, stop: &AtomicBool) -> bool {
        self.new_socket();
        let connected = self.hello(stop);
        let now = Instant::now();
        self.last_heard = now;
        self.last_ping = now;
        connected
    }

    fn receive(&mut self, frames: &[Vec<u8>]) {
        match ControlMessage::decode(frames) {
            Ok(message) => {
                self.last_heard = Instant::now();
                self.handle(message);
            }
            Err(e) => warn!("dropping an invalid message from the master: {e}"),
        }
    }

    fn handle(&mut self, message: ControlMessage) {
        match message {
            ControlMessage::Pong { interval } => {
                if interval >= 1 {
                    self.ping_interval = Duration::from_secs(interval as u64);
                }
            }
            ControlMessage::HelloOk { .. } => debug!("HELLO_OK again"),
            ControlMessage::Start { job, files } => self.start(job, &files),
            ControlMessage::Cancel { job } => self.cancel(job),
            ControlMessage::Status { job } => self.status(job),
            ControlMessage::EndOk { job } => self.end_ok(job),
            ControlMessage::LogsOk { job, stored } => self.logs_ok(job, stored),
            other => warn!(
                "the master sent {}, which only slaves send: dropped",
                other.action()
            ),
        }
    }

    fn start(&mut self, id: u64, files: &crate::transport::JobFiles) {
        if let Some(job) = self.jobs.get(&id) {
            match job.record.state {
                SlaveJobState::Finished if self.log_delivered(id) => self.send_end(id),
                _ => {
                    self.socket.send(&ControlMessage::StartOk { job: id });
                }
            }
            return;
        }
        match jobs::start(&self.jobs_dir(), id, files, &self.config.run, &self.basalt) {
            Ok(job) => {
                info!("job {id} started (pid {:?})", job.record.pid);
                self.jobs.insert(id, job);
                self.shipping.insert(
                    id,
                    Shipping {
                        acked: Some(0),
                        ..Default::default()
                    },
                );
                self.socket.send(&ControlMessage::StartOk { job: id });
            }
            Err(e) => {
                // Leave nothing behind: the master fails the job on the empty END.
                warn!("{e}");
                let _ = std::fs::remove_dir_all(self.jobs_dir().join(id.to_string()));
                self.socket.send(&ControlMessage::StartOk { job: id });
                self.socket.send(&ControlMessage::End {
                    job: id,
                    stderr: e.to_string(),
                    description: Vec::new(),
                    log_bytes: None,
                });
            }
        }
    }

    fn cancel(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            self.socket.send(&ControlMessage::End {
                job: id,
                stderr: String::new(),
                description: Vec::new(),
                log_bytes: None,
            });
            return;
        };
        if job.record.state == SlaveJobState::Running {
            info!("canceling job {id}");
            if let Err(e) = job.cancel() {
                warn!("job {id}: cannot save its record: {e}");
            }
        }
    }

    fn status(&mut self, id: u64) {
        match self.jobs.get(&id).map(|j| j.record.state) {
            // END says the log is complete: only once the master holds all of it (after a
            // new connection some may still be on its way); until then the job is held.
            Some(SlaveJobState::Finished) if self.log_delivered(id) => self.send_end(id),
            Some(_) => {
                self.socket.send(&ControlMessage::StartOk { job: id });
            }
            None => {
                self.socket.send(&ControlMessage::End {
                    job: id,
                    stderr: String::new(),
                    description: Vec::new(),
                    log_bytes: None,
                });
            }
        }
    }

    fn end_ok(&mut self, id: u64) {
        if let Some(job) = self.jobs.remove(&id) {
            let done = if self.config.keep_finished {
                let kept = self.config.state_dir.join("finished").join(id.to_string());
                info!("job {id} delivered; keeping it in {}", kept.display());
                let _ = std::fs::remove_dir_all(&kept);
                kept.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::rename(&job.dir, &kept))
            } else {
                info!("job {id} delivered; removing {}", job.dir.display());
                std::fs::remove_dir_all(&job.dir)
            };
            if let Err(e) = done {
                warn!("cannot clear {}: {e}", job.dir.display());
            }
        }
        self.shipping.remove(&id);
    }

    fn logs_ok(&mut self, id: u64, stored: u64) {
        let Some(shipping) = self.shipping.get_mut(&id) else {
            return;
        };
        if shipping.acked.is_none_or(|a| stored > a) {
            shipping.last_progress = Some(Instant::now());
        }
        shipping.acked = Some(stored);
        if shipping.sent < stored {
            shipping.sent = stored;
        }
    }

    /// Notices job processes that ended (and ends what they left running) and kills those
    /// that outlived their cancel grace. Needs no master: it also runs while the slave waits
    /// for one.
    fn watch_processes(&mut self) {
        let grace = self.config.timing.cancel_grace().as_secs_f64();
        for (&id, job) in self.jobs.iter_mut() {
            if matches!(
                job.record.state,
                SlaveJobState::Running | SlaveJobState::Canceling
            ) && !job.alive()
            {
                info!(
                    "job {id} process ended (exit status {:?})",
                    job.record.exit_code
                );
                report_leftovers(id, &job.end_leftovers());
                job.record.state = SlaveJobState::Finished;
                if let Err(e) = job.save() {
                    warn!("job {id}: cannot save its record: {e}");
                }
            }
            if job.record.state == SlaveJobState::Canceling && job.canceling_for() > grace {
                warn!("job {id} did not stop after SIGTERM: killing it");
                job.signal(Signal::SIGKILL);
            }
        }
    }

    /// Watches job processes, enforces cancel deadlines, ships logs, sends END.
    fn check_jobs(&mut self) {
        self.watch_processes();
        let ids: Vec<u64> = self.jobs.keys().copied().collect();
        for id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            let finished = job.record.state == SlaveJobState::Finished;
            let complete = if self.acked_logs {
                self.ship_acked(id)
            } else {
                self.ship_lava(id)
            };
            if finished && complete {
                let due = self
                    .shipping
                    .get(&id)
                    .and_then(|s| s.end_sent)
                    .is_none_or(|at| at.elapsed() >= self.config.timing.end_resend());
                if due {
                    self.send_end(id);
                }
            }
        }
    }

    /// Whether the master acknowledged the job's whole log (always so towards a LAVA master,
    /// which takes lines as they come).
    fn log_delivered(&self, id: u64) -> bool {
        if !self.acked_logs {
            return true;
        }
        let (Some(job), Some(acked)) = (
            self.jobs.get(&id),
            self.shipping.get(&id).and_then(|s| s.acked),
        ) else {
            return false;
        };
        matches!(Self::whole_log_len(job, acked), Ok((end, rest)) if end == acked && rest.is_empty())
    }

    /// The length of the job's log up to its last complete line.
    fn whole_log_len(job: &SlaveJob, from: u64) -> std::io::Result<(u64, Vec<u8>)> {
        let mut file = match std::fs::File::open(job.log_path()) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len <= from {
            return Ok((from.min(len), Vec::new()));
        }
        let take = (len - from).min(LOG_CHUNK);
        let mut data = vec![0; take as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut data)?;
        match memchr::memrchr(b'\n', &data) {
            Some(last) => {
                data.truncate(last + 1);
                Ok((from + data.len() as u64, data))
            }
            None => Ok((from, Vec::new())),
        }
    }

    /// Sends the next pieces of a job's log; true when the master holds all of it.
    fn ship_acked(&mut self, id: u64) -> bool {
        let retry = self.config.timing.logs_retry();
        let last_heard = self.last_heard;
        let (Some(job), Some(shipping)) = (self.jobs.get(&id), self.shipping.get_mut(&id)) else {
            return false;
        };
        let Some(acked) = shipping.acked else {
            // After a restart: ask the master how much it holds.
            if shipping.last_send.is_none_or(|at| at.elapsed() >= retry) {
                self.socket.send(&ControlMessage::Logs {
                    job: id,
                    offset: 0,
                    data: Vec::new(),
                });
                shipping.last_send = Some(Instant::now());
            }
            return false;
        };
        // Nothing acknowledged for a while although the master spoke since: it lost what
        // was in flight (it restarted, or the queue dropped it); go back to what it
        // confirmed. A master that has said nothing since gets nothing more: what is in
        // flight waits in the socket, and the rest in the log file, not in memory.
        if shipping.sent > acked
            && shipping
                .last_progress
                .or(shipping.last_send)
                .is_some_and(|at| at.elapsed() >= retry)
            && shipping.last_send.is_none_or(|at| last_heard > at)
        {
            debug!("job {id}: resending its log from byte {acked}");
            shipping.sent = acked;
            shipping.last_progress = Some(Instant::now());
        }
        loop {
            if shipping.sent - acked >= LOG_WINDOW {
                return false;
            }
            let (end, data) = match Self::whole_log_len(job, shipping.sent) {
                Ok(read) => read,
                Err(e) => {
                    warn!("job {id}: cannot read its log: {e}");
                    return false;
                }
            };
            if data.is_empty() {
                return acked == end && shipping.sent == end;
            }
            let offset = shipping.sent;
            if !self.socket.send(&ControlMessage::Logs {
                job: id,
                offset,
                data,
            }) {
                return false;
            }
            shipping.sent = end;
            shipping.last_send = Some(Instant::now());
        }
    }

    /// Pushes new log lines to a LAVA master's log socket; true when all were pushed.
    ///
    /// A LAVA master acknowledges nothing, so a slave killed mid-push cannot know what
    /// arrived. Each line's end is recorded *before* the line is pushed: a kill between the
    /// two can lose that one line, never send one twice (a doubled result line becomes a
    /// doubled test case on the master). A push the socket refuses is taken back.
    fn ship_lava(&mut self, id: u64) -> bool {
        let (Some(job), Some(shipping), Some(pusher)) = (
            self.jobs.get(&id),
            self.shipping.get_mut(&id),
            self.pusher.as_ref(),
        ) else {
            return true;
        };
        let record = |bytes: u64| {
            if let Err(e) = job.save_pushed(bytes) {
                warn!("job {id}: cannot record how much of its log was pushed: {e}");
                return false;
            }
            true
        };
        loop {
            let (end, data) = match Self::whole_log_len(job, shipping.pushed) {
                Ok(read) => read,
                Err(_) => return false,
            };
            if data.is_empty() {
                return true;
            }
            for line in data.split_inclusive(|&b| b == b'\n') {
                let text = line.strip_suffix(b"\n").unwrap_or(line);
                let text = text.strip_prefix(b"- ").unwrap_or(text);
                let next = shipping.pushed + line.len() as u64;
                if text.is_empty() {
                    shipping.pushed = next;
                    continue;
                }
                // Unrecorded, nothing is pushed: a master that got the line must never
                // get it again from the next slave.
                if !record(next) {
                    return false;
                }
                if !pusher.push(id, text) {
                    // Resume at this line next time.
                    record(shipping.pushed);
                    return false;
                }
                shipping.pushed = next;
            }
            if shipping.pushed < end {
                return false;
            }
        }
    }

    fn send_end(&mut self, id: u64) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let description = match job.result_file() {
            Some(text) => {
                let mut xz = Vec::new();
                let mut input = text.as_slice();
                match lzma_rs::xz_compress(&mut input, &mut xz) {
                    Ok(()) => xz,
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        let log_bytes = self
            .shipping
            .get(&id)
            .filter(|_| self.acked_logs)
            .and_then(|s| s.acked);
        self.socket.send(&ControlMessage::End {
            job: id,
            stderr: job.stderr(),
            description,
            log_bytes,
        });
        if let Some(shipping) = self.shipping.get_mut(&id) {
            shipping.end_sent = Some(Instant::now());
        }
    }
}

/// Logs what of a finished job had to be ended.
fn report_leftovers(id: u64, ended: &[crate::job_processes::Ended]) {
    if !ended.is_empty() {
        let list: Vec<String> = ended.iter().map(ToString::to_string).collect();
        warn!(
            "job {id}: ended {} process(es) it left running: {}",
            ended.len(),
            list.join(", ")
        );
    }
}

/// Runs a slave until SIGTERM or SIGINT.
pub fn run(config: SlaveConfig) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Slave::run(config, &stop)
}
