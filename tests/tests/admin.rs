//! The admin commands against a running master: what they change, and the errors they give
//! for bad input (each says what is wrong and what to do).

use basalt_e2e::cluster::Cluster;
use basalt_e2e::Basalt;
use std::time::Duration;

#[test]
fn bad_requests_are_refused_with_a_reason_and_change_nothing() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();

    let error = cluster
        .cli(&["device-types", "add", "no-such-board"])
        .failure()
        .stderr;
    assert!(
        error.contains("has no template: drop no-such-board.jinja2 into"),
        "{error}"
    );

    let broken = cluster
        .dir
        .write("broken.yaml", "job_name: x\nactions: [\n");
    let error = cluster
        .cli(&["jobs", "submit", &broken.display().to_string()])
        .failure()
        .stderr;
    assert!(
        error.contains("invalid job definition") && error.contains("line"),
        "{error}"
    );

    let other_type = cluster.dir.write(
        "other.yaml",
        std::fs::read_to_string(cluster.job("x", &["true"]))
            .unwrap()
            .replace("device_type: beaglebone-black", "device_type: qemu"),
    );
    let error = cluster
        .cli(&["jobs", "submit", &other_type.display().to_string()])
        .failure()
        .stderr;
    assert!(error.contains("basalt device-types add qemu"), "{error}");

    let wrong = cluster
        .dir
        .write("wrong.jinja2", "{% extends 'qemu.jinja2' %}\n");
    let error = cluster
        .cli(&[
            "devices",
            "add",
            "sim-02",
            "--type",
            "beaglebone-black",
            "--worker",
            "w1",
            "--dict",
            &wrong.display().to_string(),
        ])
        .failure()
        .stderr;
    assert!(
        error.contains("make it extend 'beaglebone-black.jinja2'"),
        "{error}"
    );

    // No token, then a wrong one: refused, nothing added.
    let port_args = cluster.url();
    let error = Basalt::new(["workers", "add", "intruder"])
        .env("BASALT_URL", &port_args)
        .run()
        .failure()
        .stderr;
    assert!(
        error.contains("Authentication with user and token required"),
        "{error}"
    );
    let error = Basalt::new(["workers", "add", "intruder"])
        .env("BASALT_URL", &port_args)
        .env("BASALT_TOKEN", "guess")
        .run()
        .failure()
        .stderr;
    assert!(error.contains("token is not valid"), "{error}");
    let workers = cluster
        .cli(&["workers", "list", "--format", "json"])
        .success()
        .json();
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
}

#[test]
fn devices_and_workers_are_managed_and_the_token_survives_a_restart() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    let token = std::fs::read_to_string(cluster.data_dir().join("admin-token")).unwrap();

    let dictionary = cluster
        .cli(&["devices", "dict", "get", "sim-01"])
        .success()
        .stdout;
    assert!(dictionary.contains("extends 'beaglebone-black.jinja2'"));
    let edited = cluster.dir.write(
        "edited.jinja2",
        format!("{dictionary}{{% set boot_character_delay = 5 %}}\n"),
    );
    cluster
        .cli(&[
            "devices",
            "dict",
            "set",
            "sim-01",
            &edited.display().to_string(),
        ])
        .success();
    let now = cluster
        .cli(&["devices", "dict", "get", "sim-01"])
        .success()
        .stdout;
    assert!(now.contains("boot_character_delay = 5"));

    cluster
        .cli(&["devices", "maintenance", "sim-01", "--reason", "new cable"])
        .success();
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    assert_eq!(device["health"], "maintenance");
    assert_eq!(
        device["history"][0]["reason"], "new cable (by admin)",
        "{device}"
    );
    cluster.cli(&["devices", "activate", "sim-01"]).success();
    cluster.cli(&["workers", "maintenance", "w1"]).success();
    let worker = cluster
        .cli(&["workers", "show", "w1", "--format", "json"])
        .success()
        .json();
    assert_eq!(worker["health"], "maintenance");
    assert_eq!(worker["devices"][0], "sim-01");
    // For people: text, dates rather than epoch milliseconds.
    let text = cluster.cli(&["workers", "show", "w1"]).success().stdout;
    assert!(text.contains("health       maintenance"), "{text}");
    assert!(text.contains("devices      sim-01"), "{text}");
    assert!(text.contains(" health active -> maintenance"), "{text}");
    assert!(
        text.contains("\n  20"),
        "history starts with a date: {text}"
    );
    let shown = cluster.cli(&["devices", "show", "sim-01"]).success().stdout;
    assert!(
        shown.contains("power        unknown (read back -)"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  20"),
        "history starts with a date: {shown}"
    );

    assert!(
        master.stop().success(),
        "the master stops cleanly on SIGTERM"
    );
    let _master = cluster.start_master();
    assert_eq!(
        std::fs::read_to_string(cluster.data_dir().join("admin-token")).unwrap(),
        token
    );
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    // `activate` put it back as unknown (checked again before jobs where its type has a
    // health check); the restart kept that.
    assert_eq!(device["health"], "unknown");
}

#[test]
fn a_configuration_file_with_a_typo_is_refused_with_its_name_and_key() {
    let dir = basalt_e2e::TestDir::new();
    let config = dir.write("master.toml", "data_dir = \"x\"\nhttp_prot = 8080\n");
    let error = Basalt::new(["master", "--config", &config.display().to_string()])
        .run()
        .failure()
        .stderr;
    assert!(
        error.contains("master.toml") && error.contains("http_prot"),
        "{error}"
    );
}

#[test]
fn oversized_bodies_are_refused_and_the_master_keeps_answering() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let token = std::fs::read_to_string(cluster.data_dir().join("admin-token")).unwrap();
    let url = format!("{}/api/v1/device-types/qemu/template", cluster.url());
    let huge = "x".repeat(17 * 1024 * 1024);
    let refused = ureq::put(&url)
        .set("Authorization", &format!("Bearer {}", token.trim()))
        .send_string(&huge);
    match refused {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 413),
        other => panic!(
            "a 17 MiB template was not refused: {:?}",
            other.map(|r| r.status())
        ),
    }
    // Meanwhile and after, reads and writes go on.
    let workers = cluster
        .cli(&["workers", "list", "--format", "json"])
        .success();
    assert_eq!(workers.json(), serde_json::json!([]));
    cluster.cli(&["workers", "add", "w1"]).success();
}

#[test]
fn a_job_is_resubmitted_with_the_same_definition() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let job = cluster.job("again", &["true"]);
    let id = cluster.submit(&job);
    let out = cluster
        .cli(&["jobs", "resubmit", &id.to_string()])
        .success();
    let again: u64 = out
        .stdout
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no new id in {out}"));
    assert_ne!(again, id);
    let first = cluster.try_job(id).expect("the master answers");
    let second = cluster.try_job(again).expect("the master answers");
    assert_eq!(first["definition"], second["definition"]);
    assert_eq!(second["state"], "submitted");
    let error = cluster.cli(&["jobs", "resubmit", "999"]).failure().stderr;
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn garbage_on_the_xmlrpc_endpoint_gets_faults_and_the_master_keeps_answering() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let url = format!("{}/RPC2", cluster.url());
    let post = |body: &str| -> String {
        ureq::post(&url)
            .set("Content-Type", "text/xml")
            .send_string(body)
            .expect("faults come with HTTP 200")
            .into_string()
            .unwrap()
    };
    for body in [
        "",
        "garbage",
        "<methodCall><methodName>x</methodName><params><param><value><int>no</int></value></param></params></methodCall>",
        &format!(
            "<methodCall><methodName>x</methodName><params><param>{}</param></params></methodCall>",
            "<value><array><data>".repeat(5000)
        ),
    ] {
        let answer = post(body);
        assert!(answer.contains("<name>faultCode</name>\n<value><int>400</int>"), "{answer}");
    }
    let unknown = post("<methodCall><methodName>no.such.method</methodName></methodCall>");
    assert!(unknown.contains("<int>-32601</int>"), "{unknown}");
    let version = post("<methodCall><methodName>system.version</methodName></methodCall>");
    assert!(version.contains("basalt"), "{version}");
}

#[test]
fn a_burst_of_clients_is_served_in_turn() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let url = format!("{}/api/v1/devices", cluster.url());
    let answered: usize = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..200)
            .map(|_| {
                scope.spawn(|| {
                    ureq::get(&url)
                        .call()
                        .ok()
                        .and_then(|r| r.into_string().ok())
                        .is_some_and(|body| body.contains("sim-01"))
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join())
            .filter(|answer| matches!(answer, Ok(true)))
            .count()
    });
    assert_eq!(answered, 200, "every client of the burst got its answer");
}

/// A master started over a data directory whose database was lost refuses, saying what to
/// do; `--init` starts a new one whose job ids continue after the logs already there.
#[test]
fn a_lost_database_is_never_silently_replaced_and_job_ids_skip_old_logs() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    let id = cluster.submit(&cluster.job("before", &["lava-test-case one --result pass"]));
    assert_eq!(id, 1);
    cluster.wait_state(id, "finished", std::time::Duration::from_secs(90));
    slave.stop();
    master.stop();
    let old_log = std::fs::read(cluster.data_dir().join("jobs/1/output.yaml")).unwrap();
    assert!(!old_log.is_empty());

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(cluster.data_dir().join(format!("basalt.db{suffix}")));
    }
    let refused = cluster.run_master_to_exit(&[]);
    assert!(!refused.status.success(), "{refused}");
    assert!(refused.stderr.contains("basalt.db is missing"), "{refused}");
    assert!(refused.stderr.contains("--init"), "{refused}");
    std::fs::write(cluster.data_dir().join("basalt.db"), b"").unwrap();
    let refused = cluster.run_master_to_exit(&[]);
    assert!(refused.stderr.contains("basalt.db is empty"), "{refused}");
    assert_eq!(
        std::fs::metadata(cluster.data_dir().join("basalt.db"))
            .unwrap()
            .len(),
        0,
        "a refused start writes nothing"
    );

    let _master = cluster.start_master_with(&["--init"]);
    cluster.register_board();
    let next = cluster.submit(&cluster.job("after", &["true"]));
    assert_eq!(next, 2, "the new database skips the id whose log is there");
    assert_eq!(
        std::fs::read(cluster.data_dir().join("jobs/1/output.yaml")).unwrap(),
        old_log,
        "job 1's log is untouched"
    );
}

/// A master whose database has a damaged page refuses to start and says so, instead of
/// serving reads while every write fails.
#[test]
fn a_corrupt_database_is_a_clear_start_up_error() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    cluster.register_board();
    for n in 0..20 {
        cluster.submit(&cluster.job(&format!("queued-{n}"), &["true"]));
    }
    master.stop();
    let path = cluster.data_dir().join("basalt.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 4, "{pages} pages");
    // Every page but the header page: garbage, as a bad disk sector leaves it.
    for (i, byte) in bytes[4096..].iter_mut().enumerate() {
        *byte = (i * 7 + 13) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    let refused = cluster.run_master_to_exit(&[]);
    assert!(!refused.status.success(), "{refused}");
    assert!(
        refused.stderr.contains("the database is corrupt"),
        "{refused}"
    );
    assert!(refused.stderr.contains("restore basalt.db"), "{refused}");
}

/// Without `BASALT_LOG` the daemons log their start-up at info, and without colour codes
/// when their output is a file.
#[test]
fn the_master_logs_its_start_by_default_without_colour_in_a_file() {
    let mut cluster = Cluster::new();
    let mut master = Basalt::new(cluster.master_args(&[])).spawn(cluster.dir.path());
    let log_file = cluster.dir.path().join("spawned.stderr");
    cluster.await_master(&mut master, &log_file);
    ureq::get(&format!("{}/api/v1/workers", cluster.url()))
        .call()
        .expect("the master answers once it is ready");
    let _ = master.kill();
    let _ = master.wait();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("master listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log:?}");
}

/// Each subcommand's help lists its own flags only.
#[test]
fn maintenance_help_shows_only_its_own_flags() {
    let maintenance = Basalt::new(["devices", "maintenance", "--help"])
        .run()
        .success()
        .stdout;
    assert!(maintenance.contains("--reason"), "{maintenance}");
    assert!(
        !maintenance.contains("--skip-health-check"),
        "{maintenance}"
    );
    let activate = Basalt::new(["devices", "activate", "--help"])
        .run()
        .success()
        .stdout;
    assert!(activate.contains("--skip-health-check"), "{activate}");
}

/// `jobs wait` returns when the job has finished, with its outcome as the exit status.
#[test]
fn jobs_wait_returns_the_outcome_as_its_status() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let id = cluster
        .submit(&cluster.job("waited", &["lava-test-case one --result pass"]))
        .to_string();
    // No slave yet: the job stays queued.
    let early = cluster.cli(&["jobs", "wait", &id, "--timeout", "1"]);
    assert_eq!(early.status.code(), Some(2), "{early}");
    let _slave = cluster.start_slave();
    let done = cluster.cli(&["jobs", "wait", &id]).success();
    assert_eq!(done.stdout.trim(), format!("job {id}: finished, complete"));
    let missing = cluster.cli(&["jobs", "wait", "999"]).failure();
    assert!(missing.stderr.contains("404"), "{missing}");
}

/// Port 0 everywhere: the ready file names the ports the kernel gave the master, and each
/// of them is the master's (HTTP answers its API, a slave's HELLO on the control port is
/// answered, the log port accepts).
#[test]
fn a_master_on_port_zero_names_its_ports_in_its_ready_file() {
    use basalt::transport::{ControlMessage, SlaveSocket};
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cluster.ready_file()).unwrap()).unwrap();
    assert_eq!(
        ready["pid"].as_u64(),
        Some(u64::from(_master.pid())),
        "{ready}"
    );
    let (control, logs) = cluster.ports();
    assert!(control != 0 && logs != 0 && control != logs, "{ready}");
    ureq::get(&format!("{}/api/v1/workers", cluster.url()))
        .call()
        .expect("the HTTP port in the ready file is the master's");
    let slave = SlaveSocket::connect(&format!("tcp://127.0.0.1:{control}"), "w9").unwrap();
    slave.send(&ControlMessage::Hello {
        protocol: 3,
        version: Some("test".into()),
        features: vec![],
    });
    basalt_e2e::cluster::wait_for(
        "HELLO_OK on the control port",
        std::time::Duration::from_secs(20),
        || {
            slave
                .recv(std::time::Duration::from_millis(200))
                .into_iter()
                .find(|frames| {
                    matches!(
                        ControlMessage::decode(frames),
                        Ok(ControlMessage::HelloOk { .. })
                    )
                })
        },
    );
    std::net::TcpStream::connect(("127.0.0.1", logs)).expect("the log port listens");
}

/// Something else answering on the master's HTTP port does not pass for the master: the
/// master says it cannot listen there and writes no ready file (a harness that took any TCP
/// answer for readiness went on against the other program).
#[test]
fn a_master_whose_port_is_taken_says_so_and_is_never_ready() {
    let mut cluster = Cluster::new();
    let master = cluster.start_master();
    master.stop();
    let squatter = std::net::TcpListener::bind(
        cluster
            .url()
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .unwrap(),
    )
    .expect("the stopped master's HTTP port is free again");
    std::fs::remove_file(cluster.ready_file()).unwrap();
    let refused = cluster.run_master_to_exit(&[]).failure();
    assert!(
        refused
            .stderr
            .contains("cannot listen for HTTP on 127.0.0.1:"),
        "{refused}"
    );
    assert!(!cluster.ready_file().exists());
    drop(squatter);
}

/// `basalt KIND show NAME` as JSON.
fn show(cluster: &Cluster, kind: &str, name: &str) -> serde_json::Value {
    cluster
        .cli(&[kind, "show", name, "--format", "json"])
        .success()
        .json()
}

/// The CLI changes, retires and deletes devices, workers and users; a device that holds a
/// job cannot be deleted, and a deleted user's token opens nothing.
#[test]
fn devices_workers_and_users_are_updated_retired_and_deleted_from_the_cli() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();

    cluster.cli(&["workers", "add", "w2"]).success();
    cluster
        .cli(&[
            "workers",
            "update",
            "w2",
            "--job-limit",
            "2",
            "--description",
            "rack 4",
        ])
        .success();
    let w2 = show(&cluster, "workers", "w2");
    assert_eq!(
        (w2["job_limit"].as_u64(), w2["description"].as_str()),
        (Some(2), Some("rack 4")),
        "{w2}"
    );
    cluster
        .cli(&[
            "devices",
            "update",
            "sim-01",
            "--worker",
            "w2",
            "--description",
            "bench 3",
        ])
        .success();
    let device = show(&cluster, "devices", "sim-01");
    assert_eq!(
        (device["worker"].as_str(), device["description"].as_str()),
        (Some("w2"), Some("bench 3")),
        "{device}"
    );
    let unknown = cluster
        .cli(&["devices", "update", "sim-01", "--worker", "nobody"])
        .failure();
    assert!(
        unknown.stderr.contains("worker nobody is not known"),
        "{unknown}"
    );
    cluster
        .cli(&["workers", "retire", "w2", "--reason", "moved"])
        .success();
    assert_eq!(show(&cluster, "workers", "w2")["health"], "retired");
    cluster
        .cli(&["devices", "update", "sim-01", "--worker", "w1"])
        .success();

    // A device running a job cannot be deleted; once the job is over it can.
    let _slave = cluster.start_slave();
    let id = cluster.submit(&cluster.job(
        "holds-the-board",
        &["lava-test-case before --shell true", "sleep 4"],
    ));
    cluster.wait_state(id, "running", Duration::from_secs(60));
    let busy = cluster.cli(&["devices", "delete", "sim-01"]).failure();
    assert!(busy.stderr.contains("(409)"), "{busy}");
    assert!(
        busy.stderr.contains(&format!("unfinished jobs ({id})")),
        "{busy}"
    );
    cluster.wait_state(id, "finished", Duration::from_secs(120));
    cluster.cli(&["devices", "retire", "sim-01"]).success();
    assert_eq!(show(&cluster, "devices", "sim-01")["health"], "retired");
    cluster
        .cli(&["devices", "delete", "sim-01", "--reason", "sent back"])
        .success();
    let gone = cluster.cli(&["devices", "show", "sim-01"]).failure();
    assert!(gone.stderr.contains("(404)"), "{gone}");
    assert_eq!(cluster.try_job(id).unwrap()["actual_device"], "sim-01");

    // A deleted user's token is refused; admin and oneself cannot be deleted.
    let token = cluster
        .cli(&["user", "add", "bob", "--superuser", "--with-token"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let as_bob = |args: &[&str]| {
        Basalt::new(args.iter().copied())
            .env("BASALT_URL", cluster.url())
            .env("BASALT_TOKEN", &token)
            .run()
    };
    let himself = as_bob(&["user", "delete", "bob"]).failure();
    assert!(
        himself.stderr.contains("cannot delete themselves"),
        "{himself}"
    );
    let admin = as_bob(&["user", "delete", "admin"]).failure();
    assert!(admin.stderr.contains("cannot be deleted"), "{admin}");
    cluster.cli(&["user", "delete", "bob"]).success();
    let refused = as_bob(&["workers", "add", "w3"]).failure();
    assert!(refused.stderr.contains("(401)"), "{refused}");
    let users = cluster
        .cli(&["user", "list", "--format", "json"])
        .success()
        .json();
    assert!(!users.to_string().contains("bob"), "{users}");
}

/// What crashed the master from an anonymous client (15,000 nested `[`, 8,000 nested
/// mappings) and an oversized job are answered with what is wrong, and the master answers
/// the next request.
#[test]
fn deeply_nested_or_oversized_jobs_are_refused_and_the_master_stays_up() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let validate = format!("{}/api/v1/jobs/validate", cluster.url());
    for body in [
        "[".repeat(15_000),
        "{a: ".repeat(8_000),
        "- ".repeat(20_000),
    ] {
        let answer: serde_json::Value = ureq::post(&validate)
            .send_string(&body)
            .expect("an answer, not a dropped connection")
            .into_json()
            .unwrap();
        assert_eq!(answer["valid"], false, "{answer}");
        assert!(answer.to_string().contains("deeper than 256"), "{answer}");
    }
    let huge = cluster.dir.write(
        "huge.yaml",
        format!("job_name: huge\n# {}\n", "x".repeat(5 << 20)),
    );
    let refused = cluster
        .cli(&["jobs", "submit", &huge.display().to_string()])
        .failure();
    assert!(
        refused.stderr.contains("at most 4194304 are accepted"),
        "{refused}"
    );
    ureq::get(&format!("{}/api/v1/workers", cluster.url()))
        .call()
        .expect("the master still answers");
}

/// Dictionaries (PDU and console credentials) and worker files are for superusers; the
/// master's data and the slave's copies of a job are readable by their owner only.
#[test]
fn what_holds_credentials_is_readable_by_superusers_and_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let url = cluster.url();
    for path in [
        "/api/v1/devices/sim-01/dictionary",
        "/api/v1/workers/w1/files/env",
    ] {
        match ureq::get(&format!("{url}{path}")).call() {
            Err(ureq::Error::Status(401, _)) => {}
            other => panic!("{path} anonymously: {other:?}"),
        }
    }
    let shown: serde_json::Value = ureq::get(&format!("{url}/api/v1/devices/sim-01"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(shown["dictionary"], "", "{shown}");
    let page = ureq::get(&format!("{url}/devices/sim-01"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!page.contains("connection_command"), "{page}");
    let dict = cluster
        .cli(&["devices", "dict", "get", "sim-01"])
        .success()
        .stdout;
    assert!(dict.contains("connection_command"), "{dict}");

    let _slave = cluster.start_slave();
    let id = cluster.submit(&cluster.job("private", &["lava-test-case ok --shell true"]));
    cluster.wait_state(id, "finished", Duration::from_secs(120));
    let mode = |path: std::path::PathBuf| {
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = cluster.data_dir();
    for file in ["basalt.db", "admin-token"] {
        assert_eq!(mode(data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(data.join(format!("jobs/{id}/output.yaml"))), 0o600);
    let kept = cluster.state_dir().join(format!("finished/{id}"));
    for file in ["job.yaml", "device.yaml", "env.yaml", "output/job.yaml"] {
        assert_eq!(mode(kept.join(file)), 0o600, "{file}");
    }
}
