//! The service's rules against a real SQLite file and the repository's device types: who
//! may do what, tokens, templates, log ranges.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::store::{JobLogBatch, JobState};
use crate::template::SearchPath;

pub(crate) const JOB: &str = "job_name: smoke
device_type: qemu
timeouts:
  job: {minutes: 4}
visibility: public
actions:
- deploy:
    to: tmpfs
    images:
      kernel: {url: 'file:///k'}
- boot:
    method: qemu
    media: tmpfs
    prompts: ['# ']
";

pub(crate) const DICTIONARY: &str = "{% extends 'qemu.jinja2' %}\n{% set arch = 'amd64' %}\n";

/// A service over a fresh data directory; returns the admin caller and the wake-up count.
pub(crate) fn service(dir: &Path) -> (Service, Caller, Arc<AtomicUsize>) {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("jobs")).unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-types");
    let engine = TemplateEngine::new(SearchPath::new(vec![data.join("device-types"), builtin]));
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let service = Service::new(
        Store::open(&data.join("basalt.db")).unwrap(),
        move || {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        engine,
        data.clone(),
        data.join("jobs"),
    );
    service.ensure_admin("admin-secret").unwrap();
    let admin = service.authenticate("admin-secret").unwrap();
    (service, admin, wakes)
}

/// The admin adds a qemu type, a worker and a device with a dictionary.
pub(crate) fn lab(service: &Service, admin: &Caller) {
    service.add_device_type(admin, "qemu", "", true).unwrap();
    service.add_worker(admin, "w1", "", 0).unwrap();
    service
        .add_device(
            admin,
            &NewDevice {
                hostname: "qemu-01".into(),
                device_type: "qemu".into(),
                worker: "w1".into(),
                dictionary: DICTIONARY.into(),
                ..NewDevice::default()
            },
        )
        .unwrap();
}

fn user(service: &Service, admin: &Caller, name: &str) -> Caller {
    service.add_user(admin, name, false).unwrap();
    let token = service.add_token(admin, name, "test").unwrap();
    service.authenticate(&token).unwrap()
}

#[test]
fn the_admin_token_is_registered_once_and_stored_only_as_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    service.ensure_admin("admin-secret").unwrap();
    assert_eq!(admin.name(), Some(ADMIN));
    assert_eq!(service.tokens(&admin, ADMIN).unwrap().len(), 1);
    drop(service);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!bytes.windows(12).any(|w| w == b"admin-secret"));
}

#[test]
fn wrong_tokens_and_wrong_usernames_are_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _, _) = service(dir.path());
    for result in [
        service.authenticate("guess"),
        service.authenticate_as("someone", "admin-secret"),
    ] {
        assert_eq!(result.unwrap_err().kind, ErrorKind::Unauthorized);
    }
    assert!(service.authenticate_as(ADMIN, "admin-secret").is_ok());
}

#[test]
fn anonymous_callers_read_but_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let nobody = Caller::Anonymous;
    assert_eq!(service.devices().unwrap().len(), 1);
    let refusals = [
        service.add_worker(&nobody, "w2", "", 0).map(|_| ()),
        service
            .add_device_type(&nobody, "qemu-aarch64", "", true)
            .map(|_| ()),
        service.set_dictionary(&nobody, "qemu-01", "").map(|_| ()),
        service
            .set_device_health(&nobody, "qemu-01", "maintenance", "")
            .map(|_| ()),
        service.submit(&nobody, JOB, None).map(|_| ()),
        service.set_template(&nobody, "qemu", "x").map(|_| ()),
        service.add_user(&nobody, "eve", true).map(|_| ()),
    ];
    for refusal in refusals {
        assert_eq!(refusal.unwrap_err().kind, ErrorKind::Unauthorized);
    }
    assert_eq!(service.workers().unwrap().len(), 1);
    assert_eq!(service.dictionary(&admin, "qemu-01").unwrap(), DICTIONARY);
    // What holds credentials is not for anonymous eyes: dictionaries, worker files.
    assert_eq!(
        service.dictionary(&nobody, "qemu-01").unwrap_err().kind,
        ErrorKind::Unauthorized
    );
    assert_eq!(
        service
            .worker_file(&nobody, "w1", WorkerFile::Env)
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );
    let (shown, _) = service.device_for(&nobody, "qemu-01").unwrap();
    assert!(shown.dictionary.is_empty());
    let (whole, _) = service.device_for(&admin, "qemu-01").unwrap();
    assert_eq!(whole.dictionary, DICTIONARY);
}

#[test]
fn users_submit_and_cancel_their_own_jobs_but_do_not_change_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, wakes) = service(dir.path());
    lab(&service, &admin);
    let alice = user(&service, &admin, "alice");
    let bob = user(&service, &admin, "bob");
    assert_eq!(
        service.add_worker(&alice, "w2", "", 0).unwrap_err().kind,
        ErrorKind::Forbidden
    );
    assert_eq!(
        service.add_token(&alice, "bob", "").unwrap_err().kind,
        ErrorKind::Forbidden
    );
    let refused = service.dictionary(&alice, "qemu-01").unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    assert!(refused
        .message
        .contains("only a superuser may read a device dictionary"));
    let before = wakes.load(Ordering::SeqCst);
    let id = service.submit(&alice, JOB, None).unwrap();
    assert!(
        wakes.load(Ordering::SeqCst) > before,
        "submitting wakes the scheduler"
    );
    assert_eq!(service.job(id).unwrap().submitter, "alice");
    assert_eq!(
        service.cancel(&bob, id).unwrap_err().kind,
        ErrorKind::Forbidden
    );
    assert_eq!(service.cancel(&alice, id).unwrap(), JobState::Finished);
    let again = service.resubmit(&bob, id).unwrap();
    assert_eq!(service.job(again).unwrap().submitter, "bob");
    assert_eq!(service.cancel(&admin, again).unwrap(), JobState::Finished);
}

#[test]
fn unknown_users_bad_names_and_taken_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    assert_eq!(
        service.add_token(&admin, "ghost", "").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        service.add_user(&admin, "../etc", false).unwrap_err().kind,
        ErrorKind::BadRequest
    );
    assert_eq!(
        service.add_user(&admin, ADMIN, false).unwrap_err().kind,
        ErrorKind::Conflict
    );
}

#[test]
fn templates_set_through_the_api_override_and_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    let builtin = service.template("qemu").unwrap();
    let mine = format!("{{# local #}}\n{builtin}");
    service.set_template(&admin, "qemu", &mine).unwrap();
    assert_eq!(service.template("qemu").unwrap(), mine);
    let error = service
        .set_template(&admin, "qemu", "{% if %}")
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert!(error.message.contains("not valid"), "{}", error.message);
    assert_eq!(
        service.template("qemu").unwrap(),
        mine,
        "a bad upload changes nothing"
    );
    service.set_template(&admin, "qemu", "").unwrap();
    assert_eq!(service.template("qemu").unwrap(), builtin);
    assert_eq!(
        service.template("no-such-board").unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn a_device_without_a_dictionary_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    service.set_dictionary(&admin, "qemu-01", "").unwrap();
    let error = service.dictionary(&admin, "qemu-01").unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound);
    let error = service
        .set_dictionary(&admin, "qemu-01", "{% extends 'beaglebone-black.jinja2' %}")
        .unwrap_err();
    assert!(
        error.message.contains("make it extend 'qemu.jinja2'"),
        "{}",
        error.message
    );
}

#[test]
fn log_lines_are_counted_from_zero_and_end_at_what_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let id = service.submit(&admin, JOB, None).unwrap();
    let log_dir = dir.path().join("data/jobs").join(id.to_string());
    std::fs::create_dir_all(&log_dir).unwrap();
    let lines = "- a\n- b\n- c\n- d\n";
    // A fifth line was written but not committed (the master died while writing it).
    std::fs::write(log_dir.join("output.yaml"), format!("{lines}- e")).unwrap();
    service
        .store()
        .unwrap()
        .commit_log(
            id,
            &JobLogBatch {
                bytes: lines.len() as u64,
                lines: 4,
                results: vec![],
                job_result: None,
            },
        )
        .unwrap();
    let text = |start, end| service.log_lines(&admin, id, start, end).unwrap().text;
    assert_eq!(text(0, None), lines);
    assert_eq!(text(1, Some(3)), "- b\n- c\n");
    assert_eq!(text(3, None), "- d\n");
    assert_eq!(text(4, None), "");
    assert_eq!(text(9, Some(2)), "");
    assert!(!service.log_lines(&admin, id, 0, None).unwrap().finished);
    let chunk = service.log_bytes(&admin, id, 4).unwrap();
    assert_eq!(
        (chunk.start, chunk.end, chunk.text.as_str()),
        (4, 16, "- b\n- c\n- d\n")
    );
    assert_eq!(
        service.log_lines(&admin, id + 1, 0, None).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn health_checks_are_checked_when_set_and_queued_for_unknown_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let checks = crate::master::health::HealthChecks::new(&dir.path().join("data"));
    assert_eq!(
        service.health_check("qemu").unwrap_err().kind,
        ErrorKind::NotFound
    );
    let wrong_type = JOB.replace("device_type: qemu", "device_type: beaglebone-black");
    let error = service
        .set_health_check(&admin, "qemu", &wrong_type)
        .unwrap_err();
    assert!(
        error.message.contains("must say device_type: qemu"),
        "{}",
        error.message
    );
    assert_eq!(
        service
            .set_health_check(&admin, "qemu", "job_name: [")
            .unwrap_err()
            .kind,
        ErrorKind::BadRequest
    );
    assert_eq!(
        service
            .set_health_check(&Caller::Anonymous, "qemu", JOB)
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );
    service.set_health_check(&admin, "qemu", JOB).unwrap();
    assert!(service.has_health_check("qemu"));
    assert_eq!(service.health_check("qemu").unwrap(), JOB);

    // The unknown device gets its health check queued, once.
    let store = service.store().unwrap();
    checks.queue_missing(&store, true).unwrap();
    checks.queue_missing(&store, true).unwrap();
    let queued = store.jobs(None, 10).unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].health_check);
    assert_eq!(queued[0].requested_device.as_deref(), Some("qemu-01"));
    assert_eq!(queued[0].priority, 100);
    drop(store);

    // A definition that went bad on disk makes the device Bad rather than unchecked.
    service.cancel(&admin, queued[0].id).unwrap();
    std::fs::write(checks.path("qemu"), "job_name: [").unwrap();
    let store = service.store().unwrap();
    checks.queue_missing(&store, true).unwrap();
    let device = store.device("qemu-01").unwrap().unwrap();
    assert_eq!(device.health, crate::store::DeviceHealth::Bad);
    drop(store);

    service.set_health_check(&admin, "qemu", "").unwrap();
    assert!(!service.has_health_check("qemu"));
}

#[test]
fn a_types_health_schedule_is_changed_by_superusers_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let change = |frequency, denominator: &str| HealthSchedule {
        frequency,
        denominator: Some(denominator.to_owned()),
        disabled: None,
    };
    assert_eq!(
        service
            .update_device_type(&admin, "qemu", None, &change(Some(0), "hours"))
            .unwrap_err()
            .kind,
        ErrorKind::BadRequest
    );
    assert_eq!(
        service
            .update_device_type(&admin, "qemu", None, &change(Some(3), "fortnights"))
            .unwrap_err()
            .kind,
        ErrorKind::BadRequest
    );
    assert_eq!(
        service
            .update_device_type(&Caller::Anonymous, "qemu", None, &change(Some(3), "jobs"))
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );
    let summary = service
        .update_device_type(&admin, "qemu", Some("emulated"), &change(Some(3), "JOBS"))
        .unwrap();
    assert_eq!(summary.description, "emulated");
    assert_eq!(summary.health_frequency, 3);
    assert_eq!(summary.health_denominator.as_str(), "jobs");
    assert!(!summary.health_check);

    // With a health check and a Good device, the check is queued once it is due (never
    // checked: due at once), unless the type's checks are off.
    service.set_health_check(&admin, "qemu", JOB).unwrap();
    service
        .set_device_health(&admin, "qemu-01", "good", "trusted")
        .unwrap();
    service
        .update_device_type(
            &admin,
            "qemu",
            None,
            &HealthSchedule {
                disabled: Some(true),
                ..HealthSchedule::default()
            },
        )
        .unwrap();
    let checks = crate::master::health::HealthChecks::new(&dir.path().join("data"));
    let store = service.store().unwrap();
    checks.queue_missing(&store, true).unwrap();
    assert!(store.jobs(None, 10).unwrap().is_empty(), "checks are off");
    drop(store);
    service
        .update_device_type(
            &admin,
            "qemu",
            None,
            &HealthSchedule {
                frequency: Some(1),
                disabled: Some(false),
                ..HealthSchedule::default()
            },
        )
        .unwrap();
    let store = service.store().unwrap();
    checks.queue_missing(&store, true).unwrap();
    assert!(
        store.jobs(None, 10).unwrap().is_empty(),
        "every 1 job: not due before a job has run since the admin trusted it"
    );
    drop(store);
    // A job runs; the next pass queues the check, and only the check may take the device.
    let id = service.submit(&admin, JOB, None).unwrap();
    let store = service.store().unwrap();
    assert!(store.assign(id, "qemu-01").unwrap());
    assert!(store.mark_running(id).unwrap());
    assert!(store
        .finish(id, crate::store::JobHealth::Complete, "")
        .unwrap());
    checks.queue_missing(&store, false).unwrap();
    assert!(
        store.active_health_checks().unwrap().is_empty(),
        "due checks of Good devices wait for the periodic review"
    );
    let enabled = checks.queue_missing(&store, true).unwrap();
    assert_eq!(
        store.active_health_checks().unwrap(),
        vec!["qemu-01".to_owned()]
    );
    let mut snapshot = store.snapshot(1).unwrap();
    checks.mark(&store, &mut snapshot, &enabled).unwrap();
    assert!(snapshot.devices[0].needs_health_check);
}

#[test]
fn worker_files_fall_back_to_the_master_wide_ones_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let data = dir.path().join("data");
    assert_eq!(
        service.worker_file(&admin, "w1", WorkerFile::Env).unwrap(),
        ""
    );
    std::fs::write(data.join("env.yaml"), "overrides: {A: 1}\n").unwrap();
    assert_eq!(
        service.worker_file(&admin, "w1", WorkerFile::Env).unwrap(),
        "overrides: {A: 1}\n",
        "the master-wide env.yaml applies to a worker without its own"
    );
    service
        .set_worker_file(&admin, "w1", WorkerFile::Env, "overrides: {B: 2}\n")
        .unwrap();
    assert_eq!(
        service.worker_file(&admin, "w1", WorkerFile::Env).unwrap(),
        "overrides: {B: 2}\n"
    );
    assert!(data.join("dispatcher.d/w1/env.yaml").is_file());
    for (file, text, expected) in [
        (WorkerFile::Config, "dispatcher_ip: [", "not valid YAML"),
        (
            WorkerFile::EnvDut,
            "removes: {a: 1}",
            "removes must be a list",
        ),
    ] {
        let error = service
            .set_worker_file(&admin, "w1", file, text)
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadRequest);
        assert!(error.message.contains(expected), "{}", error.message);
    }
    assert_eq!(
        service
            .set_worker_file(&Caller::Anonymous, "w1", WorkerFile::Config, "a: 1")
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );
    assert_eq!(
        service
            .worker_file(&admin, "w9", WorkerFile::Config)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    service
        .set_worker_file(&admin, "w1", WorkerFile::Env, "")
        .unwrap();
    assert_eq!(
        service.worker_file(&admin, "w1", WorkerFile::Env).unwrap(),
        "overrides: {A: 1}\n"
    );
    assert_eq!(WorkerFile::parse("env-dut"), Some(WorkerFile::EnvDut));
    assert_eq!(WorkerFile::parse("nope"), None);
}

#[test]
fn a_big_finished_log_comes_in_whole_line_pieces_and_only_the_last_says_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let id = service.submit(&admin, JOB, None).unwrap();
    let log_dir = dir.path().join("data/jobs").join(id.to_string());
    std::fs::create_dir_all(&log_dir).unwrap();
    let line = format!("- {{\"msg\": \"{}\"}}\n", "x".repeat(90));
    let count = 60_000u64; // about 5.6 MiB, more than one piece
    std::fs::write(log_dir.join("output.yaml"), line.repeat(count as usize)).unwrap();
    service
        .store()
        .unwrap()
        .commit_log(
            id,
            &JobLogBatch {
                bytes: line.len() as u64 * count,
                lines: count,
                results: vec![],
                job_result: None,
            },
        )
        .unwrap();
    service.cancel(&admin, id).unwrap();
    let (mut seen, mut calls) = (0u64, 0);
    loop {
        let piece = service.log_lines(&admin, id, seen, None).unwrap();
        calls += 1;
        assert!(piece.text.is_empty() || piece.text.ends_with('\n'));
        seen += piece.text.lines().count() as u64;
        if piece.finished {
            break;
        }
        assert!(calls < 10, "no progress");
    }
    assert_eq!(seen, count, "every line once");
    assert!(calls >= 2, "a 5.6 MiB log came in one piece");
}

#[test]
fn metrics_count_devices_workers_jobs_and_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    service.submit(&admin, JOB, None).unwrap();
    let cancelled = service.submit(&admin, JOB, None).unwrap();
    service.cancel(&admin, cancelled).unwrap();
    let text = service.metrics().unwrap();
    for line in [
        "# TYPE basalt_devices gauge",
        "basalt_devices{device_type=\"qemu\",state=\"idle\",health=\"unknown\"} 1",
        "basalt_device_power{state=\"unknown\"} 1",
        "basalt_worker_up{worker=\"w1\",health=\"active\"} 0",
        "basalt_jobs{state=\"submitted\",health=\"unknown\",device_type=\"qemu\"} 1",
        "basalt_jobs{state=\"finished\",health=\"canceled\",device_type=\"qemu\"} 1",
        "basalt_queue_length{device_type=\"qemu\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.lines().all(|l| l.starts_with('#')
        || l.rsplit(' ')
            .next()
            .is_some_and(|v| v.parse::<u64>().is_ok())));
}

#[test]
fn secrets_are_masked_for_everyone_but_the_submitter_and_superusers() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let alice = user(&service, &admin, "alice");
    let bob = user(&service, &admin, "bob");
    let text = JOB.replace(
        "visibility: public\n",
        "visibility: public\nsecrets:\n  API_TOKEN: s3cr3t-value\n",
    );
    let id = service.submit(&alice, &text, None).unwrap();
    let job = service.job(id).unwrap();
    for caller in [&alice, &admin] {
        assert!(service
            .definition_for(caller, &job)
            .contains("s3cr3t-value"));
    }
    for caller in [&bob, &Caller::Anonymous] {
        let shown = service.definition_for(caller, &job);
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("API_TOKEN: '********'"), "{shown}");
    }
    assert_eq!(
        service.resubmit(&bob, id).unwrap_err().kind,
        ErrorKind::Forbidden,
        "resubmitting would hand bob the secrets"
    );
    assert!(service.resubmit(&alice, id).is_ok());
}

#[test]
fn a_line_longer_than_a_piece_comes_whole_and_pieces_end_at_line_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let id = service.submit(&admin, JOB, None).unwrap();
    let log_dir = dir.path().join("data/jobs").join(id.to_string());
    std::fs::create_dir_all(&log_dir).unwrap();
    let long = format!("- {{\"msg\": \"{}\"}}\n", "é".repeat(3 * 1024 * 1024));
    let text = format!("- a\n{long}- b\n");
    std::fs::write(log_dir.join("output.yaml"), &text).unwrap();
    service
        .store()
        .unwrap()
        .commit_log(
            id,
            &JobLogBatch {
                bytes: text.len() as u64,
                lines: 3,
                results: vec![],
                job_result: None,
            },
        )
        .unwrap();
    service.cancel(&admin, id).unwrap();
    let piece = service.log_lines(&admin, id, 1, None).unwrap();
    assert_eq!(piece.text, long, "the 6 MiB line comes whole");
    assert!(!piece.finished);
    let rest = service.log_lines(&admin, id, 2, None).unwrap();
    assert_eq!((rest.text.as_str(), rest.finished), ("- b\n", true));
    // By bytes: each piece ends at a line end, so no character is split.
    let mut offset = 0;
    let mut joined = String::new();
    loop {
        let chunk = service.log_bytes(&admin, id, offset).unwrap();
        assert!(chunk.text.ends_with('\n'));
        assert!(!chunk.text.contains('\u{fffd}'));
        joined.push_str(&chunk.text);
        if chunk.end >= chunk.size {
            break;
        }
        offset = chunk.end;
    }
    assert_eq!(joined, text);
}

#[test]
fn metrics_say_when_job_logs_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    let faults = Arc::new(crate::master::joblogs::LogFaults::default());
    let service = service.with_log_faults(faults.clone());
    lab(&service, &admin);
    let id = service.submit(&admin, JOB, None).unwrap();
    // The job's log directory cannot be made: a file stands where it would be.
    let jobs = dir.path().join("blocked");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join(id.to_string()), "in the way").unwrap();
    let mut logs = crate::master::joblogs::JobLogs::with_faults(jobs, faults);
    let store = Store::open(&dir.path().join("data/basalt.db")).unwrap();
    assert!(logs.append(&store, id, 0, b"- {}\n").is_err());
    let text = service.metrics().unwrap();
    for line in [
        "basalt_job_log_write_failures_total 1",
        "basalt_job_logs_waiting 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn a_device_type_whose_base_template_is_missing_is_refused_at_add() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    let types = dir.path().join("data/device-types");
    std::fs::create_dir_all(&types).unwrap();
    std::fs::write(
        types.join("orphan.jinja2"),
        "{% extends 'nowhere.jinja2' %}\n",
    )
    .unwrap();
    std::fs::write(
        types.join("child.jinja2"),
        "{% extends 'orphan.jinja2' %}\n",
    )
    .unwrap();
    for name in ["orphan", "child"] {
        let error = service
            .add_device_type(&admin, name, "", true)
            .unwrap_err()
            .message;
        assert!(
            error.contains("extends nowhere.jinja2, which is not on the master's template path"),
            "{error}"
        );
    }
    std::fs::write(
        types.join("looped.jinja2"),
        "{% extends 'looped.jinja2' %}\n",
    )
    .unwrap();
    let error = service
        .add_device_type(&admin, "looped", "", true)
        .unwrap_err()
        .message;
    assert!(error.contains("loop"), "{error}");
    assert!(service.add_device_type(&admin, "qemu", "", true).is_ok());
}
