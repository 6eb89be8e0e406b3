//! The dispatcher: runs one job on one device and writes its log and results.
//!
//! `basalt run` (what a slave spawns for every job) calls [`run_job`]. It validates the job
//! against the device (the `lava/validate` case), runs each top-level action with its timeout
//! and `failure_retry` (runs until one succeeds) or `repeat` (every run, failing at the end if
//! one failed, as LAVA's `RetryAction`), and whatever happened ends the same way: the board powered off, the
//! console closed, `results.yaml`/`results.xml` and `result.yaml` written, and one outcome.

mod actions;
pub mod archive;
mod cancel;
mod deploy;
pub mod download;
mod dut_env;
mod failure;
pub mod fsimage;
mod local_files;
mod log;
mod overlay;
mod preflight;
mod results;
mod run;
mod shell;
mod testshell;

pub use cancel::Cancel;
pub use deploy::guest_size;
pub use deploy::{
    method as deploy_method, Facilities, Offered, ServerDirs, METHODS as DEPLOY_METHODS,
};
pub use dut_env::{DutEnvError, DutEnvironment};
pub use failure::Failure;
pub use local_files::{LocalFiles, HOW_TO_ALLOW};
pub use log::JobLogger;
pub use overlay::needed as overlay_needed;
pub use preflight::{preflight, Ready};
pub use results::{CaseResult, Results};
pub use run::{run_job, JobOutcome, JobStatus, RunRequest};
