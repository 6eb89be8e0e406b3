//! The demo's and the dispatcher benchmark's lab: one simulated board (the simulated lab of
//! `basalt_e2e::simlab`, the same one the end-to-end tests use) and a smoke-test job for it.

use std::path::{Path, PathBuf};

use basalt_e2e::simlab::{SimBoard, SimJob};

/// What the smoke test runs on the board.
const SMOKE_STEPS: [&str; 3] = [
    "lava-test-case kernel-name --shell uname -s",
    "lava-test-case shell-works --shell true",
    "lava-test-case boot-time --result pass --measurement 1.5 --units seconds",
];

/// The files of the lab.
pub struct Lab {
    /// The board `demo-01`.
    pub board: SimBoard,
    /// The job definition.
    pub job: PathBuf,
}

/// Writes the lab into `dir`, using the `simboard` built in `bin_dir`.
pub fn write_lab(dir: &Path, bin_dir: &Path) -> std::io::Result<Lab> {
    let board = SimBoard::write(dir, "demo-01", &bin_dir.join("simboard"), "")?;
    let job = SimJob {
        job_minutes: 5,
        ..SimJob::new("demo smoke test", &SMOKE_STEPS)
    };
    let job = board.write_job(dir, "smoke-job.yaml", &job)?;
    Ok(Lab { board, job })
}
