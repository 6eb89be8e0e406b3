//! Checks shared by the end-to-end tests of jobs across master and slave: a slow job to kill
//! daemons during, and what its log and results must be afterwards; and the images that
//! tests of `basalt run` deploy.
//!
//! Each test file uses a part of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use basalt_e2e::cluster::{wait_for, Cluster};

/// How long a job across master and slave may take in a test.
pub const LONG: Duration = Duration::from_secs(90);

/// A job that takes a few seconds in its test phase, so daemons can be killed during it.
pub fn slow_job(cluster: &Cluster) -> std::path::PathBuf {
    cluster.job(
        "slow",
        &[
            "lava-test-case before --shell true",
            "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done",
            "lava-test-case middle --result pass --measurement 3 --units s",
            "for i in 1 2 3 4; do echo tock $i; sleep 0.5; done",
            "lava-test-case after --shell false",
        ],
    )
}

/// The log is complete and has each line once: byte for byte what the job process wrote,
/// every line a distinct entry, ending with the job's final result record.
pub fn assert_log_delivered_once(cluster: &Cluster, id: u64) {
    let master = cluster.master_log(id);
    let slave = cluster.slave_log(id);
    assert!(!master.is_empty(), "the master has no log for job {id}");
    assert_eq!(
        master, slave,
        "the master's log differs from what the job process wrote"
    );
    let lines: Vec<&str> = master.lines().collect();
    let unique: std::collections::HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(unique.len(), lines.len(), "a log line is doubled");
    let entries = basalt::yaml11::from_str(&master).expect("the log is YAML");
    let last = entries
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    // As lava-run ends a log: "Job finished correctly", then the job's own result record.
    assert_eq!(last["lvl"], "results", "{last}");
    assert_eq!(last["msg"]["case"], "job", "{last}");
    let finals: Vec<&Value> = entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["lvl"] == "results" && e["msg"]["case"] == "job")
        .collect();
    assert_eq!(finals.len(), 1, "exactly one final job result");
}

/// The job's results as (name, result) pairs.
pub fn results(cluster: &Cluster, id: u64) -> Vec<(String, String)> {
    let out = cluster
        .cli(&["jobs", "results", &id.to_string(), "--format", "json"])
        .success();
    out.json()
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The slow job's results are there, each once.
pub fn assert_slow_job_results(cluster: &Cluster, id: u64) {
    let results = results(cluster, id);
    for (case, expected) in [
        ("before", "pass"),
        ("middle", "pass"),
        ("after", "fail"),
        ("job", "pass"),
    ] {
        let found: Vec<_> = results.iter().filter(|(name, _)| name == case).collect();
        assert_eq!(found.len(), 1, "result {case} once: {results:?}");
        assert_eq!(found[0].1, expected, "{case}: {results:?}");
    }
}

/// Waits until the job's board is in the middle of the test phase.
pub fn wait_mid_test(cluster: &Cluster, id: u64) {
    wait_for("the job to reach its test phase", LONG, || {
        cluster.slave_log(id).contains("tick 2").then_some(())
    });
}

/// A gz-compressed cpio (newc) ramdisk holding one small file per name.
pub fn gz_ramdisk(names: &[&str]) -> Vec<u8> {
    use basalt::dispatcher::archive::{cpio, Compression};
    use std::io::Write;
    let mut writer = cpio::Writer::new(Vec::new());
    for name in names {
        let header = cpio::Header::new(name, cpio::S_IFREG | 0o755, 1, 0);
        writer.add(header, &mut &b"x"[..]).unwrap();
    }
    let mut gz = Compression::Gz.encoder(Vec::new()).unwrap();
    gz.write_all(&writer.finish().unwrap()).unwrap();
    gz.finish().unwrap()
}
