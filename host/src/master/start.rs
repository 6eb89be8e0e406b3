//! What START carries for a job: the definition, the device dictionary rendered with the
//! job's context, and the worker's dispatcher configuration and environments.
//!
//! The per-worker files are where LAVA keeps them, under the data directory:
//! `dispatcher.d/<worker>/dispatcher.yaml` (or `dispatcher.d/<worker>.yaml`),
//! `dispatcher.d/<worker>/env.yaml` (or `env.yaml`), `dispatcher.d/<worker>/env.dut.yaml`
//! (or `env.dut.yaml`); absent files are sent as empty frames.

use std::path::{Path, PathBuf};

use crate::store::{Device, Job};
use crate::template::TemplateEngine;
use crate::transport::JobFiles;

/// Why a job's START could not be put together; the job fails as Incomplete with this.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The dictionary does not render or its output is not YAML.
    #[error("the device dictionary of {device} does not render: {message}")]
    Render {
        /// The device.
        device: String,
        /// The template error.
        message: String,
    },
    /// A per-worker file is unreadable or not YAML.
    #[error("cannot use {}: {message}", path.display())]
    WorkerFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Builds the files for a job on a device of `worker`.
pub fn job_files(
    engine: &TemplateEngine,
    data_dir: &Path,
    job: &Job,
    device: &Device,
    worker: &str,
) -> Result<JobFiles, StartError> {
    let rendered = crate::device::render_device(
        engine,
        &format!("{}.jinja2", device.hostname),
        &device.dictionary,
        crate::device::DeviceName {
            hostname: &device.hostname,
            device_type: &device.device_type,
        },
        &job.context,
    )
    .map_err(|e| StartError::Render {
        device: device.hostname.clone(),
        message: e.to_string(),
    })?;
    let paths = WorkerFilePaths::new(data_dir, worker);
    Ok(JobFiles {
        job: job.definition.clone(),
        device: rendered.text,
        dispatcher: worker_file(&paths.dispatcher)?,
        env: worker_file(&paths.env)?,
        env_dut: worker_file(&paths.env_dut)?,
    })
}

/// Where a worker's dispatcher configuration and environments may be, most specific first.
pub struct WorkerFilePaths {
    /// `dispatcher.yaml` candidates.
    pub dispatcher: [PathBuf; 2],
    /// `env.yaml` candidates.
    pub env: [PathBuf; 2],
    /// `env.dut.yaml` candidates.
    pub env_dut: [PathBuf; 2],
}

impl WorkerFilePaths {
    /// The candidates for `worker` under `data_dir`.
    pub fn new(data_dir: &Path, worker: &str) -> Self {
        let per_worker = data_dir.join("dispatcher.d");
        Self {
            dispatcher: [
                per_worker.join(worker).join("dispatcher.yaml"),
                per_worker.join(format!("{worker}.yaml")),
            ],
            env: [
                per_worker.join(worker).join("env.yaml"),
                data_dir.join("env.yaml"),
            ],
            env_dut: [
                per_worker.join(worker).join("env.dut.yaml"),
                data_dir.join("env.dut.yaml"),
            ],
        }
    }
}

/// The first of `candidates` that exists, checked to be YAML; empty if none does.
fn worker_file(candidates: &[PathBuf]) -> Result<String, StartError> {
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Ok(String::new());
    };
    let text = std::fs::read_to_string(path).map_err(|e| StartError::WorkerFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    crate::yaml11::from_str(&text).map_err(|e| StartError::WorkerFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(text)
}
