//! A failed step: its LAVA class and what to tell the admin.

use std::fmt;

use crate::console::ExpectError;
use crate::failure::FailureClass;
use crate::plugins::DriverError;

/// Why a step of the job failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// LAVA's error type.
    pub class: FailureClass,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure of a given class.
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }

    /// The lab failed.
    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Infrastructure, message)
    }

    /// The job is wrong.
    pub fn job(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Job, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl From<DriverError> for Failure {
    fn from(error: DriverError) -> Self {
        Self::new(error.class(), error.to_string())
    }
}

/// An error of the helpers written for plugins, when the host's own code uses them (a
/// deploy that talks to the bootloader): classed as a plugin's error would be.
impl From<basalt_plugin_api::PluginError> for Failure {
    fn from(error: basalt_plugin_api::PluginError) -> Self {
        Self::new(
            FailureClass::of_plugin_error(error.kind),
            error.message().to_owned(),
        )
    }
}

impl From<ExpectError> for Failure {
    fn from(error: ExpectError) -> Self {
        match error {
            ExpectError::Console(e) => e.into(),
            ExpectError::Canceled { .. } => Self::new(FailureClass::Canceled, error.to_string()),
            ExpectError::BadPattern { .. } => Self::job(error.to_string()),
            ExpectError::Timeout { .. } => Self::infrastructure(error.to_string()),
        }
    }
}
