//! The master↔slave link as an outsider meets it (issue 13), with real processes on
//! 127.0.0.1: encrypted, only a listed key gets in and it speaks for its own worker only; in
//! the clear, log lines for jobs no worker runs change nothing and a stolen name is taken
//! back. LAVA 2019's own CURVE set-up is played by pyzmq, whose wheels carry CURVE.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use basalt::transport::{Certificate, ClientCurve, ControlMessage, LogPusher, SlaveSocket};
use basalt_e2e::cluster::{wait_for, Cluster};
use basalt_e2e::Basalt;
use common::{assert_log_delivered_once, assert_slow_job_results, slow_job, wait_mid_test, LONG};

/// The final result line of a LAVA job, as lava-run pushes it.
const PASS_LINE: &[u8] = br#"{"dt": "2019-12-01T10:00:00.000000", "lvl": "results", "msg": {"definition": "lava", "case": "job", "result": "pass"}}"#;

/// Everything the daemons named `daemon` (`master`, `slave`) logged, all starts together.
fn daemon_logs(cluster: &Cluster, daemon: &str) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(cluster.dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{daemon}-")) && name.ends_with(".log") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

fn workers(cluster: &Cluster) -> Vec<(String, String)> {
    let list = cluster
        .cli(&["workers", "list", "--format", "json"])
        .success()
        .json();
    list.as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            (
                w["hostname"].as_str().unwrap_or_default().to_owned(),
                w["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn hello() -> ControlMessage {
    ControlMessage::Hello {
        protocol: 3,
        version: None,
        features: vec![],
    }
}

#[test]
fn an_encrypted_link_runs_a_job_and_kill_9_of_either_side_loses_nothing() {
    let mut cluster = Cluster::encrypted();
    let master = cluster.start_master();
    cluster.register_board();
    let slave = cluster.start_slave();
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    wait_mid_test(&cluster, id);
    slave.kill();
    std::thread::sleep(Duration::from_millis(500));
    let _slave = cluster.start_slave();
    master.kill();
    std::thread::sleep(Duration::from_secs(1));
    let _master = cluster.start_master();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
    assert_slow_job_results(&cluster, id);
    assert!(daemon_logs(&cluster, "master").contains("the link is encrypted (CURVE"));
}

#[test]
fn without_a_listed_key_of_its_own_no_one_gets_a_start_pushes_logs_or_becomes_a_worker() {
    let mut cluster = Cluster::encrypted();
    let _master = cluster.start_master();
    cluster.register_board();
    let (control, logs) = cluster.ports();
    let control = format!("tcp://127.0.0.1:{control}");
    let logs = format!("tcp://127.0.0.1:{logs}");
    let master_key = Certificate::read(&cluster.cert("master", false))
        .unwrap()
        .public;
    let curve = |own: Certificate| ClientCurve {
        master: master_key,
        own,
    };
    let unknown = curve(Certificate::generate().unwrap());
    let w2 = curve(Certificate::read_secret(&cluster.cert("w2", true)).unwrap());
    let id = cluster.submit(&cluster.job("secret", &["lava-test-case ok --shell true"]));
    let rogues = [
        ("no key", SlaveSocket::connect(&control, "w1").unwrap()),
        (
            "an unlisted key",
            SlaveSocket::connect_with(&control, "w1", Some(&unknown)).unwrap(),
        ),
        (
            "w2's key, as w1",
            SlaveSocket::connect_with(&control, "w1", Some(&w2)).unwrap(),
        ),
        (
            "w2's key, as a new name",
            SlaveSocket::connect_with(&control, "stranger", Some(&w2)).unwrap(),
        ),
    ];
    let pushers = [
        LogPusher::connect(&logs, None).unwrap(),
        LogPusher::connect(&logs, Some(&unknown)).unwrap(),
        LogPusher::connect(&logs, Some(&w2)).unwrap(),
    ];
    for _ in 0..8 {
        for (_, rogue) in &rogues {
            rogue.send(&hello());
            rogue.send(&ControlMessage::Ping);
            rogue.send(&ControlMessage::StartOk { job: id });
            rogue.send(&ControlMessage::End {
                job: id,
                stderr: "forged".into(),
                description: Vec::new(),
                log_bytes: None,
            });
        }
        for pusher in &pushers {
            pusher.push(id, PASS_LINE);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for (what, rogue) in &rogues {
        let got = rogue.recv(Duration::from_millis(200));
        assert!(got.is_empty(), "a client with {what} received {got:?}");
    }
    let record = cluster.try_job(id).expect("the job");
    assert_eq!(record["state"], "submitted", "{record}");
    assert_eq!(
        workers(&cluster),
        vec![("w1".to_owned(), "offline".to_owned())]
    );
    let log = daemon_logs(&cluster, "master");
    assert!(log.contains("is not in the slaves' certificates"), "{log}");
    assert!(
        log.contains("its key is the certificate of worker w2"),
        "{log}"
    );
    // The strangers leave; the real w1 connects with its own key and runs the job.
    drop(rogues);
    drop(pushers);
    let _slave = cluster.start_slave();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
}

#[test]
fn removing_a_slaves_certificate_cuts_it_off_without_a_restart() {
    let mut cluster = Cluster::encrypted();
    let _master = cluster.start_master();
    cluster.register_board();
    let _slave = cluster.start_slave();
    wait_for("w1 online", LONG, || {
        (workers(&cluster) == vec![("w1".to_owned(), "online".to_owned())]).then_some(())
    });
    std::fs::remove_file(cluster.slaves_certs().join("w1.key")).unwrap();
    // Its pings no longer count: offline after --offline-after (3 s), and a job waits.
    wait_for("w1 offline", LONG, || {
        (workers(&cluster) == vec![("w1".to_owned(), "offline".to_owned())]).then_some(())
    });
    let id = cluster.submit(&cluster.job("after-removal", &["lava-test-case ok --shell true"]));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.try_job(id).unwrap()["state"], "submitted");
    // Put back: the slave's next connection is admitted again.
    std::fs::copy(
        cluster.cert("w1", false),
        cluster.slaves_certs().join("w1.key"),
    )
    .unwrap();
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
}

#[test]
fn an_encrypted_master_without_its_certificates_refuses_to_start() {
    let cluster = Cluster::encrypted();
    let data = cluster.dir.path().join("data");
    let missing = cluster.dir.path().join("nowhere.key_secret");
    let out = Basalt::new([
        "master",
        "--data-dir",
        &data.display().to_string(),
        "--listen",
        "127.0.0.1",
        "--encrypt",
        "--master-cert",
        &missing.display().to_string(),
        "--slaves-certs",
        &cluster.slaves_certs().display().to_string(),
    ])
    .run();
    assert!(!out.status.success());
    assert!(out.stderr.contains("nowhere.key_secret"), "{out}");
    // A public certificate is not enough.
    let out = Basalt::new([
        "master",
        "--data-dir",
        &data.display().to_string(),
        "--encrypt",
        "--master-cert",
        &cluster.cert("master", false).display().to_string(),
    ])
    .run();
    assert!(out.stderr.contains("no secret-key"), "{out}");
}

/// Runs a pyzmq script with arguments; None (test skipped) without pyzmq outside CI.
fn python(cluster: &Cluster, script: &str, args: &[String]) -> Option<std::process::Child> {
    let has_pyzmq = Command::new("python3")
        .args(["-c", "import zmq, zmq.auth; assert zmq.has('curve')"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyzmq {
        let required = std::env::var_os("BASALT_REQUIRE_TOOLS").is_some()
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!required, "pyzmq is not installed (.ci/run installs it)");
        eprintln!("skipping: pyzmq is not installed");
        return None;
    }
    let path = cluster.dir.write("peer.py", script);
    Some(
        Command::new("python3")
            .arg(&path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3"),
    )
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("the python peer");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the python peer failed:\n{text}");
    text
}

/// A LAVA 2019.12 lava-slave and lava-run as far as the wire shows them, with LAVA's CURVE
/// set-up: a ROUTER with CONNECT_RID `master`, HELLO / HELLO_RETRY until HELLO_OK,
/// START_OK, the log lines PUSHed to the log socket, END with an xz description.
const LAVA_SLAVE: &str = r#"
import lzma, sys, time, zmq, zmq.auth
control, logs, master_cert, slave_cert, name = sys.argv[1:6]
master_public, _ = zmq.auth.load_certificate(master_cert)
public, secret = zmq.auth.load_certificate(slave_cert)
context = zmq.Context()
def client(kind):
    socket = context.socket(kind)
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.curve_serverkey = master_public
    socket.setsockopt(zmq.LINGER, 0)
    return socket
sock = client(zmq.ROUTER)
sock.setsockopt(zmq.IDENTITY, name.encode())
sock.setsockopt(zmq.CONNECT_ROUTING_ID, b"master")
sock.connect(control)
sock.send_multipart([b"master", b"HELLO", b"3"])
deadline = time.time() + 60
job = None
while time.time() < deadline:
    if not sock.poll(1000):
        sock.send_multipart([b"master", b"HELLO_RETRY", b"3"])
        continue
    frames = sock.recv_multipart()
    if frames[1] == b"HELLO_OK":
        print("HELLO_OK")
    elif frames[1] == b"START":
        job, definition = frames[2], frames[3]
        assert len(frames) == 8, len(frames)
        assert b"lava-2019-peer" in definition, definition
        sock.send_multipart([b"master", b"START_OK", job])
        break
assert job is not None, "no START"
push = client(zmq.PUSH)
push.connect(logs)
push.send_multipart([job, b'{"dt": "2019-12-01T10:00:00.000000", "lvl": "info", "msg": "lava-dispatcher, installed at version: 2019.12"}'])
push.send_multipart([job, b'{"dt": "2019-12-01T10:00:01.000000", "lvl": "results", "msg": {"definition": "0_smoke", "case": "probe", "result": "pass"}}'])
push.send_multipart([job, b'{"dt": "2019-12-01T10:00:02.000000", "lvl": "results", "msg": {"definition": "lava", "case": "job", "result": "pass"}}'])
description = lzma.compress(b"compatibility: 4\n", format=lzma.FORMAT_XZ)
while time.time() < deadline:
    sock.send_multipart([b"master", b"END", job, b"", description])
    if sock.poll(2000) and sock.recv_multipart()[1:] == [b"END_OK", job]:
        print("END_OK", job.decode())
        break
push.close()
sock.close()
context.term()
"#;

#[test]
fn a_lava_2019_slave_with_its_own_curve_set_up_runs_a_job_on_an_encrypted_master() {
    let mut cluster = Cluster::encrypted();
    let _master = cluster.start_master();
    cluster.register_board();
    let (control, logs) = cluster.ports();
    let Some(peer) = python(
        &cluster,
        LAVA_SLAVE,
        &[
            format!("tcp://127.0.0.1:{control}"),
            format!("tcp://127.0.0.1:{logs}"),
            cluster.cert("master", false).display().to_string(),
            cluster.cert("w1", true).display().to_string(),
            "w1".into(),
        ],
    ) else {
        return;
    };
    let id = cluster.submit(&cluster.job("lava-2019-peer", &["lava-test-case ok --shell true"]));
    let record = cluster.wait_state(id, "finished", LONG);
    let out = finish(peer);
    assert!(out.contains("HELLO_OK") && out.contains("END_OK"), "{out}");
    assert_eq!(record["health"], "complete", "{record}");
    let results = common::results(&cluster, id);
    assert!(
        results.contains(&("probe".into(), "pass".into())),
        "{results:?}"
    );
}

/// A LAVA 2019.12 lava-master and lava-logs with CURVE as LAVA sets them up: pyzmq's
/// ThreadAuthenticator over the slaves' certificates, both sockets CURVE servers.
const LAVA_MASTER: &str = r#"
import os, sys, time, zmq, zmq.auth
from zmq.auth.thread import ThreadAuthenticator
ports_file, master_cert, slaves_dir, job_file, device_file = sys.argv[1:6]
public, secret = zmq.auth.load_certificate(master_cert)
context = zmq.Context()
auth = ThreadAuthenticator(context)
auth.start()
auth.configure_curve(domain="*", location=slaves_dir)
def server(kind):
    socket = context.socket(kind)
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.curve_server = True
    return socket
ctrl = server(zmq.ROUTER)
ctrl.setsockopt(zmq.IDENTITY, b"master")
ctrl.setsockopt(zmq.ROUTER_HANDOVER, 1)
ctrl.bind("tcp://127.0.0.1:*")
pull = server(zmq.PULL)
pull.bind("tcp://127.0.0.1:*")
port = lambda s: s.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
with open(ports_file + ".partial", "w") as f:
    f.write(port(ctrl) + " " + port(pull))
os.rename(ports_file + ".partial", ports_file)
definition = open(job_file, "rb").read()
device = open(device_file, "rb").read()
poller = zmq.Poller()
poller.register(ctrl, zmq.POLLIN)
poller.register(pull, zmq.POLLIN)
deadline = time.time() + 90
started = finished = ended = False
lines = 0
while time.time() < deadline and not (finished and ended):
    ready = dict(poller.poll(500))
    if pull in ready:
        job, line = pull.recv_multipart()
        lines += 1
        if b'"case": "job"' in line:
            finished = True
            print("RESULT", line.decode())
    if ctrl in ready:
        frames = ctrl.recv_multipart()
        peer, action = frames[0], frames[1]
        if action in (b"HELLO", b"HELLO_RETRY") and frames[2] == b"3":
            ctrl.send_multipart([peer, b"HELLO_OK"])
            if not started:
                ctrl.send_multipart([peer, b"START", b"1", definition, device, b"", b"", b""])
        elif action == b"START_OK":
            started = True
        elif action == b"PING":
            ctrl.send_multipart([peer, b"PONG", b"20"])
        elif action == b"END":
            ctrl.send_multipart([peer, b"END_OK", frames[2]])
            ended = True
print("LINES", lines, "STARTED", started, "FINISHED", finished, "ENDED", ended)
auth.stop()
sys.exit(0 if finished and ended else 1)
"#;

#[test]
fn an_encrypted_basalt_slave_runs_a_job_for_a_lava_2019_master_with_curve() {
    let mut cluster = Cluster::encrypted();
    let job = cluster.job("for-lava-master", &["lava-test-case ok --shell true"]);
    let device = cluster.rendered_board();
    let device_file = cluster.dir.write("device.yaml", device);
    let ports_file = cluster.dir.path().join("peer.ports");
    let Some(peer) = python(
        &cluster,
        LAVA_MASTER,
        &[
            ports_file.display().to_string(),
            cluster.cert("master", true).display().to_string(),
            cluster.slaves_certs().display().to_string(),
            job.display().to_string(),
            device_file.display().to_string(),
        ],
    ) else {
        return;
    };
    // The stand-in binds ports the kernel picks and says which.
    let ports = wait_for("the LAVA master's ports", LONG, || {
        let text = std::fs::read_to_string(&ports_file).ok()?;
        let (control, logs) = text.split_once(' ')?;
        Some((control.parse().ok()?, logs.parse().ok()?))
    });
    cluster.listen_on(ports.0, ports.1);
    let _slave = cluster.start_slave();
    let out = finish(peer);
    assert!(out.contains(r#""result": "pass""#), "{out}");
    assert!(out.contains("ENDED True"), "{out}");
}

#[test]
fn in_the_clear_logs_for_jobs_no_worker_runs_change_nothing_and_a_stolen_name_comes_back() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let (control, logs) = cluster.ports();
    // A queued job: no worker holds it, so pushed lines are dropped.
    let queued = cluster.submit(&cluster.job("queued", &["lava-test-case ok --shell true"]));
    let pusher = LogPusher::connect(&format!("tcp://127.0.0.1:{logs}"), None).unwrap();
    pusher.push(queued, PASS_LINE);
    std::thread::sleep(Duration::from_secs(1));
    let record = cluster.try_job(queued).unwrap();
    assert_eq!(record["state"], "submitted", "{record}");
    assert!(cluster.master_log(queued).is_empty());
    // The real slave runs it; a finished job's log takes no more lines either.
    let slave = cluster.start_slave();
    cluster.wait_state(queued, "finished", LONG);
    let before = cluster.master_log(queued);
    pusher.push(queued, PASS_LINE);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cluster.master_log(queued), before);

    // A rogue says HELLO as w1 during a job and keeps quiet: the master hands it the
    // name (LAVA's handover); the real slave notices its unanswered PING, connects again
    // and its job completes.
    let id = cluster.submit(&slow_job(&cluster));
    cluster.wait_state(id, "running", LONG);
    wait_mid_test(&cluster, id);
    let rogue = SlaveSocket::connect(&format!("tcp://127.0.0.1:{control}"), "w1").unwrap();
    rogue.send(&hello());
    let stolen = std::time::Instant::now();
    wait_for("the rogue to be answered", LONG, || {
        (!rogue.recv(Duration::from_millis(100)).is_empty()).then_some(())
    });
    let record = cluster.wait_state(id, "finished", LONG);
    assert_eq!(record["health"], "complete", "{record}");
    assert_log_delivered_once(&cluster, id);
    let slave_log = daemon_logs(&cluster, "slave");
    assert!(slave_log.contains("connecting again"), "{slave_log}");
    assert!(stolen.elapsed() < Duration::from_secs(60));
    wait_for("w1 online again", Duration::from_secs(30), || {
        (workers(&cluster) == vec![("w1".to_owned(), "online".to_owned())]).then_some(())
    });
    drop(slave);
}
