//! A job's processes as one unit: every process a job starts carries the job's tag in its
//! environment (`BASALT_JOB_TAG`), and whoever ends the job ends everything with that tag.
//!
//! Why an environment tag rather than process groups, sessions or pid trees: a job's
//! processes make their own sessions (a console on a pty must lead one, QEMU under `sh -c`,
//! daemonising helpers), so group signals miss them; parent links break as soon as a parent
//! dies, and a slave restarted after a crash is not the parent of the jobs it adopts. The
//! environment is inherited through `fork`, `setsid` and `exec` alike, needs no privilege, no
//! cgroup delegation and no particular init, and is readable in `/proc/PID/environ` by the
//! user the job runs as, from any process, at any later time. What it misses: a program that
//! `exec`s with an emptied environment (`env -i`, `sudo`); none of the shipped plugins does.
//!
//! `basalt run` is also a child subreaper ([`become_subreaper`]), so a process whose parent
//! exits is re-parented to the job process, not to init, and is reaped by it.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// The environment variable that names the job a process belongs to.
pub const TAG_VAR: &str = "BASALT_JOB_TAG";

/// How often the processes are looked for again while waiting for them to end.
const POLL: Duration = Duration::from_millis(20);
/// How long SIGKILL gets to take effect before giving up (a process in uninterruptible
/// sleep, e.g. on a dead NFS server, cannot be killed sooner).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process that was ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub name: String,
    /// Whether it needed SIGKILL.
    pub killed: bool,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.pid, self.name)?;
        if self.killed {
            f.write_str(" killed")?;
        }
        Ok(())
    }
}

/// A new tag, unique on this machine: the time, this process's pid and a counter.
pub fn new_tag() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// This process's job tag: the one it was started with, or a new one put into its own
/// environment, so that everything it starts from now on inherits it. Call it first thing
/// in `main`'s thread, before other threads exist (the environment is process-global).
pub fn own_tag() -> String {
    match std::env::var(TAG_VAR) {
        Ok(tag) if !tag.is_empty() => tag,
        _ => {
            let tag = new_tag();
            std::env::set_var(TAG_VAR, &tag);
            tag
        }
    }
}

/// Makes orphaned descendants of this process its children instead of init's.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// The tag in `/proc/PID/environ`, if the process has one (zombies have no environment).
pub fn tag_of(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{TAG_VAR}=");
    environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

fn name_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|n| n.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// Every live process (other than this one) that carries one of `tags`, with its tag.
pub fn tagged(tags: &HashSet<String>) -> Vec<(i32, String)> {
    if tags.is_empty() {
        return Vec::new();
    }
    let own = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            let tag = tag_of(pid)?;
            tags.contains(&tag).then_some((pid, tag))
        })
        .collect()
}

/// The live processes (other than this one) that carry `tag`.
pub fn find(tag: &str) -> Vec<i32> {
    let tags = HashSet::from([tag.to_owned()]);
    tagged(&tags).into_iter().map(|(pid, _)| pid).collect()
}

/// Reaps `pid` if it is a finished child of this process (a subreaper inherits orphans).
fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Ends every process that carries `tag`: SIGTERM, up to `grace` to exit, then SIGKILL.
/// Processes that appear meanwhile (a dying shell's last fork) are ended too. Returns what
/// was ended, in the order found.
pub fn end(tag: &str, grace: Duration) -> Vec<Ended> {
    let mut ended: Vec<Ended> = Vec::new();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + grace;
    loop {
        let live = find(tag);
        for &pid in &live {
            if seen.insert(pid) {
                ended.push(Ended {
                    pid,
                    name: name_of(pid),
                    killed: false,
                });
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for &pid in &seen {
            reap(pid);
        }
        if live.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let live = find(tag);
        if live.is_empty() {
            break;
        }
        for pid in live {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            match ended.iter_mut().find(|e| e.pid == pid) {
                Some(entry) => entry.killed = true,
                None => ended.push(Ended {
                    pid,
                    name: name_of(pid),
                    killed: true,
                }),
            }
            seen.insert(pid);
        }
        std::thread::sleep(POLL);
        for &pid in &seen {
            reap(pid);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "processes of job tag {tag} survive SIGKILL (uninterruptible sleep?): {:?}",
                find(tag)
            );
            break;
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn spawn_tagged(tag: &str, script: &str) -> std::process::Child {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env(TAG_VAR, tag)
            .spawn()
            .unwrap()
    }

    fn wait_found(tag: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while find(tag).len() < count {
            assert!(
                Instant::now() < deadline,
                "{count} processes never appeared"
            );
            std::thread::sleep(POLL);
        }
    }

    #[test]
    fn ends_processes_in_their_own_sessions_and_spares_others() {
        let tag = new_tag();
        let other = new_tag();
        // A child that starts a grandchild in a new session, as a console connection does.
        let mut child = spawn_tagged(&tag, "setsid sleep 300 & exec sleep 300");
        let mut bystander = spawn_tagged(&other, "exec sleep 300");
        // A process shows its new environment only once it has exec'd.
        wait_found(&tag, 2);
        wait_found(&other, 1);
        let ended = end(&tag, Duration::from_secs(2));
        // Names depend on how far each got towards exec'ing sleep: not checked.
        assert_eq!(ended.len(), 2, "{ended:?}");
        assert!(ended.iter().all(|e| !e.killed), "{ended:?}");
        assert!(find(&tag).is_empty());
        let _ = child.wait();
        assert_eq!(
            find(&other).len(),
            1,
            "a process of another job was touched"
        );
        let _ = bystander.kill();
        let _ = bystander.wait();
    }

    #[test]
    fn kills_what_ignores_sigterm() {
        let tag = new_tag();
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("trapped");
        // The shell says when its trap is set: a SIGTERM before that would end it, and the
        // test would see nothing that needed killing.
        let mut child = spawn_tagged(
            &tag,
            &format!(
                "trap '' TERM; : > '{}'; while :; do sleep 0.05; done",
                ready.display()
            ),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the shell never set its trap");
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_found(&tag, 1);
        let started = Instant::now();
        let ended = end(&tag, Duration::from_millis(300));
        assert!(ended.iter().any(|e| e.killed), "{ended:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(find(&tag).is_empty());
        let _ = child.wait();
    }

    #[test]
    fn no_tag_no_processes() {
        assert!(find(&new_tag()).is_empty());
        assert!(tagged(&HashSet::new()).is_empty());
        assert_ne!(new_tag(), new_tag());
    }
}
