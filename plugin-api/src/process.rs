//! Running one shell command under a deadline, with its output in the job log.
//!
//! Power commands, user commands and most home-grown PDU scripts come down to this, so it is
//! offered to every plugin (and used by the host for the device's user commands).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Log, PluginError};

/// How much of a command's output [`run_command_output`] returns.
pub const MAX_OUTPUT: usize = 64 << 10;
/// How many of the last output lines an error message quotes.
const TAIL_LINES: usize = 5;
/// How long to keep reading output after the command exited (a background child may still
/// hold the pipe open; its output after that is not ours to wait for).
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Runs `command` with `/bin/sh -c` in its own process group, logging each line it prints
/// at `feedback` level, and kills the whole group if it is still running at `deadline`.
/// `key` names the command in messages (`power_on`, `user command reset-usb`). A non-zero
/// exit is an infrastructure error quoting the last lines of output.
pub fn run_command(
    key: &str,
    command: &str,
    deadline: Instant,
    log: &Log,
) -> Result<(), PluginError> {
    run_command_output(key, command, deadline, log).map(drop)
}

/// [`run_command`], returning what the command printed (stdout and stderr, as one text, its
/// first [`MAX_OUTPUT`] bytes), for callers that check it (LAVA reads fastboot's "OKAY" and
/// "Booting" from its output).
pub fn run_command_output(
    key: &str,
    command: &str,
    deadline: Instant,
    log: &Log,
) -> Result<String, PluginError> {
    let mut shell = Command::new("/bin/sh");
    shell.arg("-c").arg(command);
    run_logged(key, command, shell, deadline, log)
}

/// Runs a program with these arguments (`argv[0]` is the program, found on `PATH`), no shell
/// in between, as [`run_command_output`] runs a shell command: nothing in an argument is
/// interpreted.
pub fn run_program_output<S: AsRef<str>>(
    key: &str,
    argv: &[S],
    deadline: Instant,
    log: &Log,
) -> Result<String, PluginError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(PluginError::bug(format!("{key}: no program to run")));
    };
    let mut command = Command::new(program.as_ref());
    command.args(args.iter().map(AsRef::as_ref));
    let shown: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    run_logged(key, &shown.join(" "), command, deadline, log)
}

fn run_logged(
    key: &str,
    command: &str,
    mut program: Command,
    deadline: Instant,
    log: &Log,
) -> Result<String, PluginError> {
    log.info(&format!("{key}: {command}"));
    let spawn_error = |e: std::io::Error| {
        PluginError::infrastructure(format!("{key}: cannot run {command:?}: {e}"))
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut child = program
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(spawn_error)?)
        .stderr(writer)
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;

    let (lines_tx, lines) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut tail: Vec<String> = Vec::new();
    let mut output = String::new();
    let mut record = |line: String| {
        log.feedback(&line);
        if output.len() + line.len() < MAX_OUTPUT {
            output.push_str(&line);
            output.push('\n');
        }
        tail.push(line);
        if tail.len() > TAIL_LINES {
            tail.remove(0);
        }
    };
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            let drain_until = Instant::now() + DRAIN_GRACE;
            while let Ok(line) =
                lines.recv_timeout(drain_until.saturating_duration_since(Instant::now()))
            {
                record(line);
            }
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(&mut child);
            return Err(PluginError::timeout(format!(
                "{key}: {command:?} did not finish in time and was killed"
            )));
        }
        let wait = (deadline - now).min(Duration::from_millis(20));
        match lines.recv_timeout(wait) {
            Ok(line) => record(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
        }
    };
    if status.success() {
        return Ok(output);
    }
    let mut message = format!("{key}: {command:?} failed ({status})");
    if !tail.is_empty() {
        message.push_str("; it printed: ");
        message.push_str(&tail.join(" | "));
    }
    Err(PluginError::infrastructure(message))
}

/// Kills a child started with `process_group(0)` together with everything it started.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}
