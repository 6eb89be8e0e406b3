//! LAVA's failure classes, and how driver errors map onto them.
//!
//! Every failed job ends with exactly one of these as its `error_type`, which tells the admin
//! whether to look at the lab (infrastructure), the job definition (job) or the tests (test).

use std::fmt;

use basalt_plugin_api::ErrorKind;

/// LAVA's error types, as written to results and shown by the APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The lab failed (PDU, serial line, network, a helper command).
    Infrastructure,
    /// The job asked for something wrong or impossible.
    Job,
    /// A test failed in a way that stops the job.
    Test,
    /// Basalt or a plugin is broken.
    Bug,
    /// The device or server configuration is wrong.
    Configuration,
    /// Someone canceled the job.
    Canceled,
}

impl FailureClass {
    /// LAVA's spelling, as in job results (`InfrastructureError`, ...).
    pub fn lava_name(self) -> &'static str {
        match self {
            Self::Infrastructure => "InfrastructureError",
            Self::Job => "JobError",
            Self::Test => "TestError",
            Self::Bug => "Bug",
            Self::Configuration => "Configuration",
            Self::Canceled => "Canceled",
        }
    }

    /// What lava-run says when a job ends with this class of error.
    pub fn lava_help(self) -> &'static str {
        match self {
            Self::Infrastructure => {
                "InfrastructureError: The Infrastructure is not working correctly. Please report \
                 this error to LAVA admins."
            }
            Self::Job => "JobError: Your job cannot terminate cleanly.",
            Self::Test => "TestError: A test failed to run, look at the error message.",
            Self::Bug => "LAVABug: This is probably a bug in LAVA, please report it.",
            Self::Configuration => "ConfigurationError: The device or worker is misconfigured.",
            Self::Canceled => "JobCanceled: The job was canceled",
        }
    }

    /// The class of a plugin error kind. Kinds this host does not know (from a newer
    /// plugin-api) count as infrastructure: the lab is the safe thing to blame.
    pub fn of_plugin_error(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::JOB => Self::Job,
            ErrorKind::INVALID_CONFIG => Self::Configuration,
            ErrorKind::BUG => Self::Bug,
            ErrorKind::CANCELED => Self::Canceled,
            _ => Self::Infrastructure,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lava_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_kinds_map_to_lava_classes() {
        assert_eq!(
            FailureClass::of_plugin_error(ErrorKind::TIMEOUT),
            FailureClass::Infrastructure
        );
        assert_eq!(
            FailureClass::of_plugin_error(ErrorKind::CONNECTION_CLOSED),
            FailureClass::Infrastructure
        );
        assert_eq!(
            FailureClass::of_plugin_error(ErrorKind::JOB),
            FailureClass::Job
        );
        assert_eq!(
            FailureClass::of_plugin_error(ErrorKind::INVALID_CONFIG),
            FailureClass::Configuration
        );
        assert_eq!(
            FailureClass::of_plugin_error(ErrorKind::from_code(999)),
            FailureClass::Infrastructure
        );
    }
}
