//! The master's control loop: one thread owning the ZMQ sockets, answering slaves, running
//! the scheduler when something changed and re-sending START and CANCEL until answered.
//!
//! It never blocks on a slave: every send is non-blocking and every important message is
//! repeated (START until START_OK, CANCEL until END, STATUS once per restart as LAVA does),
//! so a lost message costs a resend interval, never a job. Every malformed message is logged
//! with its sender and dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::config::MasterConfig;
use super::health::HealthChecks;
use super::joblogs::JobLogs;
use super::start::job_files;
use crate::store::{Job, JobHealth, JobState, Store, StoreError, WorkerSeen};
use crate::template::TemplateEngine;
use crate::transport::{
    AllowList, ControlMessage, Incoming, MasterSockets, Sender, FEATURE_ACKED_LOGS,
    PROTOCOL_VERSION,
};

/// The longest the loop sleeps, so SIGTERM is noticed promptly.
const MAX_WAIT: Duration = Duration::from_millis(250);
/// How often the scheduler looks again without an event, for health checks due by the clock.
const HEALTH_REVIEW: Duration = Duration::from_secs(60);
/// A refused sender is logged at most this often (a rogue must not flood the log).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// How often running jobs are checked against their own timeouts.
const OVERDUE_CHECK: Duration = Duration::from_secs(5);

/// A job definition's `timeouts.job`.
fn job_timeout(definition: &str) -> Option<Duration> {
    let job = crate::yaml11::from_str(definition).ok()?;
    crate::job::timeout_of(job.get("timeouts")?.get("job")?)
}

/// What the master knows of a slave since it started.
struct Peer {
    last_seen: Instant,
    /// When `last_seen` was last written to the database (it is written at most once per
    /// ping interval, not per message).
    recorded: Instant,
    online: bool,
}

/// The control loop's state.
pub struct ControlLoop {
    config: MasterConfig,
    store: Store,
    sockets: MasterSockets,
    engine: TemplateEngine,
    health: HealthChecks,
    logs: JobLogs,
    peers: HashMap<String, Peer>,
    start_sent: HashMap<u64, Instant>,
    cancel_sent: HashMap<u64, Instant>,
    /// Something changed that the scheduler should look at.
    dirty: bool,
    next_resend: Instant,
    next_offline_check: Instant,
    /// When running jobs are next checked against their own timeouts.
    next_overdue_check: Instant,
    /// The `timeouts.job` of each started job, read once.
    job_timeouts: HashMap<u64, Option<Duration>>,
    /// When to look for health checks that fell due with time (no event announces those).
    next_health_review: Instant,
    /// The next scheduling pass also looks for Good devices whose health check is due.
    review_due: bool,
    passes: u64,
    /// The slaves' allow-list, when the link is encrypted.
    allow: Option<Arc<AllowList>>,
    /// Encrypted: workers whose connection proved to be theirs (a message under their own
    /// key) since a connection last closed. START, which carries the job's
    /// secrets, goes only to these.
    verified: HashSet<String>,
    /// When a refusal was last logged, per claimed name.
    refusals: HashMap<String, Instant>,
    /// When unused self-registered workers were last looked for.
    next_forget: Instant,
    /// Jobs whose log passed `job_log_limit_mib`: canceled, the rest of their log dropped,
    /// and they end Incomplete saying why.
    log_limited: HashSet<u64>,
}

impl ControlLoop {
    /// A loop over bound sockets and an open store.
    pub fn new(
        config: MasterConfig,
        store: Store,
        sockets: MasterSockets,
        engine: TemplateEngine,
        allow: Option<Arc<AllowList>>,
        log_faults: Arc<super::joblogs::LogFaults>,
    ) -> Self {
        let now = Instant::now();
        let logs = JobLogs::with_faults(config.jobs_dir(), log_faults);
        let health = HealthChecks::new(&config.data_dir);
        Self {
            health,
            config,
            store,
            sockets,
            engine,
            logs,
            peers: HashMap::new(),
            start_sent: HashMap::new(),
            cancel_sent: HashMap::new(),
            dirty: true,
            next_resend: now,
            next_offline_check: now,
            next_health_review: now + HEALTH_REVIEW,
            review_due: true,
            passes: 0,
            allow,
            verified: HashSet::new(),
            refusals: HashMap::new(),
            next_forget: now,
            log_limited: HashSet::new(),
            next_overdue_check: now,
            job_timeouts: HashMap::new(),
        }
    }

    /// Runs until `stop` is set, or until the database turns out to be corrupt (no retry
    /// can help then, and a master that cannot write must not look alive).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), StoreError> {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .next_resend
                .min(self.next_offline_check)
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), MAX_WAIT);
            for incoming in self.sockets.poll(wait) {
                self.handle(incoming);
            }
            if let Err(e) = self.tick() {
                if e.is_corrupt() {
                    tracing::error!("{e}");
                    return Err(e);
                }
                warn!("database error, retrying: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Runs whatever is due: a scheduling pass if something changed, resends, the offline
    /// check.
    fn tick(&mut self) -> Result<(), StoreError> {
        let now = Instant::now();
        if now >= self.next_health_review {
            self.next_health_review = now + HEALTH_REVIEW;
            self.review_due = true;
            self.dirty = true;
        }
        if self.dirty {
            self.dirty = false;
            self.schedule()?;
            self.send_pending(false)?;
        }
        if now >= self.next_resend {
            self.next_resend = now + self.config.timing.resend();
            self.send_pending(true)?;
        }
        if now >= self.next_offline_check {
            self.next_offline_check =
                now + Duration::from_secs(self.config.timing.ping_interval_secs.max(1)) / 2;
            self.mark_silent_offline()?;
        }
        if now >= self.next_forget {
            self.next_forget = now + HEALTH_REVIEW;
            self.forget_unused_workers()?;
        }
        if now >= self.next_overdue_check {
            self.next_overdue_check = now + OVERDUE_CHECK;
            self.end_overdue_jobs()?;
        }
        Ok(())
    }

    /// Ends running jobs that outlived their own `timeouts.job` by more than the grace:
    /// their slave lost them (or is gone) and would never report; their devices are freed.
    fn end_overdue_jobs(&mut self) -> Result<(), StoreError> {
        let grace = self.config.timing.overdue_grace_secs;
        let now = crate::store::now_ms();
        let started_jobs = self.store.started_jobs()?;
        // Each definition is read once, not at every check.
        let running: HashSet<u64> = started_jobs.iter().map(|j| j.id).collect();
        self.job_timeouts.retain(|id, _| running.contains(id));
        for job in started_jobs {
            let timeout = *self
                .job_timeouts
                .entry(job.id)
                .or_insert_with(|| job_timeout(&job.definition));
            let (Some(started), Some(timeout)) = (job.start_time, timeout) else {
                continue;
            };
            let deadline = started
                .saturating_add(timeout.as_millis().min(i64::MAX as u128) as i64)
                .saturating_add((grace as i64).saturating_mul(1000));
            if now < deadline {
                continue;
            }
            let comment = format!(
                "the job outlived its timeout ({}s) by more than {grace}s and its worker {} \
                 never reported its end: ended by the master",
                timeout.as_secs(),
                job.worker.as_deref().unwrap_or("(none)")
            );
            warn!("job {}: {comment}", job.id);
            if let Some(worker) = &job.worker {
                // If its slave still holds it, it stops it.
                self.sockets
                    .send(worker, &ControlMessage::Cancel { job: job.id });
            }
            self.finish(&job, None, &comment)?;
        }
        Ok(())
    }

    /// Deletes workers that a HELLO created and that never got a device, once they have been
    /// offline long enough: names made up by strangers are not kept.
    fn forget_unused_workers(&mut self) -> Result<(), StoreError> {
        let age = Duration::from_secs(self.config.forget_unused_workers_after_secs);
        let before = crate::store::now_ms() - age.as_millis().min(i64::MAX as u128) as i64;
        for name in self.store.forget_unused_workers(before)? {
            info!(
                "forgot worker {name}: created by its slave's HELLO, never given a device, \
                 offline for {}s",
                age.as_secs()
            );
            self.peers.remove(&name);
        }
        self.refusals
            .retain(|_, at| at.elapsed() < REFUSAL_LOG_EVERY);
        Ok(())
    }

    /// Whether a HELLO may create an unknown worker: encrypted, a slave got that far only
    /// with a key on the allow-list; in the clear, as the master is configured.
    fn may_register(&self) -> bool {
        self.allow.is_some() || self.config.register_workers
    }

    /// Logs a refused message, at most once a minute per claimed name.
    fn refuse(&mut self, claimed: &str, why: &str) {
        let now = Instant::now();
        let due = self
            .refusals
            .get(claimed)
            .is_none_or(|at| now.duration_since(*at) >= REFUSAL_LOG_EVERY);
        if due && self.refusals.len() < 10_000 {
            self.refusals.insert(claimed.to_owned(), now);
            warn!("dropping messages claiming to be {claimed:?}: {why}");
        }
    }

    /// Encrypted: whether a message on the control socket under the name `peer` came from
    /// a connection admitted as that very worker, with a key the allow-list still holds. In
    /// the clear every message passes (LAVA's peers have no keys).
    fn authorized(&mut self, peer: &str, sender: Option<&Sender>) -> bool {
        let Some(allow) = self.allow.clone() else {
            return true;
        };
        let why = match sender {
            None => "the connection was not admitted by a key",
            Some(sender) if sender.worker != peer => {
                let why = format!("its key is the certificate of worker {}", sender.worker);
                self.refuse(peer, &why);
                return false;
            }
            Some(sender) if !allow.admits(sender) => {
                "its certificate was removed from the slaves' certificates"
            }
            Some(_) => {
                if self.verified.insert(peer.to_owned()) {
                    // Jobs waiting for this worker's START can go now.
                    self.dirty = true;
                }
                return true;
            }
        };
        self.refuse(peer, why);
        false
    }

    fn handle(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Wake => self.dirty = true,
            Incoming::Disconnected => self.verified.clear(),
            Incoming::BadPeer { peer } => {
                warn!("dropping a control message from a peer whose identity is not text: {peer:?}")
            }
            Incoming::Log { sender, frames } => self.lava_log(sender.as_ref(), &frames),
            Incoming::Control {
                peer,
                sender,
                frames,
            } => match ControlMessage::decode(&frames) {
                Ok(_) if !self.authorized(&peer, sender.as_ref()) => {}
                Ok(message) => {
                    if let Err(e) = self.control(&peer, message) {
                        warn!("{peer}: {e}");
                    }
                }
                Err(e) => warn!("dropping an invalid message from {peer}: {e}"),
            },
        }
    }

    /// Notes that a slave spoke; false if its worker is unknown and may not be created. A
    /// HELLO, or a slave first heard from without one (this master restarted under it), is
    /// asked about every job it should hold (STATUS), so the two sides agree again.
    fn seen(&mut self, peer: &str, hello: bool, version: Option<&str>) -> Result<bool, StoreError> {
        let now = Instant::now();
        let interval = Duration::from_secs(self.config.timing.ping_interval_secs.max(1));
        let known = self.peers.get(peer).map(|p| (p.online, p.recorded));
        let record = match known {
            None => true,
            Some((online, recorded)) => {
                !online || hello || now.duration_since(recorded) >= interval
            }
        };
        if record {
            let register = hello && self.may_register();
            match self.store.worker_seen(peer, version, register)? {
                WorkerSeen::Online => {}
                WorkerSeen::CameOnline => {
                    info!("worker {peer} is online");
                    self.dirty = true;
                }
                WorkerSeen::Unknown => {
                    self.peers.remove(peer);
                    self.refuse(
                        peer,
                        "no such worker, and this master does not register workers at HELLO \
                         (add it with `basalt workers add`)",
                    );
                    return Ok(false);
                }
            }
        }
        let entry = self.peers.entry(peer.to_owned()).or_insert(Peer {
            last_seen: now,
            recorded: now,
            online: true,
        });
        entry.last_seen = now;
        entry.online = true;
        if record {
            entry.recorded = now;
        }
        if known.is_none() || hello {
            for job in self.store.active_jobs_on(peer)? {
                let why = if hello {
                    "it said HELLO"
                } else {
                    "master restarted"
                };
                info!("asking {peer} about job {} ({why})", job.id);
                self.sockets
                    .send(peer, &ControlMessage::Status { job: job.id });
            }
        }
        Ok(true)
    }

    fn control(&mut self, peer: &str, message: ControlMessage) -> Result<(), StoreError> {
        if !crate::store::is_valid_name(peer) {
            // The identity becomes a worker name and a directory under dispatcher.d/.
            warn!(
                "dropping a message from peer {peer:?}: a worker name has letters, digits, '-', \
                 '_' and '.' only (start the slave with --name)"
            );
            return Ok(());
        }
        if peer == "lava-logs" {
            // LAVA's log daemon only ever pings; it is not a worker.
            if message == ControlMessage::Ping {
                self.sockets.send(peer, &self.pong());
            }
            return Ok(());
        }
        match message {
            ControlMessage::Hello {
                protocol,
                version,
                features,
            }
            | ControlMessage::HelloRetry {
                protocol,
                version,
                features,
            } => {
                if protocol != PROTOCOL_VERSION {
                    warn!("{peer} speaks protocol {protocol}, not {PROTOCOL_VERSION}: ignored");
                    return Ok(());
                }
                let accepted: Vec<String> = features
                    .into_iter()
                    .filter(|f| f == FEATURE_ACKED_LOGS)
                    .collect();
                // HELLO_OK first: the STATUS that `seen` may send must come after it.
                let known = self.store.worker(peer)?.is_some();
                if !(known || self.may_register()) {
                    self.seen(peer, true, version.as_deref())?;
                    return Ok(());
                }
                self.sockets
                    .send(peer, &ControlMessage::HelloOk { features: accepted });
                info!(
                    "{peer} connected ({})",
                    version.as_deref().unwrap_or("LAVA")
                );
                self.seen(peer, true, version.as_deref())?;
            }
            ControlMessage::Ping => {
                if self.seen(peer, false, None)? {
                    self.sockets.send(peer, &self.pong());
                }
            }
            ControlMessage::StartOk { job } => {
                if !self.seen(peer, false, None)? {
                    return Ok(());
                }
                self.start_sent.remove(&job);
                match self.job_on(peer, job)? {
                    Some(_) if self.store.mark_running(job)? => info!("job {job} runs on {peer}"),
                    Some(_) => {}
                    None => debug!("START_OK for job {job}, which {peer} does not hold"),
                }
            }
            ControlMessage::Logs { job, offset, data } => {
                if !self.seen(peer, false, None)? {
                    return Ok(());
                }
                let stored = match self.job_on(peer, job)? {
                    Some(_) if self.over_log_limit(job, offset + data.len() as u64)? => {
                        // Taken and dropped, so the slave goes on to its END.
                        offset + data.len() as u64
                    }
                    Some(_) => match self.logs.append(&self.store, job, offset, &data) {
                        Ok(appended) => appended.stored,
                        // Logged by JobLogs (once per job until it recovers); no LOGS_OK,
                        // so the slave keeps the lines and sends them again.
                        Err(_) => return Ok(()),
                    },
                    // A job this master does not know, or another worker's: accept and
                    // drop, so the slave can finish and forget it.
                    None => {
                        debug!("{peer}: dropping log bytes for job {job}, not one of its jobs");
                        offset + data.len() as u64
                    }
                };
                self.sockets
                    .send(peer, &ControlMessage::LogsOk { job, stored });
            }
            ControlMessage::End {
                job,
                stderr,
                description,
                log_bytes,
            } => {
                if !self.seen(peer, false, None)? {
                    return Ok(());
                }
                self.end(peer, job, &stderr, &description, log_bytes)?;
            }
            other => warn!(
                "{peer} sent {}, which only the master sends: dropped",
                other.action()
            ),
        }
        Ok(())
    }

    fn pong(&self) -> ControlMessage {
        ControlMessage::Pong {
            interval: self.config.timing.ping_interval_secs.max(1) as u32,
        }
    }

    /// The job if it exists and belongs to this worker.
    fn job_on(&self, peer: &str, id: u64) -> Result<Option<Job>, StoreError> {
        Ok(self
            .store
            .job(id)?
            .filter(|job| job.worker.as_deref() == Some(peer)))
    }

    fn end(
        &mut self,
        peer: &str,
        id: u64,
        stderr: &str,
        description: &[u8],
        log_bytes: Option<u64>,
    ) -> Result<(), StoreError> {
        let Some(job) = self.job_on(peer, id)? else {
            if self
                .store
                .job(id)?
                .is_some_and(|j| j.state != JobState::Finished)
            {
                warn!("{peer} sent END for job {id}, which is not one of its jobs: ignored");
            }
            self.sockets.send(peer, &ControlMessage::EndOk { job: id });
            return Ok(());
        };
        if job.state == JobState::Finished {
            self.sockets.send(peer, &ControlMessage::EndOk { job: id });
            return Ok(());
        }
        if let Some(expected) = log_bytes.filter(|_| !self.log_limited.contains(&id)) {
            let held = self.logs.held(&self.store, id).unwrap_or(job.log_bytes);
            if held < expected {
                // Not all of the log is here yet: tell the slave where to resume; it sends
                // END again once the rest is acknowledged.
                self.sockets.send(
                    peer,
                    &ControlMessage::LogsOk {
                        job: id,
                        stored: held,
                    },
                );
                return Ok(());
            }
        }
        if let Some(summary) = self.save_description(id, description) {
            self.note_power_state(&job, &summary);
        }
        let job = self.store.job(id)?.unwrap_or(job);
        if description.is_empty() {
            let mut comment = String::from("the job process crashed");
            let tail = stderr.trim();
            if !tail.is_empty() {
                comment = format!("{comment}: {}", last_chars(tail, 2000));
            }
            self.finish(&job, None, &comment)?;
        } else if log_bytes.is_some() || job.job_result.is_some() {
            self.finish(&job, job.job_result.as_deref(), "")?;
        }
        // A LAVA slave's END without the final result yet: the log socket will finish it.
        self.sockets.send(peer, &ControlMessage::EndOk { job: id });
        Ok(())
    }

    /// Saves END's description (xz-compressed YAML) as the job's `description.yaml`; returns
    /// the text.
    fn save_description(&self, id: u64, description: &[u8]) -> Option<Vec<u8>> {
        if description.is_empty() {
            return None;
        }
        let mut text = Vec::new();
        let mut input = description;
        match lzma_rs::xz_decompress(&mut input, &mut text) {
            Ok(()) => {
                let path = self.config.jobs_dir().join(id.to_string());
                let written = std::fs::create_dir_all(&path)
                    .and_then(|()| std::fs::write(path.join("description.yaml"), &text));
                if let Err(e) = written {
                    warn!("job {id}: cannot save description.yaml: {e}");
                }
                Some(text)
            }
            Err(e) => {
                warn!("job {id}: END carried a description that is not xz: {e}");
                None
            }
        }
    }

    /// Records the power state a Basalt job process read back at its end (`power_state` in its
    /// summary; LAVA's slaves send none).
    fn note_power_state(&self, job: &Job, summary: &[u8]) {
        let Some(device) = &job.actual_device else {
            return;
        };
        let state = std::str::from_utf8(summary)
            .ok()
            .and_then(|text| crate::yaml11::from_str(text).ok())
            .and_then(|value| match value.get("power_state")? {
                serde_json::Value::String(state) => Some(state.clone()),
                // A plain on/off from older job processes, read by YAML 1.1 as a boolean.
                serde_json::Value::Bool(on) => Some(if *on { "on" } else { "off" }.to_owned()),
                _ => None,
            });
        if let Some(state) = state.filter(|s| ["on", "off", "unknown"].contains(&s.as_str())) {
            if let Err(e) = self.store.set_power_state(device, &state) {
                warn!("{device}: cannot record its power state: {e}");
            }
        }
    }

    /// Whether job `id`'s log, once it reaches byte `end`, is past the master's limit; the
    /// first time, the job is canceled and will end Incomplete saying so.
    fn over_log_limit(&mut self, id: u64, end: u64) -> Result<bool, StoreError> {
        let limit = self.config.job_log_limit_mib.saturating_mul(1 << 20);
        if self.log_limited.contains(&id) {
            return Ok(true);
        }
        if limit == 0 || end <= limit {
            return Ok(false);
        }
        warn!(
            "job {id}: its log passes the limit of {} MiB; the rest is dropped and the job \
             canceled",
            self.config.job_log_limit_mib
        );
        self.log_limited.insert(id);
        self.store.request_cancel(id)?;
        self.dirty = true;
        Ok(true)
    }

    /// Ends a job with the health its final result gives.
    fn finish(&mut self, job: &Job, result: Option<&str>, comment: &str) -> Result<(), StoreError> {
        let canceled =
            job.state == JobState::Canceling || job.error_type.as_deref() == Some("Canceled");
        let limited = self.log_limited.remove(&job.id).then(|| {
            format!(
                "the job's log passed the master's limit of {} MiB (job_log_limit_mib): the \
                 master kept what came before it and canceled the job",
                self.config.job_log_limit_mib
            )
        });
        let comment = limited.as_deref().unwrap_or(comment);
        let health = match result {
            _ if limited.is_some() => JobHealth::Incomplete,
            _ if canceled => JobHealth::Canceled,
            Some("pass") => JobHealth::Complete,
            _ => JobHealth::Incomplete,
        };
        let comment = match (comment, &job.error_msg, result) {
            ("", Some(message), _) => message.clone(),
            ("", None, None) => "the job ended without a final result".to_owned(),
            (comment, _, _) => comment.to_owned(),
        };
        if self.store.finish(job.id, health, &comment)? {
            info!("job {} finished: {health}", job.id);
        }
        self.logs.forget(job.id);
        self.start_sent.remove(&job.id);
        self.cancel_sent.remove(&job.id);
        self.dirty = true;
        Ok(())
    }

    /// A log line from a LAVA job process: `[job id, YAML line]`. Taken only for a job that
    /// a worker holds (scheduled, running or canceling) and, encrypted, only from that
    /// worker's own key.
    fn lava_log(&mut self, sender: Option<&Sender>, frames: &[Vec<u8>]) {
        let [id, line, ..] = frames else {
            warn!(
                "dropping a log message with {} frame(s), not 2",
                frames.len()
            );
            return;
        };
        let Some(id) = std::str::from_utf8(id)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            warn!("dropping a log message whose job id is not a number");
            return;
        };
        if line.contains(&b'\n') || std::str::from_utf8(line).is_err() {
            warn!("job {id}: dropping a log message that is not one line of text");
            return;
        }
        let job = match self.store.job(id) {
            Ok(Some(job))
                if job.worker.is_some()
                    && matches!(
                        job.state,
                        JobState::Scheduled | JobState::Running | JobState::Canceling
                    ) =>
            {
                job
            }
            Ok(_) => {
                debug!("dropping a log line for job {id}, which no worker runs");
                return;
            }
            Err(e) => {
                warn!("{e}");
                return;
            }
        };
        if let Some(allow) = self.allow.clone() {
            let worker = job.worker.as_deref().unwrap_or_default();
            let admitted = sender.is_some_and(|s| s.worker == worker && allow.admits(s));
            if !admitted {
                let who = sender.map_or("an unadmitted connection", |s| s.worker.as_str());
                let why = format!("log lines for job {id}, which runs on {worker}, not there");
                self.refuse(who, &why);
                return;
            }
        }
        let mut entry = Vec::with_capacity(line.len() + 3);
        entry.extend_from_slice(b"- ");
        entry.extend_from_slice(line);
        entry.push(b'\n');
        let end = self.logs.held(&self.store, id).unwrap_or(job.log_bytes) + entry.len() as u64;
        match self.over_log_limit(id, end) {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                warn!("{e}");
                return;
            }
        }
        // A failed append is logged by JobLogs; LAVA's log socket has no re-send, so the
        // line is lost, but the file stays whole.
        if let Ok(appended) = self.logs.append_at_end(&self.store, id, &entry) {
            if let Some((result, _, _)) = appended.job_result {
                let job = self.store.job(id).ok().flatten().unwrap_or(job);
                if let Err(e) = self.finish(&job, Some(&result), "") {
                    warn!("{e}");
                }
            }
        }
    }

    /// One scheduling pass: queued jobs onto idle devices.
    fn schedule(&mut self) -> Result<(), StoreError> {
        self.passes += 1;
        let enabled = self
            .health
            .queue_missing(&self.store, std::mem::take(&mut self.review_due))?;
        let mut snapshot = self.store.snapshot(self.passes)?;
        self.health.mark(&self.store, &mut snapshot, &enabled)?;
        if snapshot.queue.is_empty() {
            return Ok(());
        }
        for assignment in crate::scheduler::schedule(&snapshot) {
            if self.store.assign(assignment.job, &assignment.device)? {
                info!("job {} scheduled on {}", assignment.job, assignment.device);
            }
        }
        Ok(())
    }

    /// Sends START to scheduled jobs and CANCEL to canceling ones whose worker is online:
    /// those never sent, and with `resend` those sent longer than the resend interval ago.
    fn send_pending(&mut self, resend: bool) -> Result<(), StoreError> {
        let now = Instant::now();
        let interval = self.config.timing.resend();
        let due = |sent: Option<&Instant>| match sent {
            None => true,
            Some(at) => resend && now.duration_since(*at) >= interval,
        };
        for job in self.store.jobs_to_start()? {
            if due(self.start_sent.get(&job.id)) {
                self.send_start(&job)?;
            }
        }
        for job in self.store.jobs_to_cancel()? {
            if due(self.cancel_sent.get(&job.id)) {
                if let Some(worker) = &job.worker {
                    self.sockets
                        .send(worker, &ControlMessage::Cancel { job: job.id });
                }
                self.cancel_sent.insert(job.id, now);
            }
        }
        Ok(())
    }

    fn send_start(&mut self, job: &Job) -> Result<(), StoreError> {
        let (Some(worker), Some(hostname)) = (&job.worker, &job.actual_device) else {
            return Ok(());
        };
        if self.allow.is_some() {
            // A connection closed since the last look: whoever holds a name now
            // must prove it again before a START (and its secrets) is routed to that name.
            if self.sockets.connection_lost() {
                self.verified.clear();
            }
            if !self.verified.contains(worker) {
                debug!(
                    "START {} waits until {worker} proves its connection",
                    job.id
                );
                return Ok(());
            }
        }
        let Some(device) = self.store.device(hostname)? else {
            return self.finish(job, None, &format!("device {hostname} was removed"));
        };
        match job_files(&self.engine, &self.config.data_dir, job, &device, worker) {
            Ok(files) => {
                self.sockets
                    .send(worker, &ControlMessage::Start { job: job.id, files });
                self.start_sent.insert(job.id, Instant::now());
                debug!("START {} to {worker}", job.id);
                Ok(())
            }
            Err(e) => {
                warn!("job {}: {e}", job.id);
                self.finish(job, None, &e.to_string())
            }
        }
    }

    fn mark_silent_offline(&mut self) -> Result<(), StoreError> {
        let limit = self.config.timing.offline_after();
        let now = Instant::now();
        for (name, peer) in &mut self.peers {
            if peer.online && now.duration_since(peer.last_seen) > limit {
                peer.online = false;
                info!("worker {name} is offline (silent for {}s)", limit.as_secs());
                self.store.set_worker_offline(name, "missed pings")?;
            }
        }
        Ok(())
    }
}

fn last_chars(text: &str, count: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(count.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    &text[start..]
}
