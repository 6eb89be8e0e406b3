//! `cargo xtask demo`: what Basalt does today, end to end, on this machine.
//!
//! A lab of one simulated board (see `lab.rs`): its device dictionary is checked live, a LAVA
//! job is validated and described, then run with `basalt run` exactly as a slave will run it,
//! and its results shown.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::lab::write_lab;

pub fn run(root: &Path) -> anyhow::Result<()> {
    super::cargo(root, &["build", "--workspace"])?;
    let bin_dir = root.join("target/debug");
    let basalt = bin_dir.join("basalt");
    let dir = std::env::temp_dir().join(format!("basalt-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create demo directory")?;
    let lab = write_lab(&dir, &bin_dir)?;
    let dictionary = lab.dictionary.display().to_string();
    let job = lab.job.display().to_string();
    let out = lab.dir.join("job-output");
    let out_arg = out.display().to_string();

    step(&basalt, "basalt plugins list", &["plugins", "list"])?;
    step(
        &basalt,
        "basalt device-types list",
        &["device-types", "list"],
    )?;
    step(
        &basalt,
        "basalt devices check --live: the dictionary renders, validates, its drivers load, \
         the PDU answers and the console opens",
        &["devices", "check", "--live", &dictionary],
    )?;
    step(&basalt, "basalt jobs validate", &["jobs", "validate", &job])?;
    step(
        &basalt,
        "basalt jobs describe: the pipeline and its timeouts",
        &["jobs", "describe", &job, "--device", &dictionary],
    )?;
    step(
        &basalt,
        "basalt run: deploy, power-cycle and boot the board, log in, run the tests",
        &[
            "run",
            "--quiet",
            "--device",
            &dictionary,
            "--output-dir",
            &out_arg,
            &job,
        ],
    )?;
    println!("\n== results.yaml ==");
    print!(
        "{}",
        std::fs::read_to_string(out.join("results.yaml")).unwrap_or_default()
    );
    println!("\n== the job log (first lines of board output) ==");
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("\"target\"")).take(8) {
        println!("{line}");
    }
    println!("\n== the outlet log written by the power commands ==");
    print!(
        "{}",
        std::fs::read_to_string(&lab.power_log).unwrap_or_default()
    );
    println!(
        "\nthe job's log, results (YAML and JUnit), device configuration and pipeline are in {}",
        out.display()
    );
    Ok(())
}

fn step(basalt: &Path, title: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("\n== {title} ==");
    let status = Command::new(basalt)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", basalt.display()))?;
    if !status.success() {
        bail!("{title}: basalt exited with {status}");
    }
    Ok(())
}
