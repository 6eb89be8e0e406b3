//! Jobs' `notify:` blocks, carried out after the fact, off the control loop: LAVA's result
//! callbacks (what CI systems wait for) and e-mails.
//!
//! A thread of its own reads the store's history from where it last stopped (its cursor is
//! in the database): each time a job enters Running or Finished, its `notify:` criteria are
//! judged as LAVA judges them ([`criteria`]) and what they ask for is queued, in the same
//! transaction that moves the cursor, so a change is acted on exactly once however often the
//! master is killed. The same thread then sends what is due ([`callback`], [`mail`]), each
//! attempt recorded on the notification (status, error, time); a failure that may mend is
//! tried again after a wait that doubles each time, until `give_up_after_secs`. A slow or
//! dead receiver delays only other notifications, never scheduling.

mod callback;
mod criteria;
mod mail;
mod payload;
mod query;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::master::config::NotificationSettings;
use crate::store::{
    now_ms, Attempt, Change, Job, JobHealth, JobState, NewNotification, Notification, Store,
};

pub use mail::plain_address;
pub use payload::{job_data, legacy_status, Dataset};

/// The history reader's name in the store's cursors.
const CURSOR: &str = "notifications";

/// Recipients come after callbacks in a job's notifications.
const RECIPIENT_POSITIONS: u32 = 1000;

/// Starts the notification thread, which ends soon after `stop` (join it, so its database
/// connection closes cleanly).
pub fn spawn(
    settings: NotificationSettings,
    database: PathBuf,
    jobs_dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let store = Store::open(&database)
        .with_context(|| format!("notifications: cannot open {}", database.display()))?;
    let notifier = Notifier {
        store,
        settings,
        jobs_dir,
    };
    let thread = std::thread::Builder::new()
        .name("basalt-notify".into())
        .spawn(move || {
            let mut complaint = Complaint::default();
            while !stop.load(Ordering::Relaxed) {
                // A bug in one pass must not end the thread: every job's notifications
                // would silently stop.
                let passed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    notifier.queue_pass()?;
                    notifier.send_pass(&stop)
                }));
                match passed {
                    Ok(Ok(())) => complaint.clear(),
                    Ok(Err(e)) => complaint.say(&format!("{e:#}")),
                    Err(_) => complaint.say("a pass panicked; going on with the next"),
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
        .context("cannot start the notification thread")?;
    Ok(thread)
}

/// Logs a failing pass once, and again only when what fails changes or a minute passed: a
/// full disk would otherwise add a warning four times a second.
#[derive(Default)]
struct Complaint {
    last: Option<(String, std::time::Instant)>,
}

impl Complaint {
    fn say(&mut self, what: &str) {
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(said, at)| said == what && at.elapsed() < Duration::from_secs(60));
        if !repeat {
            tracing::warn!("notifications: {what}");
            self.last = Some((what.to_owned(), std::time::Instant::now()));
        }
    }

    fn clear(&mut self) {
        self.last = None;
    }
}

/// At most this many sends per pass, so new changes are queued between them.
const SENDS_PER_PASS: u32 = 8;

/// The most of a job's log a callback carries (its end, from a line start): LAVA sends the
/// whole log, which for a job near the log limit would be hundreds of MiB in memory.
const CALLBACK_LOG_LIMIT: u64 = 32 * 1024 * 1024;

struct Notifier {
    store: Store,
    settings: NotificationSettings,
    jobs_dir: PathBuf,
}

impl Notifier {
    /// Queues what the changes since the cursor ask for.
    fn queue_pass(&self) -> anyhow::Result<()> {
        let cursor = match self.store.cursor(CURSOR)? {
            Some(cursor) => cursor,
            None => {
                let now = self.store.last_change()?;
                self.store.queue_notifications(CURSOR, now, &[])?;
                now
            }
        };
        let changes = self.store.changes_after(cursor, 500)?;
        let Some(last) = changes.last() else {
            return Ok(());
        };
        let mut queued = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            if change.kind == "job"
                && change.field == "state"
                && matches!(change.new.as_str(), "running" | "finished")
            {
                // One job whose change cannot be read (a damaged row) must not hold up the
                // others' notifications behind it.
                match self.notifications_for(change, &changes[index + 1..], &queued) {
                    Ok(new) => queued.extend(new),
                    Err(e) => tracing::warn!(
                        "notifications: job {}'s {} change skipped: {e:#}",
                        change.object,
                        change.new
                    ),
                }
            }
        }
        self.store.queue_notifications(CURSOR, last.id, &queued)?;
        Ok(())
    }

    /// What a job's state change asks for.
    fn notifications_for(
        &self,
        change: &Change,
        after: &[Change],
        queued: &[NewNotification],
    ) -> anyhow::Result<Vec<NewNotification>> {
        let Some(job) = change
            .object
            .parse()
            .ok()
            .map(|id| self.store.job(id))
            .transpose()?
        else {
            return Ok(Vec::new());
        };
        let Some(job) = job else {
            return Ok(Vec::new());
        };
        let Ok(definition) = crate::yaml11::from_str(&job.definition) else {
            return Ok(Vec::new());
        };
        // The health written with this state (a job's end writes both in one transaction).
        let health_change = after
            .iter()
            .take_while(|c| c.object == change.object && c.kind == "job")
            .find(|c| c.field == "health");
        let (health, old_health) = match (change.new.as_str(), health_change) {
            ("finished", Some(h)) => (h.new.clone(), h.old.clone()),
            ("finished", None) => (job.health.as_str().to_owned(), "unknown".to_owned()),
            _ => ("unknown".to_owned(), "unknown".to_owned()),
        };
        let transition = criteria::Transition {
            state: &change.new,
            health: &health,
            old_health: &old_health,
        };
        let dependencies =
            |conditions: &str, status: &str| self.dependencies_in(job.id, conditions, status);
        let Some(plan) = criteria::plan_for(&definition, &job.submitter, transition, &dependencies)
        else {
            return Ok(Vec::new());
        };
        // The job as the change left it: LAVA fills URLs and payloads from the state and
        // health that triggered, however late the notification goes out.
        let mut as_triggered = job.clone();
        as_triggered.state = JobState::parse(&change.new).unwrap_or(job.state);
        as_triggered.health = JobHealth::parse(&health).unwrap_or(job.health);
        let triggered = |spec: &mut Value| {
            if let Some(map) = spec.as_object_mut() {
                map.insert("trigger_state".into(), Value::from(change.new.clone()));
                map.insert("trigger_health".into(), Value::from(health.clone()));
            }
        };
        let mut new = Vec::new();
        for (position, spec) in plan.callbacks.iter().enumerate() {
            let url = spec.get("url").and_then(Value::as_str).unwrap_or("");
            let url = payload::substitute_url(url, &as_triggered);
            let mut spec = spec.clone();
            if let Some(map) = spec.as_object_mut() {
                map.insert("url".into(), Value::String(url.clone()));
            }
            triggered(&mut spec);
            let url = callback::parse_url(&url).map_or(url, |u| callback::redacted(&u));
            new.push(NewNotification {
                job_id: job.id,
                trigger: change.id,
                position: position as u32,
                kind: "callback".into(),
                target: url,
                spec,
            });
        }
        let earlier = self.store.notifications_of(job.id)?;
        for (index, to) in plan.recipients.iter().enumerate() {
            let position = RECIPIENT_POSITIONS + index as u32;
            // A recipient is written to once per job, as LAVA's `NOT_SENT` flag ensures
            // (also when Running and Finished are queued in one pass).
            if earlier.iter().any(|n| n.position == position)
                || queued
                    .iter()
                    .any(|n| n.job_id == job.id && n.position == position)
            {
                continue;
            }
            let method = to.get("method").and_then(Value::as_str).unwrap_or("email");
            let target = to
                .get("email")
                .or_else(|| to.get("user"))
                .or_else(|| to.get("handle"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut spec = to.clone();
            if let Some(map) = spec.as_object_mut() {
                map.insert("verbosity".into(), Value::String(plan.verbosity.clone()));
            }
            triggered(&mut spec);
            new.push(NewNotification {
                job_id: job.id,
                trigger: change.id,
                position,
                kind: method.to_owned(),
                target,
                spec,
            });
        }
        Ok(new)
    }

    /// Whether every other job `conditions` select is in `status` (LAVA's dependency_query);
    /// conditions that cannot be read are not met, and said so.
    fn dependencies_in(&self, job: u64, conditions: &str, status: &str) -> bool {
        let conditions = match query::parse(conditions) {
            Ok(conditions) => conditions,
            Err(e) => {
                tracing::warn!("notifications: job {job}'s dependency_query: {e}");
                return false;
            }
        };
        let jobs = match self.store.jobs(None, 100_000) {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!("notifications: job {job}'s dependency_query: {e}");
                return false;
            }
        };
        jobs.iter()
            .filter(|other| other.id != job && query::matches(other, &conditions))
            .all(|other| match status {
                "finished" => other.state == JobState::Finished,
                "running" => other.state == JobState::Running,
                "complete" => other.health == JobHealth::Complete,
                "incomplete" => other.health == JobHealth::Incomplete,
                _ => other.health == JobHealth::Canceled,
            })
    }

    /// Sends every notification that is due.
    fn send_pass(&self, stop: &AtomicBool) -> anyhow::Result<()> {
        let lease_ms = i64::try_from(self.settings.timeout_secs.saturating_mul(8) + 60)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        for notification in self.store.due_notifications(now_ms(), SENDS_PER_PASS)? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !self
                .store
                .claim_notification(notification.id, now_ms().saturating_add(lease_ms))?
            {
                continue;
            }
            let attempt = self.attempt(&notification);
            self.store.record_attempt(notification.id, &attempt)?;
            let what = format!(
                "job {}: {} to {}",
                notification.job_id, notification.kind, notification.target
            );
            match (&attempt.delivered, &attempt.retry_at) {
                (true, _) => tracing::info!("{what} sent ({:?})", attempt.status),
                (false, Some(_)) => tracing::warn!("{what} failed, will retry: {}", attempt.error),
                (false, None) => tracing::warn!("{what} failed, given up: {}", attempt.error),
            }
        }
        Ok(())
    }

    fn attempt(&self, notification: &Notification) -> Attempt {
        let outcome = match self.store.job(notification.job_id) {
            Ok(Some(mut job)) => {
                let spec = &notification.spec;
                if let Some(state) = spec.get("trigger_state").and_then(Value::as_str) {
                    job.state = JobState::parse(state).unwrap_or(job.state);
                }
                if let Some(health) = spec.get("trigger_health").and_then(Value::as_str) {
                    job.health = JobHealth::parse(health).unwrap_or(job.health);
                }
                match notification.kind.as_str() {
                    "callback" => self.call_back(&job, &notification.spec),
                    "email" => self.mail(&job, &notification.spec),
                    other => callback::Outcome::GiveUp(
                        None,
                        format!(
                        "{other} notifications are not built into Basalt (use email or a callback)"
                    ),
                    ),
                }
            }
            Ok(None) => callback::Outcome::GiveUp(None, "the job no longer exists".into()),
            Err(e) => callback::Outcome::Retry(None, e.to_string()),
        };
        match outcome {
            callback::Outcome::Delivered(code) => Attempt {
                status: Some(code),
                delivered: true,
                ..Attempt::default()
            },
            callback::Outcome::GiveUp(status, error) => Attempt {
                status,
                error,
                ..Attempt::default()
            },
            callback::Outcome::Retry(status, error) => Attempt {
                status,
                error,
                retry_at: self.retry_at(notification),
                delivered: false,
            },
        }
    }

    /// The next attempt's time: the first wait, doubled at each failure up to the longest;
    /// none once the notification is older than the give-up time.
    fn retry_at(&self, notification: &Notification) -> Option<i64> {
        let s = &self.settings;
        let doublings = notification.attempts.min(30);
        let wait = s
            .retry_first_secs
            .saturating_mul(1u64 << doublings)
            .min(s.retry_max_secs.max(s.retry_first_secs));
        let at = now_ms().saturating_add(i64::try_from(wait.saturating_mul(1000)).ok()?);
        let limit = notification
            .created
            .saturating_add(i64::try_from(s.give_up_after_secs.saturating_mul(1000)).ok()?);
        (at <= limit).then_some(at)
    }

    fn call_back(&self, job: &Job, spec: &Value) -> callback::Outcome {
        let text = |key: &str, default: &'static str| {
            spec.get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        let method = text("method", "GET").to_ascii_uppercase();
        let dataset = Dataset::named(&text("dataset", "minimal"));
        let token = spec
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|name| self.token_value(&job.submitter, name));
        let header = text("header", "Authorization");
        let data = if method == "POST" {
            match self.data(job, dataset) {
                Ok(data) => data,
                Err(e) => return callback::Outcome::Retry(None, format!("{e:#}")),
            }
        } else {
            Value::Null
        };
        let url = text("url", "");
        let request = callback::Request {
            url: &url,
            method: &method,
            content_type: &text("content-type", "urlencoded"),
            auth: token.as_deref().map(|t| (header.as_str(), t)),
            data: &data,
        };
        callback::send(
            &request,
            Duration::from_secs(self.settings.timeout_secs.max(1)),
            &self.settings.callback_allowed_hosts,
        )
    }

    /// A callback's `token:` as LAVA resolves it: the submitter's remote artifact token of
    /// that name, else the text itself. (LAVA looks at the submitter's API tokens first; a
    /// Basalt master keeps only their hashes, so it cannot send them.)
    fn token_value(&self, user: &str, name: &str) -> String {
        self.store
            .remote_tokens(user)
            .ok()
            .and_then(|tokens| tokens.into_iter().find(|t| t.name == name))
            .map_or_else(|| name.to_owned(), |t| t.token)
    }

    fn data(&self, job: &Job, dataset: Dataset) -> anyhow::Result<Value> {
        let definition = crate::yaml11::from_str(&job.definition).unwrap_or(Value::Null);
        let log = if dataset.log {
            Some(self.log(job)?)
        } else {
            None
        };
        let results = if dataset.results {
            Some(self.store.results(job.id)?)
        } else {
            None
        };
        let email = self
            .store
            .user(&job.submitter)?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok(job_data(
            job,
            &definition,
            &email,
            log.as_deref(),
            results.as_deref(),
        ))
    }

    /// The job's log as the master holds it (its committed bytes), at most its last
    /// [`CALLBACK_LOG_LIMIT`] bytes from the start of a line.
    fn log(&self, job: &Job) -> anyhow::Result<String> {
        use std::io::{Read, Seek};
        let path = self.jobs_dir.join(job.id.to_string()).join("output.yaml");
        let mut bytes = Vec::new();
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let skip = job.log_bytes.saturating_sub(CALLBACK_LOG_LIMIT);
                file.seek(std::io::SeekFrom::Start(skip))
                    .and_then(|_| file.take(job.log_bytes - skip).read_to_end(&mut bytes))
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if skip > 0 {
                    let line_start = memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |n| n + 1);
                    bytes.drain(..line_start);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn mail(&self, job: &Job, spec: &Value) -> callback::Outcome {
        let Some(server) = &self.settings.smtp_server else {
            return callback::Outcome::GiveUp(
                None,
                "no SMTP server is configured (notifications.smtp_server in the master's \
                 configuration)"
                    .into(),
            );
        };
        // LAVA: the recipient's `email:`, else its user's address.
        let to = match spec.get("email").and_then(Value::as_str) {
            Some(email) => email.to_owned(),
            None => {
                let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
                match self.store.user(user) {
                    Ok(Some(u)) if !u.email.is_empty() => u.email,
                    Ok(_) => {
                        return callback::Outcome::GiveUp(
                            None,
                            format!(
                                "user {user:?} has no e-mail address (basalt user email \
                                 {user} ADDRESS)"
                            ),
                        )
                    }
                    Err(e) => return callback::Outcome::Retry(None, e.to_string()),
                }
            }
        };
        let to = to.as_str();
        let verbosity = spec
            .get("verbosity")
            .and_then(Value::as_str)
            .unwrap_or("quiet");
        let results = match self.store.results(job.id) {
            Ok(results) => results,
            Err(e) => return callback::Outcome::Retry(None, e.to_string()),
        };
        let body = mail::body(job, &results, verbosity, &self.settings.url_prefix);
        match mail::send(
            server,
            &self.settings.email_from,
            to,
            &mail::subject(job),
            &body,
            Duration::from_secs(self.settings.timeout_secs.max(1) * 2),
        ) {
            Ok(()) => callback::Outcome::Delivered(250),
            Err(mail::MailError::Refused { code, reply, .. }) if code >= 500 => {
                callback::Outcome::GiveUp(Some(code), reply)
            }
            Err(mail::MailError::Address(a)) => {
                callback::Outcome::GiveUp(None, format!("{a:?} is not an e-mail address"))
            }
            Err(e) => callback::Outcome::Retry(None, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{testing, NewJob};

    fn job(store: &Store, name: &str) -> u64 {
        store
            .submit(&NewJob {
                name: name.into(),
                definition: format!("job_name: {name}\n"),
                submitter: "ci".into(),
                ..testing::new_job()
            })
            .unwrap()
    }

    #[test]
    fn a_dependency_query_looks_at_the_other_jobs_it_selects() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("basalt.db");
        let store = Store::open(&database).unwrap();
        store.add_device_type("qemu", "").unwrap();
        let first = job(&store, "nightly-1");
        let second = job(&store, "nightly-2");
        let unrelated = job(&store, "other");
        store.finish(first, JobHealth::Complete, "").unwrap();
        let notifier = Notifier {
            store,
            settings: NotificationSettings::default(),
            jobs_dir: dir.path().to_path_buf(),
        };
        let nightly = "testjob__description__icontains__NIGHTLY";
        // The second job's dependencies (the first) are complete; the first's (the second)
        // are not; the unrelated job is never looked at.
        assert!(notifier.dependencies_in(second, nightly, "complete"));
        assert!(!notifier.dependencies_in(first, nightly, "complete"));
        assert!(notifier.dependencies_in(unrelated, "description__nightly-1", "finished"));
        assert!(!notifier.dependencies_in(second, "state__exact__Submitted", "finished"));
        assert!(!notifier.dependencies_in(second, "testcase__name__exact__x", "finished"));
    }
}
