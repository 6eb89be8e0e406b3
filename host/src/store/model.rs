//! The records the store holds, as the rest of the master sees them. States and healths are
//! LAVA's, stored as their lower-case names.

use serde::Serialize;

/// Declares an enum stored as text, with its names.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and displayed) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Reads a stored name (case-insensitively, so `Maintenance` works on the
            /// command line too).
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(text))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// LAVA's display name of a stored state or health (`running` → `Running`), as its APIs,
/// events, callbacks and e-mails spell them.
pub fn display_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

text_enum!(
    /// Where a job is in its life.
    JobState {
        /// Queued, waiting for a device.
        Submitted = "submitted",
        /// Given a device; START is being sent until the slave confirms.
        Scheduled = "scheduled",
        /// The slave confirmed it runs.
        Running = "running",
        /// Cancel requested; CANCEL is being sent until the job ends.
        Canceling = "canceling",
        /// Over.
        Finished = "finished",
    }
);

text_enum!(
    /// How a job went.
    JobHealth {
        /// Not finished yet.
        Unknown = "unknown",
        /// Ran to the end with a passing `lava`/`job` result.
        Complete = "complete",
        /// Failed (infrastructure, job or test error, or the job process crashed).
        Incomplete = "incomplete",
        /// Canceled by a user.
        Canceled = "canceled",
    }
);

text_enum!(
    /// What a device type's health-check frequency counts.
    HealthDenominator {
        /// Hours since the device's last health check.
        Hours = "hours",
        /// Jobs the device ran since its last health check.
        Jobs = "jobs",
    }
);

text_enum!(
    /// Whether a worker is talking to the master.
    WorkerState {
        /// Heard from within the offline timeout.
        Online = "online",
        /// Silent for longer than the offline timeout (or never heard from).
        Offline = "offline",
    }
);

text_enum!(
    /// An admin's decision about a worker.
    WorkerHealth {
        /// Gets jobs.
        Active = "active",
        /// Gets no new jobs; running ones finish.
        Maintenance = "maintenance",
        /// Gone for good.
        Retired = "retired",
    }
);

text_enum!(
    /// Whether a device is busy.
    DeviceState {
        /// Free.
        Idle = "idle",
        /// Given a job that has not started yet.
        Reserved = "reserved",
        /// Running a job.
        Running = "running",
    }
);

text_enum!(
    /// A device's health (LAVA's values).
    DeviceHealth {
        /// Not known (new, or after an admin put it back).
        Unknown = "unknown",
        /// Passed its last health check.
        Good = "good",
        /// Failed; gets no jobs until an admin acts.
        Bad = "bad",
        /// Taken out by an admin.
        Maintenance = "maintenance",
        /// Re-checked continuously; gets no ordinary jobs.
        Looping = "looping",
        /// Gone for good.
        Retired = "retired",
    }
);

impl From<DeviceState> for crate::scheduler::DeviceState {
    fn from(state: DeviceState) -> Self {
        match state {
            DeviceState::Idle => Self::Idle,
            DeviceState::Reserved => Self::Reserved,
            DeviceState::Running => Self::Running,
        }
    }
}

impl From<DeviceHealth> for crate::scheduler::DeviceHealth {
    fn from(health: DeviceHealth) -> Self {
        match health {
            DeviceHealth::Unknown => Self::Unknown,
            DeviceHealth::Good => Self::Good,
            DeviceHealth::Bad => Self::Bad,
            DeviceHealth::Maintenance => Self::Maintenance,
            DeviceHealth::Looping => Self::Looping,
            DeviceHealth::Retired => Self::Retired,
        }
    }
}

/// A device type known to the master.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceType {
    /// Its name, which is also its template's name without `.jinja2`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// A device's health check is due again after this many hours or jobs.
    pub health_frequency: u32,
    /// What `health_frequency` counts.
    pub health_denominator: HealthDenominator,
    /// No health checks for this type at all (its Unknown devices take jobs at once).
    pub health_disabled: bool,
}

/// A worker (a slave's host).
#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    /// The name the slave presents (its ZMQ identity).
    pub hostname: String,
    /// Free text.
    pub description: String,
    /// Online or offline.
    pub state: WorkerState,
    /// Active, maintenance or retired.
    pub health: WorkerHealth,
    /// How many jobs it may run at once (0: no limit).
    pub job_limit: u32,
    /// When the master last heard from it (ms since the epoch).
    pub last_seen: Option<i64>,
    /// The software version its HELLO carried.
    pub version: Option<String>,
    /// When it was registered (ms since the epoch).
    pub created: i64,
}

/// A device.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Its hostname.
    pub hostname: String,
    /// Its device type.
    pub device_type: String,
    /// The worker it is attached to.
    pub worker: Option<String>,
    /// Its device dictionary (Jinja2 extending the type's template).
    pub dictionary: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Free text.
    pub description: String,
    /// Idle, reserved or running.
    pub state: DeviceState,
    /// Its health.
    pub health: DeviceHealth,
    /// The job holding it.
    pub current_job: Option<u64>,
    /// Its power as last read back from its power driver (`on`, `off`, or `unknown` when the
    /// driver cannot tell), at the end of its last job.
    pub power_state: String,
    /// When that was read (ms since the epoch).
    pub power_checked: Option<i64>,
}

/// A job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// Who may see it (LAVA's `visibility:`).
    pub visibility: Visibility,
    /// `job_name`.
    pub name: String,
    /// The definition as submitted.
    pub definition: String,
    /// The requested device type.
    pub device_type: String,
    /// A device it must run on, if pinned.
    pub requested_device: Option<String>,
    /// Tags the device must carry.
    pub tags: Vec<String>,
    /// The job's `context:` mapping (variables for the device template).
    pub context: serde_json::Value,
    /// 0..=100, higher first.
    pub priority: u8,
    /// Who submitted it.
    pub submitter: String,
    /// Where it is in its life.
    pub state: JobState,
    /// How it went.
    pub health: JobHealth,
    /// The device it got.
    pub actual_device: Option<String>,
    /// That device's worker.
    pub worker: Option<String>,
    /// When it was submitted (ms since the epoch).
    pub submit_time: i64,
    /// When the slave confirmed it runs.
    pub start_time: Option<i64>,
    /// When it finished.
    pub end_time: Option<i64>,
    /// Why it did not complete, when known.
    pub failure_comment: String,
    /// Bytes of its log the master holds.
    pub log_bytes: u64,
    /// Lines of its log the master holds.
    pub log_lines: u64,
    /// The `lava`/`job` result (`pass`/`fail`) once its log carried it.
    pub job_result: Option<String>,
    /// The error type of a failed job.
    pub error_type: Option<String>,
    /// The error message of a failed job.
    pub error_msg: Option<String>,
    /// A health check: its outcome decides the device's health.
    pub health_check: bool,
}

/// One test result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// The job.
    pub job: u64,
    /// The suite (`lava` or `<n>_<definition name>`).
    pub suite: String,
    /// The test case.
    pub name: String,
    /// pass, fail, skip or unknown.
    pub result: String,
    /// The measurement, as logged.
    pub measurement: Option<String>,
    /// Its units.
    pub units: Option<String>,
    /// The 0-based line of the job log that carried it.
    pub log_line: u64,
    /// The whole result entry.
    pub data: serde_json::Value,
}

/// One recorded change of state or health.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// When (ms since the epoch).
    pub at: i64,
    /// `state` or `health`.
    pub field: String,
    /// The old value.
    pub old: String,
    /// The new value.
    pub new: String,
    /// Why.
    pub reason: String,
}

/// Someone who may use the API.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Login name (what lavacli sends as `username`).
    pub name: String,
    /// The groups it belongs to (jobs with `visibility: {group: [...]}` naming one of them
    /// are visible to it).
    pub groups: Vec<String>,
    /// May change the lab (devices, workers, types, users), not only submit jobs.
    pub superuser: bool,
    /// Inactive users' tokens are refused, as LAVA refuses inactive accounts.
    pub active: bool,
    /// When it was created (ms since the epoch).
    pub created: i64,
    /// Where its e-mail notifications go (empty: nowhere).
    pub email: String,
}

/// What is known about one token; the secret itself is never stored.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// Whose it is.
    pub user: String,
    /// What the admin said it is for.
    pub description: String,
    /// When it was made (ms since the epoch).
    pub created: i64,
    /// When it was last presented (ms since the epoch, to the minute).
    pub last_used: Option<i64>,
}

/// Whether `name` may name a worker, device, device type, user or tag: letters, digits, `-`,
/// `_` and `.`, not starting with `.`, at most 200 bytes. Names become file names under the
/// data directory (templates, health checks, dispatcher files), so nothing else is allowed.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// What [`crate::store::Store::worker_seen`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerSeen {
    /// It was online already.
    Online,
    /// It was offline (or just created).
    CameOnline,
    /// No such worker, and none was created.
    Unknown,
}

/// Who may see a job, as LAVA's `visibility:` says: everyone, its submitter (and
/// superusers), or also the members of the named groups. Serialized as in a job definition:
/// `"public"`, `"personal"`, `{"group": ["a", "b"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone, anonymous readers included.
    Public,
    /// Its submitter and superusers.
    Personal,
    /// Its submitter, superusers and members of these groups.
    Group(Vec<String>),
}

impl Visibility {
    /// What a job definition says; anything unreadable counts as the narrowest reading
    /// (personal), never as public.
    pub fn of_definition(text: &str) -> Self {
        Self::of_job(&crate::yaml11::from_str(text).unwrap_or_default())
    }

    /// What a parsed job definition says (personal when unreadable, as above).
    pub fn of_job(job: &serde_json::Value) -> Self {
        job.get("visibility")
            .cloned()
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or(Self::Personal)
    }

    /// Whether `user` (None: anonymous) may see a job `submitter` submitted.
    pub fn allows(&self, user: Option<&User>, submitter: &str) -> bool {
        match (self, user) {
            (Self::Public, _) => true,
            (_, None) => false,
            (_, Some(user)) if user.superuser || user.name == submitter => true,
            (Self::Personal, Some(_)) => false,
            (Self::Group(groups), Some(user)) => user.groups.iter().any(|g| groups.contains(g)),
        }
    }
}

text_enum!(
    /// Where a notification is.
    NotificationState {
        /// Not delivered yet; tried again at its next attempt.
        Pending = "pending",
        /// Delivered (a 2xx answer, or the mail server took it).
        Sent = "sent",
        /// Given up on, after its last attempt or on an error retrying cannot mend.
        Failed = "failed",
    }
);

/// One row of the history: a state or health change of a job, device or worker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// Its place in the history (increasing).
    pub id: i64,
    /// When (ms since the epoch).
    pub at: i64,
    /// `job`, `device` or `worker`.
    pub kind: String,
    /// The job id or the hostname.
    pub object: String,
    /// `state` or `health`.
    pub field: String,
    /// The old value.
    pub old: String,
    /// The new value.
    pub new: String,
    /// Why.
    pub reason: String,
}

/// A callback or e-mail a job's `notify:` asked for, with how its attempts went.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// The job.
    pub job_id: u64,
    /// The history row whose change met the criteria.
    pub trigger: i64,
    /// Its place in the job's `notify:`.
    pub position: u32,
    /// `callback` or `email`.
    pub kind: String,
    /// The URL or address.
    pub target: String,
    /// The callback's or recipient's settings, as the job gave them.
    pub spec: serde_json::Value,
    /// Pending, sent or failed.
    pub state: NotificationState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch).
    pub next_attempt: i64,
    /// When the last attempt was made.
    pub last_attempt: Option<i64>,
    /// The last answer's HTTP status (or SMTP reply code).
    pub last_status: Option<u16>,
    /// What went wrong last (empty if nothing).
    pub last_error: String,
    /// When it was queued.
    pub created: i64,
}

/// A user's remote artifact token (LAVA's `RemoteArtifactsAuth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteToken {
    /// Whose it is.
    pub user: String,
    /// The name jobs refer to it by.
    pub name: String,
    /// The secret.
    pub token: String,
    /// When it was added (ms since the epoch).
    pub created: i64,
}
