//! The pipeline: the tree of actions a job will run on a device, each with its timeout.
//!
//! Built from a validated job and a rendered device configuration before anything runs, so
//! a job asking for a method the device lacks fails at validation, not halfway through.
//! `basalt jobs describe` prints it; the runner walks it.

mod build;
mod describe;

pub use build::{
    build_pipeline, deploy_artifact, deploy_artifacts, download_action, repo_action, PipelineError,
};
pub use describe::{describe, hms};

use std::time::Duration;

use crate::job::ActionKind;

/// Where an action's timeout came from, for the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutSource {
    /// The action's own `timeout:`.
    Action,
    /// The job's `timeouts.actions.<name>`.
    JobNamed,
    /// The device's `timeouts.actions.<name>`.
    DeviceNamed,
    /// The job's `timeouts.action`.
    JobDefault,
    /// The job's overall timeout (nothing narrower was given).
    Job,
}

impl TimeoutSource {
    /// A short explanation.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Action => "action timeout",
            Self::JobNamed => "job timeouts.actions",
            Self::DeviceNamed => "device timeouts.actions",
            Self::JobDefault => "job timeouts.action",
            Self::Job => "job timeout",
        }
    }
}

/// One node of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineAction {
    /// `1`, `1.2`, ... as LAVA numbers them.
    pub level: String,
    /// LAVA's action name (`tftp-deploy`, `download-retry`, `lava-test-shell`, ...).
    pub name: String,
    /// What it does, for people.
    pub description: String,
    /// How long it may take.
    pub timeout: Duration,
    /// Where that timeout came from.
    pub timeout_source: TimeoutSource,
    /// Sub-actions.
    pub children: Vec<PipelineAction>,
}

/// A top-level action of the job, with its place in the job.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The job action's kind.
    pub kind: ActionKind,
    /// Index in the job's `actions` list.
    pub job_index: usize,
    /// How many runs (`failure_retry` or `repeat`).
    pub attempts: u32,
    /// Whether every run happens (`repeat`) rather than runs until one succeeds.
    pub repeat: bool,
    /// The action tree.
    pub action: PipelineAction,
}

/// The whole pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The job's overall timeout.
    pub job_timeout: Duration,
    /// Top-level actions in order.
    pub stages: Vec<Stage>,
}
