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
    // A device dictionary, as an admin writes it: a shipped device type plus this board's
    // console and PDU commands.
    let dictionary = dir.join("demo-01.jinja2");
    std::fs::write(
        &dictionary,
        format!(
            "{{% extends 'beaglebone-black.jinja2' %}}\n\
             {{% set connection_command = 'sh {}' %}}\n\
             {{% set power_on_command = 'echo \"$(date +%T) outlet 1 on\" >> {o}' %}}\n\
             {{% set power_off_command = 'echo \"$(date +%T) outlet 1 off\" >> {o}' %}}\n\
             {{% set hard_reset_command = 'echo \"$(date +%T) outlet 1 cycled\" >> {o}' %}}\n",
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
    let dictionary_arg = dictionary.display().to_string();
    let device = dir.join("demo-01.yaml");
    let device_arg = device.display().to_string();
    let action_arg = action.display().to_string();

    step(&basalt, "basalt plugins list", &["plugins", "list"], None)?;
    step(
        &basalt,
        "basalt device-types list",
        &["device-types", "list"],
        None,
    )?;
    step(
        &basalt,
        "basalt devices check --live (render, validate, drivers, PDU and console)",
        &["devices", "check", "--live", &dictionary_arg],
        None,
    )?;
    step(
        &basalt,
        "basalt devices render (the configuration a job gets), saved to demo-01.yaml",
        &["devices", "render", &dictionary_arg],
        Some(&device),
    )?;
    step(
        &basalt,
        "basalt power on",
        &["power", "on", "--device", &device_arg],
        None,
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
        None,
    )?;
    println!("\n== the outlet log written by the power commands ==");
    print!("{}", std::fs::read_to_string(&outlet).unwrap_or_default());
    println!("\ndemo files are in {}", dir.display());
    Ok(())
}

/// Runs one `basalt` command, echoing its output (or saving stdout to `save_to`).
fn step(basalt: &Path, title: &str, args: &[&str], save_to: Option<&Path>) -> anyhow::Result<()> {
    println!("\n== {title} ==");
    let mut command = Command::new(basalt);
    command.args(args);
    let status = match save_to {
        Some(path) => {
            let output = command
                .output()
                .with_context(|| format!("cannot run {}", basalt.display()))?;
            std::io::Write::write_all(&mut std::io::stderr(), &output.stderr)?;
            std::fs::write(path, &output.stdout)?;
            let text = String::from_utf8_lossy(&output.stdout);
            for line in text.lines().take(12) {
                println!("{line}");
            }
            println!("... ({} lines)", text.lines().count());
            output.status
        }
        None => command
            .status()
            .with_context(|| format!("cannot run {}", basalt.display()))?,
    };
    if !status.success() {
        bail!("{title}: basalt exited with {status}");
    }
    Ok(())
}
