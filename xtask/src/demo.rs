//! `cargo xtask demo`: what Basalt does today, end to end, on this machine.
//!
//! Builds the workspace, lists the plugins, then takes a simulated board (a shell script on a
//! pseudo-terminal, powered by shell commands that log to a file) through `basalt power` and
//! `basalt boot` with the shipped drivers.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// The simulated board: boot messages, a login, then a shell.
const BOARD: &str = r#"echo "U-Boot 2024.01 (demo board)"
echo "Hit any key to stop autoboot:  0"
echo "Starting kernel ..."
echo "[    0.000000] Linux version 6.1.0 (demo)"
echo "[    1.234567] Run /init as init process"
printf 'demo login: '
read user
printf 'root@demo:~# '
while read command; do sh -c "$command" 2>&1; printf 'root@demo:~# '; done
"#;

pub fn run(root: &Path) -> anyhow::Result<()> {
    super::cargo(root, &["build", "--workspace"])?;
    let basalt = root.join("target/debug/basalt");
    let dir = std::env::temp_dir().join(format!("basalt-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create demo directory")?;
    let board = dir.join("board.sh");
    let outlet = dir.join("outlet.log");
    std::fs::write(&board, BOARD)?;
    let o = outlet.display();
    let device = dir.join("demo-device.yaml");
    std::fs::write(
        &device,
        format!(
            "# A rendered device configuration, as the master will send it with a job.\n\
             hostname: demo-01\n\
             commands:\n  \
               connect: sh {}\n  \
               power_on: echo \"$(date +%T) outlet 1 on\" >> {o}\n  \
               power_off: echo \"$(date +%T) outlet 1 off\" >> {o}\n  \
               hard_reset: echo \"$(date +%T) outlet 1 cycled\" >> {o}\n\
             actions:\n  boot:\n    methods:\n      minimal:\n",
            board.display()
        ),
    )?;
    let action = dir.join("boot-action.yaml");
    std::fs::write(
        &action,
        "method: minimal\n\
         auto_login: {login_prompt: 'login: ', username: root}\n\
         prompts: ['root@demo:~# ']\n\
         timeout: {minutes: 1}\n",
    )?;

    step(&basalt, "basalt plugins list", &["plugins", "list"])?;
    let device_arg = device.display().to_string();
    let action_arg = action.display().to_string();
    step(
        &basalt,
        "basalt power on (the device's power_on command)",
        &["power", "on", "--device", &device_arg],
    )?;
    step(
        &basalt,
        "basalt power state (command PDUs cannot read back)",
        &["power", "state", "--device", &device_arg],
    )?;
    step(
        &basalt,
        "basalt boot with boot-minimal: reset, log in, reach the prompt",
        &[
            "boot",
            "--device",
            &device_arg,
            "--action",
            &action_arg,
            "--timeout",
            "60",
        ],
    )?;
    println!("\n== the outlet log written by the power commands ==");
    print!("{}", std::fs::read_to_string(&outlet).unwrap_or_default());
    println!("\ndemo files are in {}", dir.display());
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
