//! Every process a job starts ends with the job, however the job ends: normally, forced out
//! by a second SIGTERM, killed with kill -9, or canceled until the slave's SIGKILL. The
//! simulated board's console takes one connection at a time, as ser2net does, so a console
//! left over from one job would keep the next job on the board from connecting.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basalt::job_processes::{find, TAG_VAR};
use basalt_e2e::cluster::{wait_for, Cluster};
use basalt_e2e::Basalt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use common::{slow_job, wait_mid_test, LONG};

/// The board's dictionary with `extra` `{% set %}` lines after the cluster's own.
fn dictionary(cluster: &Cluster, extra: &str) -> PathBuf {
    let path = cluster.board_dictionary();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    path
}

fn board(cluster: &Cluster) -> PathBuf {
    cluster.board.state.clone()
}

/// `basalt run` of `job` on the board, tagged `tag`, started in the background.
fn spawn_run(
    cluster: &Cluster,
    dict: &Path,
    job: &Path,
    out: &str,
    tag: &str,
) -> std::process::Child {
    Basalt::new(["run", "--quiet", "--device"])
        .arg(dict)
        .arg("--output-dir")
        .arg(cluster.dir.path().join(out))
        .arg("--local-file-dir")
        .arg(cluster.dir.path())
        .arg(job)
        .env(TAG_VAR, tag)
        .spawn(cluster.dir.path())
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "basalt run did not end in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_log(cluster: &Cluster, out: &str, needle: &str) {
    let log = cluster.dir.path().join(out).join("output.yaml");
    wait_for(&format!("{needle:?} in the job log"), LONG, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
            .then_some(())
    });
}

/// A second job on the same board completes: its console could be opened.
fn next_job_completes(cluster: &Cluster, dict: &Path) {
    let job = cluster.job("next", &["lava-test-case next --result pass"]);
    let output = Basalt::new(["run", "--quiet", "--device"])
        .arg(dict)
        .arg("--output-dir")
        .arg(cluster.dir.path().join("next-out"))
        .arg("--local-file-dir")
        .arg(cluster.dir.path())
        .arg(&job)
        .timeout(Duration::from_secs(120))
        .run();
    assert!(
        output.status.success(),
        "the next job on the board: {output}"
    );
}

fn assert_nothing_left(tag: &str) {
    let left = find(tag);
    let names: Vec<String> = left
        .iter()
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .collect();
    assert!(
        left.is_empty(),
        "processes of the job remain: {left:?} {names:?}"
    );
}

#[test]
fn a_normal_end_ends_what_the_job_left_running() {
    let cluster = Cluster::new();
    let power = board(&cluster).join("power");
    // A reset script that leaves a helper behind in its own session, as some PDU and
    // USB-relay scripts do.
    let dict = dictionary(
        &cluster,
        &format!(
            "{{% set hard_reset_command = 'echo on > {p}; setsid sleep 300 > /dev/null 2>&1 &' %}}\n",
            p = power.display()
        ),
    );
    let job = cluster.job("normal", &["lava-test-case one --result pass"]);
    let tag = basalt::job_processes::new_tag();
    let mut child = spawn_run(&cluster, &dict, &job, "out", &tag);
    let status = wait_exit(&mut child, LONG);
    assert!(status.success(), "{status}");
    assert_nothing_left(&tag);
    let log = std::fs::read_to_string(cluster.dir.path().join("out/output.yaml")).unwrap();
    assert!(
        log.contains("process(es) the job left running") && log.contains("(sleep)"),
        "the log says what was ended:\n{log}"
    );
    next_job_completes(&cluster, &dict);
}

#[test]
fn a_forced_exit_leaves_nothing_of_the_job() {
    let cluster = Cluster::new();
    // The clean-up hangs in the power-off; a second SIGTERM forces the job out.
    let dict = dictionary(&cluster, "{% set power_off_command = 'sleep 60' %}\n");
    let job = cluster.job(
        "forced",
        &["lava-test-case before --result pass", "sleep 120"],
    );
    let tag = basalt::job_processes::new_tag();
    let mut child = spawn_run(&cluster, &dict, &job, "out", &tag);
    wait_log(&cluster, "out", "\"case\": \"before\"");
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    wait_log(&cluster, "out", "(power_off): sleep 60");
    assert!(child.try_wait().unwrap().is_none(), "the power-off hangs");
    kill(pid, Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert_nothing_left(&tag);
    // The next job, with a power-off that works.
    next_job_completes(&cluster, &cluster.board_dictionary());
}

/// The process tag the slave gave job `id`, from its record.
fn slave_tag(cluster: &Cluster, id: u64) -> String {
    let record = ["jobs", "finished"]
        .iter()
        .find_map(|dir| {
            std::fs::read(cluster.state_dir().join(format!("{dir}/{id}/record.json"))).ok()
        })
        .expect("the slave's record of the job");
    let record: Value = serde_json::from_slice(&record).unwrap();
    record["tag"]
        .as_str()
        .expect("a tag in the record")
        .to_owned()
}

fn submit_next_and_complete(cluster: &Cluster) {
    let next = cluster.submit(&cluster.job("next", &["lava-test-case next --result pass"]));
    let record = cluster.wait_state(next, "finished", LONG);
    assert_eq!(
        record["health"], "complete",
        "the next job on the board: {record}"
    );
}

#[test]
fn kill_9_of_the_job_process_leaves_nothing_of_the_job() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    wait_mid_test(&cluster, id);
    let tag = slave_tag(&cluster, id);
    assert!(cluster.console_held());
    let pid = cluster.job_pid(id).expect("the job's pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_ne!(record["health"], "complete", "{record}");
    assert_nothing_left(&tag);
    assert!(!cluster.console_held(), "the console connection was ended");
    let slave_log = std::fs::read_to_string(cluster.dir.path().join("slave-2.log"))
        .expect("the slave's log (the master is start 1, the slave start 2)");
    assert!(
        slave_log.contains(&format!("job {id}: ended")),
        "the slave logs what it ended:\n{slave_log}"
    );
    submit_next_and_complete(&cluster);
}

#[test]
fn a_cancel_that_escalates_to_sigkill_leaves_nothing_of_the_job() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let hang = board(&cluster).join("hang");
    let power = board(&cluster).join("power");
    // Only the canceled job's power-off hangs (the flag file is removed as it is read).
    let dict = dictionary(
        &cluster,
        &format!(
            "{{% set power_off_command = 'if [ -e {h} ]; then rm {h}; sleep 120; fi; echo off > {p}' %}}\n",
            h = hang.display(),
            p = power.display()
        ),
    );
    cluster.register_board_with_dictionary(&dict);
    let _slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    wait_mid_test(&cluster, id);
    let tag = slave_tag(&cluster, id);
    std::fs::write(&hang, "").unwrap();
    cluster.cli(&["jobs", "cancel", &id.to_string()]).success();
    // The slave's cancel grace is 5 s; then it kills the job's process group, which holds
    // neither the console (its own session) nor the power command (its own group).
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "canceled", "{record}");
    assert!(!hang.exists(), "the hanging power-off ran");
    assert_nothing_left(&tag);
    submit_next_and_complete(&cluster);
}
