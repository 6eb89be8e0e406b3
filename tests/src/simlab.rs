//! The simulated lab, written once for every user of it (the end-to-end tests, `cargo xtask
//! demo`, `cargo xtask soak` and the dispatcher benchmark): a beaglebone-black whose console
//! is the simulated board (`simboard`, built by this crate) on a pty through
//! `connection_command`, whose power commands write the board's power file and an outlet
//! log, and LAVA jobs for it that deploy a kernel file, log in and run a test definition.

use std::io;
use std::path::{Path, PathBuf};

/// One simulated board's files.
#[derive(Debug, Clone)]
pub struct SimBoard {
    /// The device dictionary, `NAME.jinja2`.
    pub dictionary: PathBuf,
    /// The simulator's state directory (its power file, its console lock).
    pub state: PathBuf,
    /// The outlet log the power commands append to: `HH:MM:SS outlet 1 on|reset|off`.
    pub power_log: PathBuf,
    /// The file the jobs deploy as the kernel.
    pub kernel: PathBuf,
}

impl SimBoard {
    /// Writes board `name` into `dir`: its dictionary runs `simboard` with `board_args`
    /// (e.g. `--countdown 5`, `--never-boot`) as its console.
    pub fn write(dir: &Path, name: &str, simboard: &Path, board_args: &str) -> io::Result<Self> {
        let state = dir.join(format!("{name}-state"));
        std::fs::create_dir_all(&state)?;
        let power = state.join("power");
        let power_log = dir.join(format!("{name}-power.log"));
        let kernel = dir.join("kernel.img");
        std::fs::write(&kernel, b"a kernel image stands here")?;
        let (p, l) = (power.display(), power_log.display());
        let outlet = |action: &str| format!("echo \"$(date +%T) outlet 1 {action}\" >> {l}");
        let dictionary = dir.join(format!("{name}.jinja2"));
        std::fs::write(
            &dictionary,
            format!(
                "{{% extends 'beaglebone-black.jinja2' %}}
{{% set connection_command = '{} --state {} {board_args}' %}}
{{% set power_on_command = 'echo on $(date +%s%N) > {p}; {}' %}}
{{% set hard_reset_command = 'echo on $(date +%s%N) > {p}; {}' %}}
{{% set power_off_command = 'echo off > {p}; {}' %}}
{{% set lava_test_results_dir = '{}/lava-%s' %}}
",
                simboard.display(),
                state.display(),
                outlet("on"),
                outlet("reset"),
                outlet("off"),
                // The simulated board's shell runs on this machine: each lab's overlay goes
                // into its own directory.
                dir.display(),
            ),
        )?;
        Ok(Self {
            dictionary,
            state,
            power_log,
            kernel,
        })
    }

    /// What the outlet was told, in order (`on`, `reset`, `off`).
    pub fn power_actions(&self) -> Vec<String> {
        std::fs::read_to_string(&self.power_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.rsplit(' ').next().map(str::to_owned))
            .collect()
    }

    /// Writes `job` for this board as `FILE_NAME` in `dir`; returns its path.
    pub fn write_job(&self, dir: &Path, file_name: &str, job: &SimJob) -> io::Result<PathBuf> {
        let path = dir.join(file_name);
        std::fs::write(&path, job.definition(&self.kernel))?;
        Ok(path)
    }
}

/// A LAVA job for a simulated board: deploy the kernel, power on, log in as root, run a test
/// definition (`smoke`) whose steps are given.
#[derive(Debug, Clone)]
pub struct SimJob<'a> {
    /// `job_name`.
    pub name: &'a str,
    /// The deploy's `to:` (`tmpfs`; `tftp` for a worker with a TFTP root).
    pub deploy_to: &'a str,
    /// `timeouts.job`, minutes.
    pub job_minutes: u32,
    /// `timeouts.action`, minutes.
    pub action_minutes: u32,
    /// The boot action's timeout, seconds.
    pub boot_seconds: u32,
    /// The test definition's run steps.
    pub steps: &'a [&'a str],
}

impl<'a> SimJob<'a> {
    /// A job named `name` running `steps`, with the defaults the tests use.
    pub fn new(name: &'a str, steps: &'a [&'a str]) -> Self {
        Self {
            name,
            deploy_to: "tmpfs",
            job_minutes: 4,
            action_minutes: 2,
            boot_seconds: 60,
            steps,
        }
    }

    /// The job definition, deploying `kernel`.
    pub fn definition(&self, kernel: &Path) -> String {
        let steps: String = self
            .steps
            .iter()
            .map(|s| format!("          - {s}\n"))
            .collect();
        format!(
            "job_name: {name}
device_type: beaglebone-black
timeouts:
  job: {{minutes: {job}}}
  action: {{minutes: {action}}}
visibility: public
priority: medium
actions:
- deploy:
    to: {to}
    kernel:
      url: file://{kernel}
- boot:
    method: minimal
    timeout: {{seconds: {boot}}}
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@simboard:~# ']
- test:
    timeout: {{minutes: 2}}
    definitions:
    - from: inline
      name: smoke
      path: inline/smoke.yaml
      repository:
        metadata: {{format: Lava-Test Test Definition 1.0, name: smoke}}
        run:
          steps:
{steps}",
            name = self.name,
            job = self.job_minutes,
            action = self.action_minutes,
            to = self.deploy_to,
            kernel = kernel.display(),
            boot = self.boot_seconds,
        )
    }
}
