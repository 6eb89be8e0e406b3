//! The store against a real SQLite file: migrations, the job state machine, log commits.

use super::*;

use super::testing::{lab, new_job, store};

#[test]
fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("basalt.db");
    {
        let store = Store::open(&path).unwrap();
        lab(&store);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::CURRENT);
    assert_eq!(store.devices().unwrap().len(), 1);
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("basalt.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = Store::open(&path).err().unwrap().to_string();
    assert!(error.contains("schema version 99"), "{error}");
}

#[test]
fn names_are_unique_and_references_checked() {
    let (_dir, store) = store();
    lab(&store);
    assert!(matches!(
        store.add_worker("w1", "", 0),
        Err(StoreError::Exists { kind: "worker", .. })
    ));
    assert!(matches!(
        store.add_device("x", "nope", "w1", "", &[], ""),
        Err(StoreError::NotFound {
            kind: "device type",
            ..
        })
    ));
    assert!(matches!(
        store.add_device("x", "qemu", "nobody", "", &[], ""),
        Err(StoreError::NotFound { kind: "worker", .. })
    ));
}

#[test]
fn a_job_goes_from_queue_to_device_to_finished_and_frees_it() {
    let (_dir, store) = store();
    lab(&store);
    store.worker_seen("w1", Some("basalt 0.1"), true).unwrap();
    let id = store.submit(&new_job()).unwrap();
    let snapshot = store.snapshot(1).unwrap();
    let assignments = crate::scheduler::schedule(&snapshot);
    assert_eq!(assignments.len(), 1);
    assert!(store.assign(id, "qemu-01").unwrap());
    assert!(!store.assign(id, "qemu-01").unwrap(), "assigned twice");
    assert_eq!(store.jobs_to_start().unwrap().len(), 1);
    assert!(store.mark_running(id).unwrap());
    assert!(
        !store.mark_running(id).unwrap(),
        "a repeated START_OK is a no-op"
    );
    assert_eq!(
        store.device("qemu-01").unwrap().unwrap().state,
        DeviceState::Running
    );
    assert!(store.finish(id, JobHealth::Complete, "").unwrap());
    assert!(!store.finish(id, JobHealth::Incomplete, "dup").unwrap());
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(
        (job.state, job.health),
        (JobState::Finished, JobHealth::Complete)
    );
    let device = store.device("qemu-01").unwrap().unwrap();
    assert_eq!(
        (device.state, device.current_job),
        (DeviceState::Idle, None)
    );
    let history = store.history("job", &id.to_string()).unwrap();
    let states: Vec<_> = history
        .iter()
        .filter(|h| h.field == "state")
        .map(|h| h.new.as_str())
        .collect();
    assert_eq!(states, ["submitted", "scheduled", "running", "finished"]);
}

#[test]
fn offline_workers_get_nothing_and_cancel_depends_on_state() {
    let (_dir, store) = store();
    lab(&store);
    let id = store.submit(&new_job()).unwrap();
    assert!(crate::scheduler::schedule(&store.snapshot(1).unwrap()).is_empty());
    assert_eq!(store.request_cancel(id).unwrap(), JobState::Finished);
    assert_eq!(store.job(id).unwrap().unwrap().health, JobHealth::Canceled);

    store.worker_seen("w1", None, true).unwrap();
    let id = store.submit(&new_job()).unwrap();
    assert!(store.assign(id, "qemu-01").unwrap());
    assert_eq!(store.request_cancel(id).unwrap(), JobState::Canceling);
    assert_eq!(store.jobs_to_cancel().unwrap().len(), 1);
    store.set_worker_offline("w1", "missed pings").unwrap();
    assert!(store.jobs_to_cancel().unwrap().is_empty());
}

#[test]
fn log_commits_carry_results_and_the_job_result() {
    let (_dir, store) = store();
    lab(&store);
    let id = store.submit(&new_job()).unwrap();
    let batch = JobLogBatch {
        bytes: 120,
        lines: 2,
        results: vec![NewResult {
            suite: "0_smoke".into(),
            name: "uname".into(),
            result: "pass".into(),
            measurement: Some("1.5".into()),
            units: Some("s".into()),
            log_line: 1,
            data: serde_json::json!({"case": "uname"}),
        }],
        job_result: Some(("pass".into(), None, None)),
    };
    store.commit_log(id, &batch).unwrap();
    let job = store.job(id).unwrap().unwrap();
    assert_eq!((job.log_bytes, job.log_lines), (120, 2));
    assert_eq!(job.job_result.as_deref(), Some("pass"));
    let results = store.results(id).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].measurement.as_deref(), Some("1.5"));
}

fn health_check_job(device: &str) -> NewJob {
    NewJob {
        requested_device: Some(device.into()),
        priority: 100,
        submitter: "lava-health".into(),
        health_check: true,
        ..new_job()
    }
}

/// Runs a health check on qemu-01 to its end with `health`; returns the device's health.
fn check_ends(store: &Store, health: JobHealth) -> DeviceHealth {
    let id = store.submit(&health_check_job("qemu-01")).unwrap();
    assert_eq!(
        store.active_health_checks().unwrap(),
        vec!["qemu-01".to_owned()]
    );
    assert!(store.assign(id, "qemu-01").unwrap());
    assert!(store.mark_running(id).unwrap());
    assert!(store.finish(id, health, "").unwrap());
    assert!(store.active_health_checks().unwrap().is_empty());
    store.device("qemu-01").unwrap().unwrap().health
}

#[test]
fn a_health_check_sets_its_devices_health() {
    let (_dir, store) = store();
    lab(&store);
    assert_eq!(check_ends(&store, JobHealth::Complete), DeviceHealth::Good);
    assert_eq!(check_ends(&store, JobHealth::Incomplete), DeviceHealth::Bad);
    assert_eq!(
        check_ends(&store, JobHealth::Canceled),
        DeviceHealth::Unknown
    );
    store
        .set_device_health("qemu-01", DeviceHealth::Looping, "soak")
        .unwrap();
    assert_eq!(
        check_ends(&store, JobHealth::Complete),
        DeviceHealth::Looping
    );
    store
        .set_device_health("qemu-01", DeviceHealth::Maintenance, "new cable")
        .unwrap();
    assert_eq!(
        check_ends(&store, JobHealth::Incomplete),
        DeviceHealth::Maintenance,
        "an admin's maintenance outlives a health check that was already running"
    );
    let reasons: Vec<String> = store
        .history("device", "qemu-01")
        .unwrap()
        .into_iter()
        .map(|h| h.reason)
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("health check job 2: incomplete")),
        "{reasons:?}"
    );
}

#[test]
fn an_ordinary_job_leaves_the_health_alone_and_power_is_recorded() {
    let (_dir, store) = store();
    lab(&store);
    let id = store.submit(&new_job()).unwrap();
    assert!(store.assign(id, "qemu-01").unwrap());
    assert!(store.mark_running(id).unwrap());
    assert!(store.finish(id, JobHealth::Incomplete, "boom").unwrap());
    let device = store.device("qemu-01").unwrap().unwrap();
    assert_eq!(device.health, DeviceHealth::Unknown);
    assert_eq!(
        (device.power_state.as_str(), device.power_checked),
        ("unknown", None)
    );
    store.set_power_state("qemu-01", "off").unwrap();
    let device = store.device("qemu-01").unwrap().unwrap();
    assert_eq!(device.power_state, "off");
    assert!(device.power_checked.is_some());
    assert!(store.set_power_state("nope", "on").is_err());
}

#[test]
fn a_periodic_health_check_falls_due_by_hours_or_by_jobs() {
    let (_dir, store) = store();
    lab(&store);
    let mut schedule = store.device_type("qemu").unwrap().unwrap();
    assert_eq!(
        (schedule.health_frequency, schedule.health_denominator),
        (24, HealthDenominator::Hours),
        "LAVA's default"
    );
    let hour = 3_600_000;
    assert!(
        store
            .health_check_due("qemu-01", &schedule, now_ms())
            .unwrap(),
        "never checked"
    );
    check_ends(&store, JobHealth::Complete);
    let checked = now_ms();
    assert!(!store
        .health_check_due("qemu-01", &schedule, checked + hour)
        .unwrap());
    assert!(store
        .health_check_due("qemu-01", &schedule, checked + 25 * hour)
        .unwrap());

    store
        .update_device_type("qemu", None, Some(2), Some(HealthDenominator::Jobs), None)
        .unwrap();
    schedule = store.device_type("qemu").unwrap().unwrap();
    let run_one = || {
        let id = store.submit(&new_job()).unwrap();
        assert!(store.assign(id, "qemu-01").unwrap());
        assert!(store.mark_running(id).unwrap());
        assert!(store.finish(id, JobHealth::Complete, "").unwrap());
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    run_one();
    assert!(!store
        .health_check_due("qemu-01", &schedule, now_ms())
        .unwrap());
    run_one();
    assert!(store
        .health_check_due("qemu-01", &schedule, now_ms())
        .unwrap());
    // An admin trusting the device again restarts the count.
    std::thread::sleep(std::time::Duration::from_millis(5));
    store
        .set_device_health("qemu-01", DeviceHealth::Maintenance, "")
        .unwrap();
    store
        .set_device_health("qemu-01", DeviceHealth::Good, "")
        .unwrap();
    assert!(!store
        .health_check_due("qemu-01", &schedule, now_ms())
        .unwrap());
    assert!(store
        .update_device_type("nope", Some("x"), None, None, None)
        .is_err());
}

#[test]
fn taking_a_device_out_of_service_cancels_its_queued_health_check() {
    let (_dir, store) = store();
    lab(&store);
    let id = store.submit(&health_check_job("qemu-01")).unwrap();
    store
        .set_device_health("qemu-01", DeviceHealth::Maintenance, "new cable")
        .unwrap();
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(
        (job.state, job.health),
        (JobState::Finished, JobHealth::Canceled)
    );
    assert!(store.active_health_checks().unwrap().is_empty());
    // An ordinary queued job is left alone.
    let other = store.submit(&new_job()).unwrap();
    store
        .set_device_health("qemu-01", DeviceHealth::Retired, "gone")
        .unwrap();
    assert_eq!(
        store.job(other).unwrap().unwrap().state,
        JobState::Submitted
    );
}

#[test]
fn damage_only_a_full_check_finds_is_found_at_start_up() {
    let (dir, store) = store();
    lab(&store);
    for _ in 0..200 {
        store.submit(&new_job()).unwrap();
    }
    assert!(store.check_integrity().is_ok());
    drop(store);
    let path = dir.path().join("basalt.db");
    let mut bytes = std::fs::read(&path).unwrap();
    // The last page holds job rows: a bad sector over its header is found only by
    // reading that page.
    let last = bytes.len() - 4096;
    for byte in &mut bytes[last..last + 12] {
        *byte = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let checked = Store::open(&path).and_then(|store| store.check_integrity());
    let error = checked.expect_err("the damage is found");
    assert!(error.is_corrupt(), "{error}");
    assert!(error.to_string().contains("restore basalt.db"), "{error}");
}

#[test]
fn adding_a_worker_its_slave_registered_keeps_it_and_a_second_add_is_refused() {
    let (_dir, store) = store();
    store.worker_seen("w9", Some("basalt 0.1"), true).unwrap();
    store.add_worker("w9", "rack 3", 2).unwrap();
    let worker = store.worker("w9").unwrap().unwrap();
    assert_eq!(
        (worker.description.as_str(), worker.job_limit),
        ("rack 3", 2)
    );
    // The admin's now: not forgotten as a stranger's name would be.
    store.worker_seen("w8", None, true).unwrap();
    store.mark_all_workers_offline().unwrap();
    assert_eq!(store.forget_unused_workers(i64::MAX).unwrap(), ["w8"]);
    assert!(matches!(
        store.add_worker("w9", "", 0),
        Err(StoreError::Exists { .. })
    ));
}

#[test]
fn notifications_are_queued_once_per_change_and_keep_their_attempts() {
    let (_dir, store) = store();
    lab(&store);
    let id = store.submit(&new_job()).unwrap();
    assert_eq!(store.cursor("notifications").unwrap(), None);
    let changes = store.changes_after(0, 100).unwrap();
    let submitted = changes.last().unwrap();
    assert_eq!(
        (
            submitted.kind.as_str(),
            submitted.object.clone(),
            submitted.new.as_str()
        ),
        ("job", id.to_string(), "submitted")
    );
    let new = NewNotification {
        job_id: id,
        trigger: submitted.id,
        position: 0,
        kind: "callback".into(),
        target: "http://127.0.0.1:9/x".into(),
        spec: serde_json::json!({"url": "http://127.0.0.1:9/x"}),
    };
    // The same change queued twice (the master died before the cursor moved): one row.
    store
        .queue_notifications("notifications", submitted.id, std::slice::from_ref(&new))
        .unwrap();
    store
        .queue_notifications("notifications", submitted.id, &[new])
        .unwrap();
    assert_eq!(store.cursor("notifications").unwrap(), Some(submitted.id));
    let due = store.due_notifications(now_ms(), 10).unwrap();
    assert_eq!(due.len(), 1);
    let retry_at = now_ms() + 60_000;
    let failed = Attempt {
        status: Some(503),
        error: "503 Service Unavailable".into(),
        retry_at: Some(retry_at),
        delivered: false,
    };
    store.record_attempt(due[0].id, &failed).unwrap();
    assert!(store.due_notifications(now_ms(), 10).unwrap().is_empty());
    assert_eq!(store.next_notification_due().unwrap(), Some(retry_at));
    let delivered = Attempt {
        status: Some(200),
        delivered: true,
        ..Attempt::default()
    };
    store.record_attempt(due[0].id, &delivered).unwrap();
    let record = &store.notifications_of(id).unwrap()[0];
    assert_eq!(
        (record.state, record.attempts, record.last_status),
        (NotificationState::Sent, 2, Some(200))
    );
    assert_eq!(store.next_notification_due().unwrap(), None);
}

#[test]
fn remote_tokens_are_per_user_unique_by_name_and_go_with_their_user() {
    let (_dir, store) = store();
    store.add_user("alice", false).unwrap();
    store.add_remote_token("alice", "ci", "s3cret").unwrap();
    assert!(matches!(
        store.add_remote_token("alice", "ci", "again"),
        Err(StoreError::Exists { .. })
    ));
    assert!(matches!(
        store.add_remote_token("nobody", "ci", "x"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.remote_tokens("alice").unwrap()[0].token, "s3cret");
    store.delete_user("alice").unwrap();
    assert!(store.remote_tokens("alice").unwrap().is_empty());
}
