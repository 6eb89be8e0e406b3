//! A one-board simulated lab on this machine: the simulated board (`simboard`, built by the `tests`
//! crate) as a beaglebone-black whose console and power are local processes and files, plus a
//! LAVA job for it. Used by the demo and the dispatcher benchmark.

use std::path::{Path, PathBuf};

/// The files of the lab.
pub struct Lab {
    /// The device dictionary.
    pub dictionary: PathBuf,
    /// The job definition.
    pub job: PathBuf,
    /// The log the power commands append to.
    pub power_log: PathBuf,
}

/// Writes the lab into `dir`, using the binaries in `bin_dir`.
pub fn write_lab(dir: &Path, bin_dir: &Path) -> std::io::Result<Lab> {
    let state = dir.join("board");
    std::fs::create_dir_all(&state)?;
    let power = state.join("power");
    let power_log = dir.join("power.log");
    let (p, l) = (power.display(), power_log.display());
    let kernel = dir.join("zImage");
    std::fs::write(&kernel, b"a kernel image stands here")?;
    let dictionary = dir.join("demo-01.jinja2");
    std::fs::write(
        &dictionary,
        format!(
            "{{% extends 'beaglebone-black.jinja2' %}}
{{% set connection_command = '{} --state {}' %}}
{{% set power_on_command = 'echo on $(date +%s%N) > {p}; echo \"$(date +%T) outlet 1 on\" >> {l}' %}}
{{% set hard_reset_command = 'echo on $(date +%s%N) > {p}; echo \"$(date +%T) outlet 1 cycled\" >> {l}' %}}
{{% set power_off_command = 'echo off > {p}; echo \"$(date +%T) outlet 1 off\" >> {l}' %}}
{{% set lava_test_results_dir = '/tmp/lava-%s' %}}
",
            bin_dir.join("simboard").display(),
            state.display()
        ),
    )?;
    let job = dir.join("smoke-job.yaml");
    std::fs::write(
        &job,
        format!(
            "job_name: demo smoke test
device_type: beaglebone-black
priority: medium
visibility: public
timeouts:
  job: {{minutes: 5}}
  action: {{minutes: 2}}
actions:
- deploy:
    to: tmpfs
    kernel:
      url: file://{}
- boot:
    method: minimal
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@simboard:~# ']
    timeout: {{minutes: 1}}
- test:
    timeout: {{minutes: 2}}
    definitions:
    - from: inline
      name: smoke
      path: inline/smoke.yaml
      repository:
        metadata:
          format: Lava-Test Test Definition 1.0
          name: smoke
        run:
          steps:
          - lava-test-case kernel-name --shell uname -s
          - lava-test-case shell-works --shell true
          - lava-test-case boot-time --result pass --measurement 1.5 --units seconds
",
            kernel.display()
        ),
    )?;
    Ok(Lab {
        dictionary,
        job,
        power_log,
    })
}
