//! A job log appended on a disk that fills up mid-write: the master's file stays a whole log,
//! each line once, and catches up when space returns.
//!
//! The disk fills through RLIMIT_FSIZE, which makes the kernel cut a write short at the
//! limit and fail the rest, as a full file system does. The limit is per process, so this
//! test has a binary of its own and nothing else runs in it.

use std::time::Duration;

use basalt::master::joblogs::{JobLogs, LogFaults};
use basalt::store::{NewJob, Store};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn line(n: usize) -> String {
    format!("- {{\"dt\": \"2026-12-01T10:00:00.{n:06}+00:00\", \"lvl\": \"target\", \"msg\": \"console line {n:06}\"}}\n")
}

#[test]
fn a_write_cut_short_by_a_full_disk_leaves_a_whole_log_that_catches_up() {
    // SAFETY: ignoring SIGXFSZ has no preconditions; the write then fails with EFBIG.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("basalt.db")).unwrap();
    let id = store
        .submit(&NewJob {
            name: "full disk".into(),
            visibility: basalt::store::Visibility::Public,
            definition: String::new(),
            device_type: "qemu".into(),
            requested_device: None,
            tags: vec![],
            context: serde_json::Value::Null,
            priority: 50,
            submitter: "admin".into(),
            health_check: false,
        })
        .unwrap();
    let faults = std::sync::Arc::new(LogFaults::default());
    let mut logs = JobLogs::with_faults(dir.path().join("jobs"), faults.clone());
    let all: String = (0..4000).map(line).collect();
    let chunk = |from: usize, to: usize| -> String { (from..to).map(line).collect() };

    // The first 1000 lines fit.
    let first = chunk(0, 1000);
    assert_eq!(
        logs.append(&store, id, 0, first.as_bytes()).unwrap().stored,
        first.len() as u64
    );

    // Now the disk holds 40 KB more than the log: the next 1000 lines (~90 KB) fail
    // part-way.
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    let limit = first.len() as u64 + 40_000;
    setrlimit(Resource::RLIMIT_FSIZE, limit, hard).unwrap();
    let second = chunk(1000, 2000);
    let failed = logs.append(&store, id, first.len() as u64, second.as_bytes());
    let error = failed.expect_err("the append cannot fit").to_string();
    assert!(
        error.contains("output.yaml"),
        "the error names the file: {error}"
    );
    let on_disk = std::fs::read(logs.path(id)).unwrap();
    assert_eq!(
        on_disk.len(),
        first.len(),
        "the part-written lines were cut off"
    );
    assert_eq!(faults.failures(), 1);
    assert_eq!(faults.waiting(), vec![id]);
    assert_eq!(
        store.job(id).unwrap().unwrap().log_bytes,
        first.len() as u64
    );

    // Space returns; the slave re-sends from where the master stands, and more.
    setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let rest = chunk(1000, 4000);
    let caught_up = logs
        .append(&store, id, first.len() as u64, rest.as_bytes())
        .unwrap();
    assert_eq!(caught_up.stored, all.len() as u64);
    assert_eq!(
        std::fs::read_to_string(logs.path(id)).unwrap(),
        all,
        "every line once, in order, none torn"
    );
    assert!(faults.waiting().is_empty());
    let record = store.job(id).unwrap().unwrap();
    assert_eq!(record.log_bytes, all.len() as u64);
    assert_eq!(record.log_lines, 4000);
}
