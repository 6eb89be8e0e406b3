//! What the master's APIs can do, independent of how they are asked: the REST API, the
//! LAVA-compatible XML-RPC API and the web pages are thin adapters over [`Service`].
//!
//! Every operation takes the [`Caller`] it acts for and checks its rights here, once, so no
//! adapter can forget a check: reading is open to anyone, submitting and cancelling one's own
//! jobs needs a user, changing the lab (workers, device types, devices, users) needs a
//! superuser. Errors carry an [`ErrorKind`] whose code is the HTTP-like number LAVA's faults
//! use, so both APIs report them the same way.

mod inventory;
mod jobs;
mod lines;
mod metrics;
mod users;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

pub use inventory::{DeviceTypeSummary, HealthSchedule, NewDevice, WorkerFile, WorkerFiles};
pub use jobs::{JobFilter, LogChunk, LogLines};
pub use users::{random_token, ADMIN};

use crate::store::{Store, StoreError, User};
use crate::template::TemplateEngine;

/// Which kind of failure, so adapters can pick a status or fault code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (bad name, invalid job, unknown type).
    BadRequest,
    /// No valid credentials, and the operation needs them.
    Unauthorized,
    /// Valid credentials without the right.
    Forbidden,
    /// A name or id that does not exist.
    NotFound,
    /// The object's state does not allow it, or the name is taken.
    Conflict,
    /// The master failed (database, disk).
    Internal,
}

impl ErrorKind {
    /// The HTTP status, which is also LAVA's XML-RPC fault code for the same failure.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Internal => 500,
        }
    }
}

/// A refused or failed operation, with a message that says what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// Which kind.
    pub kind: ErrorKind,
    /// For the user.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        let kind = match &error {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Exists { .. } | StoreError::Conflict(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

/// Shorthand for the operations' results.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Who an operation acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials: may read.
    Anonymous,
    /// A user whose token checked out.
    User(User),
}

impl Caller {
    /// The user's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::User(user) => Some(&user.name),
        }
    }

    fn require_user(&self) -> ServiceResult<&User> {
        match self {
            Self::User(user) => Ok(user),
            Self::Anonymous => Err(ServiceError::new(
                ErrorKind::Unauthorized,
                "Authentication with user and token required for this API (a token comes from \
                 `basalt user token NAME`; the admin's is in DATA_DIR/admin-token)",
            )),
        }
    }

    /// A superuser, for reading what holds credentials (dictionaries name PDUs and console
    /// servers with their passwords; worker files hold environments).
    fn require_superuser_to_read(&self, what: &str) -> ServiceResult<&User> {
        let user = self.require_user()?;
        if !user.superuser {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!("only a superuser may read {what}: it can hold the lab's credentials"),
            ));
        }
        Ok(user)
    }

    /// The user, `None` when anonymous.
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User(user) => Some(user),
            Self::Anonymous => None,
        }
    }

    /// Whether this caller may read what holds credentials.
    pub fn is_superuser(&self) -> bool {
        matches!(self, Self::User(user) if user.superuser)
    }

    fn require_superuser(&self) -> ServiceResult<&User> {
        let user = self.require_user()?;
        if !user.superuser {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!(
                    "user {} may not change the lab: ask an admin, or make it a superuser",
                    user.name
                ),
            ));
        }
        Ok(user)
    }
}

/// The master's operations over its store, templates and job files.
pub struct Service {
    store: Mutex<Store>,
    wake: Box<dyn Fn() + Send + Sync>,
    engine: TemplateEngine,
    jobs_dir: PathBuf,
    data_dir: PathBuf,
    template_dir: PathBuf,
    line_indexes: Mutex<lines::LineIndexes>,
    log_faults: std::sync::Arc<crate::master::joblogs::LogFaults>,
    events: Option<EventSender>,
}

/// Where the event thread hands each event to the WebSocket clients.
pub type EventSender =
    tokio::sync::broadcast::Sender<std::sync::Arc<crate::master::events::Published>>;

impl Service {
    /// A service over `store` for the master whose data directory is `data_dir`: templates
    /// set through the API go to its `device-types/` (first on `engine`'s search path), job
    /// logs are read from `jobs_dir`. `wake` tells the scheduler to look again (the master
    /// pokes its control loop).
    pub fn new(
        store: Store,
        wake: impl Fn() + Send + Sync + 'static,
        engine: TemplateEngine,
        data_dir: PathBuf,
        jobs_dir: PathBuf,
    ) -> Self {
        Self {
            store: Mutex::new(store),
            wake: Box::new(wake),
            engine,
            jobs_dir,
            template_dir: data_dir.join("device-types"),
            data_dir,
            line_indexes: Mutex::default(),
            log_faults: Default::default(),
            events: None,
        }
    }

    /// Reports the control loop's failed log appends (shared with its `JobLogs`) in
    /// `/metrics`.
    pub fn with_log_faults(
        mut self,
        faults: std::sync::Arc<crate::master::joblogs::LogFaults>,
    ) -> Self {
        self.log_faults = faults;
        self
    }

    /// Gives WebSocket clients the master's event stream.
    pub fn with_events(mut self, sender: EventSender) -> Self {
        self.events = Some(sender);
        self
    }

    /// A new subscription to the event stream (none when the master publishes none).
    pub fn subscribe_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<crate::master::events::Published>>>
    {
        self.events.as_ref().map(|s| s.subscribe())
    }

    fn store(&self) -> ServiceResult<MutexGuard<'_, Store>> {
        self.store
            .lock()
            .map_err(|_| ServiceError::internal("store lock poisoned"))
    }

    /// Tells the control loop that the scheduler should look again.
    fn reschedule(&self) {
        (self.wake)();
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> ServiceResult<Caller> {
        match self.store()?.user_for_token(token)? {
            Some(user) => Ok(Caller::User(user)),
            None => Err(ServiceError::new(
                ErrorKind::Unauthorized,
                "the token is not valid (or its user is inactive)",
            )),
        }
    }

    /// The user of a `username:token` pair, as lavacli sends it; the token must be one of
    /// that user's.
    pub fn authenticate_as(&self, username: &str, token: &str) -> ServiceResult<Caller> {
        match self.authenticate(token)? {
            Caller::User(user) if user.name == username => Ok(Caller::User(user)),
            _ => Err(ServiceError::new(
                ErrorKind::Unauthorized,
                format!("the token is not valid for user {username}"),
            )),
        }
    }
}

/// Checks a name given for a worker, device, device type, user or tag.
fn check_name(kind: &str, name: &str) -> ServiceResult<()> {
    if !crate::store::is_valid_name(name) {
        return Err(ServiceError::bad_request(format!(
            "{kind} name {name:?} is not valid: use letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
