//! `cargo xtask bench run`: peak memory of `basalt run` on the lab's passing job.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::simlab::write_lab;

/// Builds release binaries, runs the job, and prints the job process's peak RSS.
pub fn run(root: &Path) -> anyhow::Result<()> {
    super::cargo(root, &["build", "--release", "--workspace"])?;
    let bin_dir = root.join("target/release");
    let dir = std::env::temp_dir().join(format!("basalt-bench-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let lab = write_lab(&dir, &bin_dir)?;
    // A slave gets the device configuration already rendered by the master; so does this run.
    let rendered = Command::new(bin_dir.join("basalt"))
        .arg("devices")
        .arg("render")
        .arg(&lab.board.dictionary)
        .output()
        .context("cannot render the lab's device dictionary")?;
    if !rendered.status.success() {
        bail!(
            "basalt devices render failed: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
    }
    let device = dir.join("device.yaml");
    std::fs::write(&device, &rendered.stdout)?;
    let started = Instant::now();
    let child = Command::new(bin_dir.join("basalt"))
        .arg("run")
        .arg("--quiet")
        .arg("--device")
        .arg(&device)
        .arg("--output-dir")
        .arg(dir.join("out"))
        .arg("--local-file-dir")
        .arg(&dir)
        .arg(&lab.job)
        .spawn()
        .context("cannot start basalt run")?;
    // The peak RSS of the job process itself: the kernel's high-water mark for its address
    // space (VmHWM), sampled until it exits. (wait4's ru_maxrss would also count the memory
    // the child shared with this process before exec.)
    let mut child = child;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let elapsed = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "the job did not complete; see {}",
            dir.join("out/output.yaml").display()
        );
    }
    println!(
        "basalt run (passing job on the simulated board, rendered device configuration as a \
         slave passes it): peak RSS {:.1} MiB, {elapsed:.1} s wall",
        peak_kib as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
