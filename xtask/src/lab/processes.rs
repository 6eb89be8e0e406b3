//! The lab's processes: started detached in their own sessions (so a job's qemu or a daemon
//! never dies with the terminal that ran `lab up`), found again by the lab directory on their
//! command lines or in their environment (`XTASK_LAB`, which everything they start inherits,
//! such as a console's telnet), and stopped as process groups.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running process of the lab.
#[derive(Debug, Clone)]
pub struct LabProcess {
    /// Its pid.
    pub pid: u32,
    /// Its command line, arguments joined by spaces.
    pub command: String,
}

/// The variable that marks the lab's processes with the lab's directory.
const LAB_VAR: &str = "XTASK_LAB";

/// Starts `program ARGS` of the lab in `lab_dir` in a new session, output to `log`; returns
/// its pid.
pub fn spawn(lab_dir: &Path, program: &str, args: &[String], log: &Path) -> anyhow::Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    // setsid(1) execs the program in place (a freshly spawned child is no group leader), so
    // the pid is the program's, and the session is its own.
    let child = Command::new("setsid")
        .arg(program)
        .args(args)
        .env(LAB_VAR, lab_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    Ok(child.id())
}

fn is_live(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether `command` names `dir` or a path under it (not merely a longer name that starts
/// the same, such as `lab-old`).
fn names_dir(command: &str, dir: &str) -> bool {
    command.match_indices(dir).any(|(at, _)| {
        let after = &command[at + dir.len()..];
        after.is_empty() || after.starts_with(['/', ' ', '"', '\'', ',', ':'])
    })
}

/// Every live process whose command line names `dir` or that carries the lab's mark,
/// except this one.
pub fn find(dir: &Path) -> Vec<LabProcess> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<LabProcess> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let command = String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let marked = || crate::leftovers::carries(pid, LAB_VAR, &needle);
            ((names_dir(&command, &needle) || marked()) && is_live(pid))
                .then_some(LabProcess { pid, command })
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Signals a process and, when it leads one, its process group (what it started with it).
fn signal_all(pid: u32, name: &str) {
    signal(pid, name);
    let _ = Command::new("kill")
        .args([&format!("-{name}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// Stops `processes` and their process groups (SIGTERM, then SIGKILL after `grace`); true
/// if none is left.
pub fn stop(processes: &[LabProcess], grace: Duration) -> bool {
    for process in processes {
        signal_all(process.pid, "TERM");
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if processes.iter().all(|p| !is_live(p.pid)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for process in processes.iter().filter(|p| is_live(p.pid)) {
        signal_all(process.pid, "KILL");
    }
    std::thread::sleep(Duration::from_millis(300));
    processes.iter().all(|p| !is_live(p.pid))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_lab_directory_and_what_is_under_it_match() {
        let dir = "/w/target/lab";
        assert!(super::names_dir(
            "basalt master --data-dir /w/target/lab/master",
            dir
        ));
        assert!(super::names_dir("pdudaemon --conf '/w/target/lab'", dir));
        assert!(super::names_dir("x /w/target/lab", dir));
        assert!(!super::names_dir("vim /w/target/lab-old/notes", dir));
        assert!(!super::names_dir(
            "basalt master --data-dir /srv/master",
            dir
        ));
    }
}
