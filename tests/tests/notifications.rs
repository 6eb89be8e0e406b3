//! Issue 18's acceptance, with real processes on 127.0.0.1: a job's KernelCI-style `notify:`
//! callback (POST, JSON, `dataset: all`, a remote artifact token added with the real lavacli)
//! reaches a receiver that was down when the job ended, once it comes back; a GET callback
//! with `dataset: minimal` gets its URL placeholders filled and no body; e-mails (an address,
//! and a user's) reach a local SMTP server; the job's notifications record their attempts;
//! and the event stream carries the job's state changes to a ZMQ SUB client (pyzmq), to
//! `lavacli events listen` over `/ws/`, and ends `lavacli events wait device`. (lavacli
//! 3.1's `events wait job N` compares the event's integer `job`, which LAVA sends, with its
//! string argument, and never returns against LAVA either; `lavacli jobs wait` is its way.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use basalt_e2e::cluster::{wait_for, Cluster};
use basalt_e2e::{tool_available, Basalt};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

/// One HTTP request as a receiver saw it.
#[derive(Debug)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &mut TcpStream) -> Received {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body,
    }
}

/// A receiver on `listener` that hands over the first `count` requests.
fn receive(listener: TcpListener, count: usize) -> mpsc::Receiver<Received> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            let _ = sender.send(read_request(&mut stream));
        }
    });
    receiver
}

/// A local SMTP server that hands over (recipient, data) of each message.
fn smtp_server() -> (u16, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            smtp_session(stream, &sender);
        }
    });
    (port, receiver)
}

fn smtp_session(mut stream: TcpStream, sender: &mpsc::Sender<(String, String)>) {
    {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        stream.write_all(b"220 test ESMTP\r\n").unwrap();
        let (mut to, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let command = line.trim_end().to_ascii_uppercase();
            if command.starts_with("EHLO") {
                stream.write_all(b"250-test\r\n250 8BITMIME\r\n").unwrap();
            } else if command.starts_with("RCPT TO:") {
                to = line.trim_end()[8..].trim_matches(['<', '>']).to_owned();
                stream.write_all(b"250 ok\r\n").unwrap();
            } else if command == "DATA" {
                stream.write_all(b"354 go on\r\n").unwrap();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                stream.write_all(b"250 queued\r\n").unwrap();
            } else if command == "QUIT" {
                stream.write_all(b"221 bye\r\n").unwrap();
                break;
            } else {
                stream.write_all(b"250 ok\r\n").unwrap();
            }
        }
        let _ = sender.send((to, data));
    }
}

fn admin_token(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.data_dir().join("admin-token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn lavacli(config: &Path, args: &[&str]) -> basalt_e2e::Output {
    Basalt::program("lavacli", args)
        .env("XDG_CONFIG_HOME", config)
        .env("NO_COLOR", "1")
        .timeout(LONG)
        .run()
}

/// The job's YAML with `notify` appended.
fn with_notify(job: &Path, notify: &str) {
    let mut text = std::fs::read_to_string(job).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(notify);
    std::fs::write(job, text).unwrap();
}

#[test]
fn callbacks_mail_and_events_reach_the_world_as_lava_sends_them() {
    if !tool_available("lavacli") || !tool_available("python3") {
        return;
    }
    let mut cluster = Cluster::new();
    let (smtp_port, mails) = smtp_server();
    let config = cluster.dir.write(
        "master.toml",
        format!(
            "[notifications]\nretry_first_secs = 1\nretry_max_secs = 2\n\
             callback_allowed_hosts = [\"127.0.0.1\"]\n\
             smtp_server = \"127.0.0.1:{smtp_port}\"\nemail_from = \"lava@lab.example\"\n\
             url_prefix = \"http://lab.example\"\n"
        ),
    );
    let _master = cluster.start_master_with(&[
        "--config",
        &config.display().to_string(),
        "--event-port",
        "0",
    ]);
    let ready: Value =
        serde_json::from_str(&std::fs::read_to_string(cluster.ready_file()).unwrap()).unwrap();
    let event_port = ready["event_port"].as_u64().expect("an event port");
    cluster.register_board();
    cluster
        .cli(&["user", "email", "admin", "admin@lab.example"])
        .success();

    // lavacli sees the tokens group (the version says 2025.05) and adds the callback's token.
    let lavacli_config = cluster.dir.mkdir("lavacli");
    lavacli(
        &lavacli_config,
        &[
            "identities",
            "add",
            "basalt",
            "--uri",
            &format!("{}/RPC2", cluster.url()),
            "--username",
            "admin",
            "--token",
            &admin_token(&cluster),
        ],
    )
    .success();
    let tokens = |args: &[&str]| {
        let mut full = vec!["-i", "basalt", "tokens"];
        full.extend_from_slice(args);
        lavacli(&lavacli_config, &full)
    };
    tokens(&["add", "ci-api-token", "--token", "s3cret-value"]).success();
    tokens(&["add", "spare", "--token", "other"]).success();
    let listed = tokens(&["list"]).success().stdout;
    assert!(listed.contains("* ci-api-token: s3cret-value"), "{listed}");
    assert_eq!(tokens(&["show", "spare"]).success().stdout.trim(), "other");
    tokens(&["delete", "spare"]).success();
    assert!(!tokens(&["list"]).success().stdout.contains("spare"));
    let missing = tokens(&["show", "spare"]).failure();
    assert!(
        missing.stderr.contains("Token 'spare' was not found."),
        "{missing}"
    );

    // Listeners on the event stream: lavacli over /ws/, and a ZMQ subscriber.
    let listen_dir = cluster.dir.mkdir("listen");
    let mut listen = Basalt::program("lavacli", ["-i", "basalt", "events", "listen"])
        .env("XDG_CONFIG_HOME", &lavacli_config)
        .env("NO_COLOR", "1")
        .spawn(&listen_dir);
    let sub_dir = cluster.dir.mkdir("sub");
    let mut subscriber = Basalt::program(
        "python3",
        [
            "-c",
            &format!(
                "import zmq, json, sys\n\
                 s = zmq.Context().socket(zmq.SUB)\n\
                 s.setsockopt(zmq.SUBSCRIBE, b'')\n\
                 s.connect('tcp://127.0.0.1:{event_port}')\n\
                 while True:\n\
                 \x20   frames = s.recv_multipart()\n\
                 \x20   print(json.dumps([f.decode() for f in frames]), flush=True)\n"
            ),
        ],
    )
    .spawn(&sub_dir);
    let listening = || {
        std::fs::read_to_string(listen_dir.join("spawned.stdout"))
            .unwrap_or_default()
            .contains("Connecting to")
    };
    wait_for("lavacli to connect to /ws/", LONG, || {
        listening().then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    // The receiver is down when the job ends: its port is taken and let go.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let job = cluster.job(
        "notified",
        &[
            "lava-test-case greet --shell echo hello",
            "lava-test-case speed --result pass --measurement 42 --units mb/s",
        ],
    );
    with_notify(
        &job,
        &format!(
            "notify:
  criteria: {{status: finished}}
  verbosity: verbose
  recipients:
  - to: {{method: email, email: ci@example.com}}
  - to: {{method: email, user: admin}}
  callbacks:
  - url: http://127.0.0.1:{port}/node/68a6f0e1
    method: POST
    token: ci-api-token
    dataset: all
    content-type: json
  - url: http://127.0.0.1:{port}/get/{{ID}}/{{STATUS_STRING}}
    dataset: minimal
"
        ),
    );
    let wait_dir = cluster.dir.mkdir("wait");
    let mut wait_running = Basalt::program(
        "lavacli",
        [
            "-i", "basalt", "events", "wait", "device", "sim-01", "--state", "RUNNING",
        ],
    )
    .env("XDG_CONFIG_HOME", &lavacli_config)
    .spawn(&wait_dir);
    wait_for("lavacli events wait to connect", LONG, || {
        std::fs::read_to_string(wait_dir.join("spawned.stdout"))
            .unwrap_or_default()
            .contains("Connecting to")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let _slave = cluster.start_slave();
    let id = cluster.submit(&job);
    cluster.wait_state(id, "finished", LONG);

    // Attempts are recorded while the receiver is down.
    let notifications = || -> Value {
        let url = format!("{}/api/v1/jobs/{id}/notifications", cluster.url());
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        serde_json::from_str(&text).unwrap()
    };
    wait_for("both callbacks to fail once", LONG, || {
        let n = notifications();
        let failed = n
            .as_array()?
            .iter()
            .filter(|c| c["kind"] == "callback" && c["attempts"].as_u64() >= Some(1))
            .count();
        (failed == 2).then_some(())
    });
    let before = notifications();
    let callback = &before[0];
    assert_eq!(callback["state"], "pending", "{before}");
    assert!(
        callback["last_error"]
            .as_str()
            .unwrap()
            .contains("onnection refused"),
        "{before}"
    );
    assert_eq!(callback["spec"]["token"], "********", "{before}");

    // It comes back: both callbacks arrive.
    let requests = receive(TcpListener::bind(("127.0.0.1", port)).unwrap(), 2);
    let mut got: Vec<Received> = (0..2)
        .map(|_| requests.recv_timeout(LONG).expect("a callback"))
        .collect();
    got.sort_by_key(|r| r.request_line.clone());
    let (get, post) = (&got[0], &got[1]);
    assert_eq!(
        get.request_line,
        format!("GET /get/{id}/complete HTTP/1.1"),
        "{get:?}"
    );
    assert!(get.body.is_empty() && get.header("authorization").is_none());
    assert_eq!(post.request_line, "POST /node/68a6f0e1 HTTP/1.1");
    assert_eq!(post.header("authorization"), Some("s3cret-value"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(
        (&body["status"], &body["status_string"]),
        (&Value::from(2), &Value::from("complete"))
    );
    assert_eq!(body["state_string"], "Finished");
    assert_eq!(body["health_string"], "Complete");
    assert_eq!(body["submitter_username"], "admin");
    assert_eq!(body["submitter_email"], "admin@lab.example");
    assert_eq!(body["actual_device_id"], "sim-01");
    assert!(body["definition"].as_str().unwrap().contains("callbacks:"));
    assert!(body["log"].as_str().unwrap().contains("hello"));
    // PyYAML reads each suite's cases.
    let results = serde_json::to_string(&body["results"]).unwrap();
    let parsed = Basalt::program(
        "python3",
        [
            "-c",
            "import json, sys, yaml\n\
             suites = json.loads(sys.argv[1])\n\
             print(json.dumps({s: [(c['name'], c['result'], c['measurement']) for c in yaml.safe_load(t)] for s, t in suites.items()}))",
            &results,
        ],
    )
    .run()
    .success();
    let cases: Value = serde_json::from_str(&parsed.stdout).unwrap();
    let suite = cases
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.as_str() != "lava")
        .map(|(_, cases)| cases.clone())
        .expect("the test suite");
    assert!(
        suite
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["greet", "pass", "None"])),
        "{cases}"
    );
    assert!(
        suite
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["speed", "pass", "42"]))
            || suite.to_string().contains("\"42"),
        "{cases}"
    );
    assert!(cases["lava"].to_string().contains("job"), "{cases}");
    wait_for("the callbacks to be recorded as sent", LONG, || {
        let n = notifications();
        n.as_array()?
            .iter()
            .filter(|c| c["kind"] == "callback")
            .all(|c| c["state"] == "sent" && c["last_status"] == 200)
            .then_some(())
    });

    // The job's page shows them, at LAVA's address too.
    let page = ureq::get(&format!("{}/scheduler/job/{id}", cluster.url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("<h2>Notifications</h2>"), "{page}");
    assert!(
        page.contains(&format!("http://127.0.0.1:{port}/node/68a6f0e1")),
        "{page}"
    );

    // The e-mails: the address given, and the user's.
    let (to, mail) = mails.recv_timeout(LONG).expect("an e-mail");
    let (other, _) = mails.recv_timeout(LONG).expect("a second e-mail");
    let mut addresses = [to.clone(), other];
    addresses.sort();
    assert_eq!(addresses, ["admin@lab.example", "ci@example.com"]);
    assert!(
        mail.contains(&format!(
            "Subject: LAVA notification for Test Job {id} notified"
        )),
        "{mail}"
    );
    assert!(
        mail.contains(&format!(
            "The job with ID # {id} is now in state Finished and health Complete."
        )),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("http://lab.example/scheduler/job/{id}")),
        "{mail}"
    );
    assert!(mail.contains("Test Case greet: Test passed"), "{mail}");

    // The event stream saw the job through.
    let seen_by_sub = wait_for("the ZMQ subscriber to see the job finish", LONG, || {
        let text = std::fs::read_to_string(sub_dir.join("spawned.stdout")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Vec<String>>(l).ok())
            .any(|f| {
                f[0] == "org.lavasoftware.testjob"
                    && serde_json::from_str::<Value>(&f[4]).is_ok_and(|d| {
                        d["job"] == id && d["state"] == "Finished" && d["health"] == "Complete"
                    })
            })
            .then_some(text)
    });
    assert!(
        seen_by_sub.contains("org.lavasoftware.device"),
        "{seen_by_sub}"
    );
    // The slave came online after the subscriber connected.
    let worker_online = seen_by_sub
        .lines()
        .filter_map(|l| serde_json::from_str::<Vec<String>>(l).ok())
        .any(|f| {
            f[0] == "org.lavasoftware.worker"
                && f[3] == "lavaserver"
                && serde_json::from_str::<Value>(&f[4]).is_ok_and(|d| d["state"] == "Online")
        });
    assert!(worker_online, "{seen_by_sub}");
    let seen_by_lavacli = wait_for("lavacli events listen to print the job's end", LONG, || {
        let text = std::fs::read_to_string(listen_dir.join("spawned.stdout")).unwrap_or_default();
        text.contains(&format!(
            "org.lavasoftware.testjob admin - [{id}] <sim-01> state=Finished health=Complete"
        ))
        .then_some(text)
    });
    assert!(
        seen_by_lavacli.contains(&format!("[{id}] <sim-01> state=Running")),
        "{seen_by_lavacli}"
    );
    // lavacli events wait device returned when the board ran the job.
    let waited = wait_for("lavacli events wait to return", LONG, || {
        wait_running.try_wait().unwrap()
    });
    assert!(waited.success(), "lavacli events wait: {waited}");
    let _ = listen.kill();
    let _ = subscriber.kill();
    let _ = listen.wait();
    let _ = subscriber.wait();
}
