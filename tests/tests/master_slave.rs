//! Master and slave across processes on 127.0.0.1 (issue 5's acceptance): jobs run to the
//! end and their logs arrive complete and once, whichever daemon is killed when.

use std::time::Duration;

mod common;

use basalt_e2e::cluster::{wait_for, Cluster};
use common::{
    assert_log_delivered_once, assert_slow_job_results, results, slow_job, wait_mid_test, LONG,
};

#[test]
fn a_submitted_job_runs_on_the_slave_and_its_log_and_results_reach_the_master() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let job = cluster.job(
        "smoke",
        &[
            "lava-test-case kernel-name --shell uname -s",
            "lava-test-case boot-time --result pass --measurement 1.5 --units seconds",
        ],
    );
    let out = cluster
        .cli(&["jobs", "submit", &job.display().to_string(), "--follow"])
        .success();
    assert!(out.stdout.contains("kernel-name"), "{out}");
    assert!(out.stdout.contains("complete"), "{out}");
    let id = 1;
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_eq!(record["actual_device"], "sim-01");
    assert_log_delivered_once(&cluster, id);
    let results = results(&cluster, id);
    assert!(
        results.contains(&("boot-time".into(), "pass".into())),
        "{results:?}"
    );
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    assert_eq!(device["state"], "idle");
    let worker = cluster
        .cli(&["workers", "list", "--format", "json"])
        .success()
        .json();
    assert_eq!(worker[0]["state"], "online");
}

#[test]
fn killing_the_master_mid_job_loses_no_line_and_doubles_none() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    wait_mid_test(&cluster, id);
    master.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let _master = cluster.start_master();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
    assert_slow_job_results(&cluster, id);
}

#[test]
fn killing_the_slave_mid_job_leaves_the_job_running_and_the_new_slave_adopts_it() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    wait_mid_test(&cluster, id);
    let pid = cluster
        .job_pid(id)
        .expect("the slave recorded the job process");
    slave.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the job process died with the slave"
    );
    let _slave = cluster.start_slave();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
    assert_slow_job_results(&cluster, id);
}

#[test]
fn a_job_that_ends_while_the_master_is_down_is_reported_when_it_returns() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    master.kill();
    wait_for("the job process to end", LONG, || {
        cluster.job_process_done(id).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let _master = cluster.start_master();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
    assert_slow_job_results(&cluster, id);
}

#[test]
fn a_canceled_job_stops_and_frees_its_device() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    wait_mid_test(&cluster, id);
    cluster.cli(&["jobs", "cancel", &id.to_string()]).success();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "canceled", "{record}");
    assert!(
        !cluster.master_log(id).contains("tock 4"),
        "the job ran to its end"
    );
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    assert_eq!(device["state"], "idle", "{device}");
    // A queued job canceled before it started ends at once.
    let slave_down = cluster.cli(&["workers", "maintenance", "w1"]).success();
    drop(slave_down);
    let queued = cluster.submit(&slow_job(&cluster));
    cluster
        .cli(&["jobs", "cancel", &queued.to_string()])
        .success();
    let record = cluster.wait_state(queued, "finished", Duration::from_secs(10));
    assert_eq!(record["health"], "canceled");
}

#[test]
fn a_job_for_an_offline_worker_waits_and_runs_when_it_returns() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    wait_for("w1 online", LONG, || {
        let workers = cluster
            .cli(&["workers", "list", "--format", "json"])
            .success()
            .json();
        (workers[0]["state"] == "online").then_some(())
    });
    assert!(slave.stop().success(), "the slave stops cleanly on SIGTERM");
    wait_for("w1 offline", LONG, || {
        let workers = cluster
            .cli(&["workers", "list", "--format", "json"])
            .success()
            .json();
        (workers[0]["state"] == "offline").then_some(())
    });
    let id = cluster.submit(&cluster.job("waiting", &["lava-test-case ok --shell true"]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cluster.try_job(id).unwrap()["state"], "submitted");
    let _slave = cluster.start_slave();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
}

#[test]
fn garbage_on_both_master_sockets_leaves_both_daemons_working() {
    use std::io::Write;
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let (control, logs) = cluster.ports();
    // Raw bytes that are not ZMTP at all.
    for port in [control, logs] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = stream.write_all(&[0xff; 64]);
        let _ = stream.write_all(b"GET / HTTP/1.1\r\n\r\n");
    }
    // Well-formed ZMTP carrying malformed messages.
    let rogue =
        basalt::transport::SlaveSocket::connect(&format!("tcp://127.0.0.1:{control}"), "rogue")
            .unwrap();
    let frames: Vec<Vec<Vec<u8>>> = vec![
        vec![],
        vec![b"\xff\xfe".to_vec()],
        vec![b"START_OK".to_vec()],
        vec![b"START_OK".to_vec(), b"-1".to_vec()],
        vec![b"END".to_vec(), b"1".to_vec()],
        vec![
            b"LOGS".to_vec(),
            b"1".to_vec(),
            b"x".to_vec(),
            b"data".to_vec(),
        ],
        vec![
            b"LOGS".to_vec(),
            b"999".to_vec(),
            b"0".to_vec(),
            b"- {}\n".to_vec(),
        ],
        vec![b"HELLO".to_vec(), b"99".to_vec()],
        vec![b"START".to_vec(), b"1".to_vec()],
        vec![b"REBOOT".to_vec()],
    ];
    for message in frames {
        rogue.send_frames(message);
    }
    let pusher =
        basalt::transport::LogPusher::connect(&format!("tcp://127.0.0.1:{logs}"), None).unwrap();
    pusher.send_frames(vec![b"1".to_vec()]);
    pusher.send_frames(vec![b"x".to_vec(), b"- {}".to_vec()]);
    pusher.send_frames(vec![b"1".to_vec(), b"\xff".to_vec()]);
    pusher.push(12345, b"{\"lvl\": \"info\"}");
    std::thread::sleep(Duration::from_millis(500));
    let id = cluster.submit(&cluster.job("after-garbage", &["lava-test-case ok --shell true"]));
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
}

#[test]
fn the_workers_dut_environment_reaches_the_test_shell() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    // The worker's env.dut.yaml, set through the API: sent with START, applied by
    // `basalt run --env-dut`.
    let env = cluster.dir.write(
        "env.dut.yaml",
        "overrides:\n  LAB_PROXY: http://proxy.lab:3128\n  LAB_NOTE: \"it's here\"\n",
    );
    cluster
        .cli(&[
            "workers",
            "env-dut",
            "set",
            "w1",
            &env.display().to_string(),
        ])
        .success();
    let shown = cluster.cli(&["workers", "env-dut", "get", "w1"]).success();
    assert!(shown.stdout.contains("LAB_PROXY"), "{shown}");
    let bad = cluster
        .dir
        .write("bad.yaml", "overrides: [not, a, mapping]\n");
    let refused = cluster
        .cli(&[
            "workers",
            "env-dut",
            "set",
            "w1",
            &bad.display().to_string(),
        ])
        .failure();
    assert!(
        refused.stderr.contains("overrides must be a mapping"),
        "{refused}"
    );
    let _slave = cluster.start_slave();
    let job = cluster.job(
        "env",
        &[
            "lava-test-case proxy --shell test \"$LAB_PROXY\" = http://proxy.lab:3128",
            // --shell evaluates its words joined, as LAVA's does: a value with a quote in
            // it is compared outside lava-test-case.
            "if [ \"$LAB_NOTE\" = \"it's here\" ]; then lava-test-case quoted --result pass; \
             else lava-test-case quoted --result fail; fi",
        ],
    );
    let id = cluster.submit(&job);
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    let got = results(&cluster, id);
    for case in ["proxy", "quoted"] {
        assert!(
            got.contains(&(case.to_owned(), "pass".to_owned())),
            "{case}: {got:?}"
        );
    }
}

#[test]
fn a_job_asking_for_a_tag_waits_until_a_device_carries_it() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let job = cluster.job("tagged", &["true"]);
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "visibility: public\n",
        "visibility: public\ntags: [usb-hub]\n",
    );
    let job = cluster.dir.write("tagged.yaml", text);
    let id = cluster.submit(&job);
    std::thread::sleep(Duration::from_secs(3));
    let record = cluster.try_job(id).expect("the master answers");
    assert_eq!(
        record["state"], "submitted",
        "no device has the tag yet: {record}"
    );
    let out = cluster
        .cli(&["devices", "tags", "add", "sim-01", "usb-hub"])
        .success();
    assert!(out.stdout.contains("usb-hub"), "{out}");
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_eq!(record["actual_device"], "sim-01");
}

/// An admin who starts the daemons with relative directories (`--state-dir slave`) gets
/// working jobs: the paths are resolved at start-up, not in each job's own directory.
#[test]
fn relative_data_and_state_directories_work() {
    let mut cluster = Cluster::with_relative_paths();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    let id = cluster.submit(&cluster.job("relative", &["lava-test-case one --result pass"]));
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
}

/// START carries the device configuration as LAVA's master renders it for the job: with the
/// device's own `hostname` and `devicetype`, exactly as `basalt devices render` shows it.
#[test]
fn start_carries_the_device_rendered_with_its_name_and_type() {
    use basalt::transport::{ControlMessage, SlaveSocket};
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let (control, _) = cluster.ports();
    let slave = SlaveSocket::connect(&format!("tcp://127.0.0.1:{control}"), "w1").unwrap();
    slave.send(&ControlMessage::Hello {
        protocol: 3,
        version: Some("test".into()),
        features: vec![],
    });
    let id = cluster.submit(&cluster.job("named", &["true"]));
    let device = wait_for("START", LONG, || {
        slave
            .recv(Duration::from_millis(100))
            .into_iter()
            .find_map(|frames| match ControlMessage::decode(&frames) {
                Ok(ControlMessage::Start { job, files }) if job == id => Some(files.device),
                _ => None,
            })
    });
    let config = basalt::yaml11::from_str(&device).unwrap();
    assert_eq!(config["hostname"], "sim-01", "{device}");
    assert_eq!(config["devicetype"], "beaglebone-black", "{device}");
    assert_eq!(
        basalt::yaml11::from_str(&cluster.rendered_board()).unwrap(),
        config,
        "the CLI's rendering and START's differ"
    );
}

/// While the master is away the slave's memory stays flat however much log waits, and it
/// still watches its jobs: a job process that dies then is noticed and what it left (its
/// console) is ended at once; when the master returns the job's whole log arrives once.
#[test]
fn while_the_master_is_away_the_slave_stays_small_and_still_watches_its_jobs() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    let job = cluster.job(
        "chatty",
        &[
            "lava-test-case before --result pass",
            "seq 1 20000 | sed 's/^/a chatty line of console output number /'",
            "sleep 120",
        ],
    );
    let id = cluster.submit(&job);
    cluster.wait_state(id, "running", LONG);
    master.kill();
    wait_for("the chatty output in the job's log", LONG, || {
        cluster
            .slave_log(id)
            .contains("output number 20000")
            .then_some(())
    });
    let mut samples = vec![slave.rss()];
    let sample_for = |samples: &mut Vec<u64>, seconds: u64| {
        let until = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(250));
            samples.push(slave.rss());
        }
    };
    sample_for(&mut samples, 8);
    assert!(cluster.console_held());
    let pid = cluster.job_pid(id).expect("the job's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(
        "the slave to end the dead job's console",
        Duration::from_secs(15),
        || (!cluster.console_held()).then_some(()),
    );
    sample_for(&mut samples, 4);
    let (low, high) = (
        samples
            .iter()
            .copied()
            .filter(|&s| s > 0)
            .min()
            .unwrap_or(0),
        samples.iter().copied().max().unwrap_or(0),
    );
    assert!(
        high - low < 16 << 20,
        "the slave grew from {} to {} MiB while the master was away",
        low >> 20,
        high >> 20
    );
    let _master = cluster.start_master();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "incomplete", "{record}");
    assert_eq!(cluster.master_log(id), cluster.slave_log(id));
}

/// A slave that finds a job's record unreadable after a restart keeps the job (the record
/// rebuilt from the directory and the running process, the bad file kept aside), and the
/// job completes with its whole log.
#[test]
fn a_corrupt_job_record_is_rebuilt_and_its_job_completes() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    wait_mid_test(&cluster, id);
    slave.kill();
    let record = cluster.state_dir().join(format!("jobs/{id}/record.json"));
    std::fs::write(&record, b"{\"id\": 1, \"state\": \"runn").unwrap();
    let _slave = cluster.start_slave();
    let finished = cluster.wait_state(id, "finished", LONG);
    assert_eq!(finished["health"], "complete", "{finished}");
    assert_log_delivered_once(&cluster, id);
    assert_slow_job_results(&cluster, id);
    let kept = ["jobs", "finished"].iter().any(|dir| {
        std::fs::read_dir(cluster.state_dir().join(format!("{dir}/{id}")))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("record.json.corrupt-")
            })
    });
    assert!(kept, "the unreadable record is kept for the admin");
}

/// A running job that nobody will ever report (its slave and job process are gone) is
/// ended by the master once it outlives its own job timeout by the grace, and its device
/// takes jobs again.
#[test]
fn a_job_outliving_its_timeout_unreported_is_ended_by_the_master() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master_with(&["--overdue-grace", "2"]);
    cluster.register_board();
    let slave = cluster.start_slave();
    let job = cluster.job(
        "stranded",
        &["lava-test-case before --result pass", "sleep 120"],
    );
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("job: {minutes: 4}", "job: {seconds: 15}");
    std::fs::write(&job, text).unwrap();
    let id = cluster.submit(&job);
    cluster.wait_state(id, "running", LONG);
    wait_for("the job's process", LONG, || cluster.job_pid(id));
    slave.kill();
    let pid = cluster.job_pid(id).unwrap();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let record = cluster.wait_state(id, "finished", Duration::from_secs(60));
    assert_eq!(record["health"], "incomplete", "{record}");
    let comment = record["failure_comment"].as_str().unwrap_or_default();
    assert!(
        comment.contains("outlived its timeout (15s)"),
        "the failure says why: {record}"
    );
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    assert_eq!(device["state"], "idle", "{device}");
}

/// A job whose log passes the master's limit is canceled and ends Incomplete saying so; the
/// master keeps what came before and the board takes the next job.
#[test]
fn a_job_whose_log_passes_the_limit_ends_incomplete_and_frees_its_board() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master_with(&["--job-log-limit", "1"]);
    cluster.register_board();
    let _slave = cluster.start_slave();
    let flood = cluster.job(
        "flood",
        &[
            "for i in $(seq 1 40000); do echo \"line $i of a test that floods its log\"; done",
            "sleep 30",
        ],
    );
    let id = cluster.submit(&flood);
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "incomplete", "{record}");
    let comment = record["failure_comment"].as_str().unwrap_or_default();
    assert!(
        comment.contains("limit of 1 MiB (job_log_limit_mib)"),
        "{record}"
    );
    let stored = cluster.master_log(id);
    assert!(stored.len() <= 1 << 20, "{} bytes stored", stored.len());
    assert!(stored.contains("line 1 of a test"), "the beginning is kept");
    let next = cluster.submit(&cluster.job("next", &["lava-test-case ok --shell true"]));
    let record = cluster.wait_state(next, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
}
