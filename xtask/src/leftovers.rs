//! Processes left behind: everything `cargo xtask` starts carries a mark in its environment,
//! which every descendant inherits whatever session or process group it makes for itself;
//! what still carries the mark after the task is a leftover.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;

/// The variable holding the mark of a `cargo xtask test` run.
pub const TESTS: &str = "XTASK_TEST_SESSION";
/// The variable holding the mark of a `cargo xtask soak` run.
pub const SOAK: &str = "XTASK_SOAK_SESSION";
/// The variable holding the mark of a `cargo xtask demo` run.
pub const DEMO: &str = "XTASK_DEMO_SESSION";

/// A live process that carries a mark.
#[derive(Debug, Clone)]
pub struct Marked {
    /// Its pid.
    pub pid: u32,
    /// Its command line, arguments joined by spaces.
    pub command: String,
}

/// Whether process `pid` has `var=value` in its environment (zombies have none).
pub fn carries(pid: u32, var: &str, value: &str) -> bool {
    let entry = format!("{var}={value}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
}

/// The live processes whose environment has `var=value` (zombies have no environment).
pub fn marked(var: &str, value: &str) -> Vec<Marked> {
    let own = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|&pid| carries(pid, var, value))
        .map(|pid| Marked {
            pid,
            command: std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
        })
        .collect()
}

/// Kills the processes (SIGKILL: a leftover had its chance to end cleanly).
pub fn kill(processes: &[Marked]) {
    for process in processes {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &process.pid.to_string()])
            .status();
    }
}

/// One run's mark: `what` names the run in messages.
pub struct Session {
    var: &'static str,
    mark: String,
    what: &'static str,
}

impl Session {
    /// A mark in `var` that no other run has.
    pub fn new(var: &'static str, what: &'static str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            var,
            mark: format!("{nanos:x}-{}", std::process::id()),
            what,
        }
    }

    /// The variable and its value, for the processes of the run.
    pub fn env(&self) -> (&'static str, &str) {
        (self.var, &self.mark)
    }

    /// Fails if any process of the session is still running, after ending them all. A
    /// process that is just exiting gets a moment first.
    pub fn end_leftovers(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = marked(self.var, &self.mark);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = marked(self.var, &self.mark);
        }
        if left.is_empty() {
            eprintln!("xtask: the {} left no process behind", self.what);
            return Ok(());
        }
        kill(&left);
        let list: Vec<String> = left
            .iter()
            .map(|p| format!("  {} {}", p.pid, p.command))
            .collect();
        bail!(
            "the {} left {} process(es) behind (now killed):\n{}",
            self.what,
            left.len(),
            list.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_process_is_found_and_a_session_fails_on_it() {
        let session = Session::new(TESTS, "test of leftovers");
        let (var, mark) = session.env();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(var, mark)
            .spawn()
            .unwrap();
        // /proc shows the child's own environment only once it has exec'd.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = marked(var, mark);
        while found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = marked(var, mark);
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, child.id());
        assert_eq!(found[0].command, "sleep 30");
        let error = session.end_leftovers().unwrap_err().to_string();
        assert!(error.contains("left 1 process(es) behind"), "{error}");
        let _ = child.wait();
        assert!(marked(var, mark).is_empty());
        assert!(session.end_leftovers().is_ok());
    }
}
