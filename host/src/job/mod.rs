//! LAVA pipeline job definitions: reading, validating and the typed model.
//!
//! A job arrives as YAML text. [`parse_job`] reads it with PyYAML's rules and validates it
//! against LAVA's submission schema (non-strict: unknown keys are allowed, as LAVA allows
//! them), reporting every problem with its path in the job and its line and column in the
//! file. Legacy JSON job definitions are refused up front.

pub mod confine;
mod definition;
pub mod secrets;
mod validate;

pub use definition::{timeout_of, ActionKind, JobAction, JobDefinition};
pub use validate::{parse_job, JobError, JobProblem, ParsedJob, BOOT_METHODS, DEPLOY_METHODS};
