//! The one error type that crosses the plugin boundary.
//!
//! A driver cannot hand the host a Rust error type (its layout is not stable), so every call
//! returns a [`PluginError`]: a [`ErrorKind`] the host acts on plus a message for the admin.
//! The host maps kinds onto LAVA's failure classes: infrastructure problems end the job as
//! `InfrastructureError` (and may mark the device bad), job problems as `JobError`.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What went wrong, as far as the host needs to know to decide who is to blame.
///
/// An integer newtype rather than an enum so that later plugin-api releases can add kinds
/// without breaking plugins built against this one: an unknown code is treated as
/// [`ErrorKind::INFRASTRUCTURE`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(u32);

impl ErrorKind {
    /// The lab failed: a command exited non-zero, a PDU answered with an error.
    pub const INFRASTRUCTURE: Self = Self(1);
    /// The job asked for something this device cannot do (bad boot parameters, say).
    pub const JOB: Self = Self(2);
    /// A call did not finish within the timeout the host passed in.
    pub const TIMEOUT: Self = Self(3);
    /// The driver's configuration (from the device dictionary) is missing or malformed.
    pub const INVALID_CONFIG: Self = Self(4);
    /// The console or service the driver talks to went away (EOF, connection refused).
    pub const CONNECTION_CLOSED: Self = Self(5);
    /// The driver does not implement this operation for this device.
    pub const UNSUPPORTED: Self = Self(6);
    /// The host asked the driver to stop (job canceled).
    pub const CANCELED: Self = Self(7);
    /// The driver itself is broken (it panicked, or broke its own invariants).
    pub const BUG: Self = Self(8);

    /// Builds a kind from its wire code; used by the host, which must accept codes that a
    /// newer plugin-api defined.
    pub const fn from_code(code: u32) -> Self {
        Self(code)
    }

    /// The wire code of this kind.
    pub const fn code(self) -> u32 {
        self.0
    }

    /// A stable lower-case name for logs and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::INFRASTRUCTURE => "infrastructure",
            Self::JOB => "job",
            Self::TIMEOUT => "timeout",
            Self::INVALID_CONFIG => "invalid-config",
            Self::CONNECTION_CLOSED => "connection-closed",
            Self::UNSUPPORTED => "unsupported",
            Self::CANCELED => "canceled",
            Self::BUG => "bug",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error every driver call returns: a kind the host acts on and a message for people.
///
/// Write the message for the lab admin who reads the job log: say what failed and with what
/// input (`"pdudaemon at 127.0.0.1:16421 answered 503 for port 4"`), not just "failed".
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// Who is to blame, in the host's terms.
    pub kind: ErrorKind,
    /// What happened, in words an admin can act on.
    pub message: RString,
}

impl PluginError {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
        }
    }

    /// See [`ErrorKind::INFRASTRUCTURE`].
    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INFRASTRUCTURE, message)
    }

    /// See [`ErrorKind::JOB`].
    pub fn job(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::JOB, message)
    }

    /// See [`ErrorKind::TIMEOUT`].
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TIMEOUT, message)
    }

    /// See [`ErrorKind::INVALID_CONFIG`].
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_CONFIG, message)
    }

    /// See [`ErrorKind::CONNECTION_CLOSED`].
    pub fn connection_closed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONNECTION_CLOSED, message)
    }

    /// See [`ErrorKind::UNSUPPORTED`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message)
    }

    /// See [`ErrorKind::BUG`].
    pub fn bug(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BUG, message)
    }

    /// The message as a plain `&str`.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginError({}: {})", self.kind, self.message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}
