//! `basalt slave` against a stand-in LAVA master (bound with Basalt's own transport, which
//! offers no Basalt features): the slave speaks LAVA's protocol 3 — HELLO, START/START_OK,
//! log lines pushed to the log socket, END with an xz description — and survives garbage.

use std::time::{Duration, Instant};

use basalt::transport::{ControlMessage, Incoming, JobFiles, MasterSockets, FEATURE_ACKED_LOGS};
use basalt_e2e::cluster::{wait_for, Cluster};

/// The stand-in master's inbox: control messages not yet looked at, and every log line.
#[derive(Default)]
struct Inbox {
    control: std::collections::VecDeque<(String, ControlMessage)>,
    logs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Inbox {
    /// Receives whatever is ready, keeping everything.
    fn poll(&mut self, master: &MasterSockets) {
        for incoming in master.poll(Duration::from_millis(100)) {
            match incoming {
                Incoming::Control { peer, frames, .. } => {
                    if let Ok(message) = ControlMessage::decode(&frames) {
                        self.control.push_back((peer, message));
                    }
                }
                Incoming::Log { frames, .. } if frames.len() == 2 => {
                    self.logs.push((frames[0].clone(), frames[1].clone()))
                }
                _ => {}
            }
        }
    }
}

/// A stand-in LAVA master on ports the kernel picks, where the cluster's slave connects.
fn stand_in_master(cluster: &mut Cluster) -> MasterSockets {
    let master = MasterSockets::bind("tcp://127.0.0.1:*", "tcp://127.0.0.1:*").unwrap();
    let (control, log) = master.ports().unwrap();
    cluster.listen_on(control, log);
    master
}

/// Waits until `want` picks a control message (those before it are dropped).
fn expect<T>(
    master: &MasterSockets,
    inbox: &mut Inbox,
    what: &str,
    mut want: impl FnMut(&str, ControlMessage) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        while let Some((peer, message)) = inbox.control.pop_front() {
            if let Some(found) = want(&peer, message) {
                return found;
            }
        }
        inbox.poll(master);
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_slave_runs_a_job_for_a_lava_master_and_shrugs_off_garbage() {
    let mut cluster = Cluster::new();
    let master = stand_in_master(&mut cluster);
    let _slave = cluster.start_slave();
    let mut inbox = Inbox::default();
    let offered = expect(
        &master,
        &mut inbox,
        "HELLO",
        |peer, message| match message {
            ControlMessage::Hello {
                protocol: 3,
                features,
                ..
            } if peer == "w1" => Some(features),
            _ => None,
        },
    );
    assert!(offered.iter().any(|f| f == FEATURE_ACKED_LOGS));
    // A LAVA master's answer: no features.
    master.send("w1", &ControlMessage::HelloOk { features: vec![] });

    for garbage in [
        vec![],
        vec![b"\xff\xfe".to_vec()],
        vec![b"START".to_vec(), b"1".to_vec()],
        vec![b"PONG".to_vec(), b"soon".to_vec()],
        vec![b"START_OK".to_vec(), b"1".to_vec()],
        vec![b"CANCEL".to_vec()],
    ] {
        master.send_frames("w1", garbage);
    }
    // Still answering: STATUS of a job it never had is an END with no description.
    master.send("w1", &ControlMessage::Status { job: 77 });
    let (stderr, description) = expect(&master, &mut inbox, "END 77", |_, message| match message {
        ControlMessage::End {
            job: 77,
            stderr,
            description,
            ..
        } => Some((stderr, description)),
        _ => None,
    });
    assert!(stderr.is_empty() && description.is_empty());

    // A whole job, LAVA style.
    let job = cluster.job("lava-style", &["lava-test-case ok --shell true"]);
    let device = cluster.rendered_board();
    let files = JobFiles {
        job: std::fs::read_to_string(&job).unwrap(),
        device,
        ..Default::default()
    };
    for _ in 0..2 {
        // A repeated START is answered, never run twice.
        master.send(
            "w1",
            &ControlMessage::Start {
                job: 5,
                files: files.clone(),
            },
        );
        expect(&master, &mut inbox, "START_OK 5", |_, message| {
            (message == ControlMessage::StartOk { job: 5 }).then_some(())
        });
    }
    let description = expect(&master, &mut inbox, "END 5", |_, message| match message {
        ControlMessage::End {
            job: 5,
            description,
            log_bytes,
            ..
        } => {
            assert_eq!(log_bytes, None, "no Basalt frames towards a LAVA master");
            Some(description)
        }
        _ => None,
    });
    assert!(description.starts_with(b"\xfd7zXZ\x00"), "END carries xz");
    master.send("w1", &ControlMessage::EndOk { job: 5 });
    // Log lines went to the log socket as LAVA's lava-run sends them; the last one may
    // arrive after END, which travels on the other socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = |inbox: &Inbox| {
        inbox
            .logs
            .iter()
            .any(|(_, l)| String::from_utf8_lossy(l).contains("Job finished"))
    };
    while Instant::now() < deadline && !last(&inbox) {
        inbox.poll(&master);
    }
    let logs = std::mem::take(&mut inbox.logs);
    assert!(!logs.is_empty(), "no log lines on the log socket");
    assert!(logs
        .iter()
        .all(|(id, line)| id == b"5" && line.starts_with(b"{")));
    let text: Vec<String> = logs
        .iter()
        .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        text.iter().any(|l| l.contains("\"results\"")
            && l.contains("\"case\": \"ok\"")
            && l.contains("pass")),
        "{text:#?}"
    );
    // The slave files the job away just after END_OK reaches it.
    let finished = cluster.state_dir().join("finished");
    let started = wait_for(
        "the slave to file the job away",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(&finished)
                .ok()
                .map(|dir| dir.count())
                .filter(|&n| n > 0)
        },
    );
    assert_eq!(started, 1, "the job ran once and was cleared after END_OK");

    // A job process that fails before its job starts: END carries what it printed on stderr,
    // as LAVA's slave sends lava-run's.
    master.send(
        "w1",
        &ControlMessage::Start {
            job: 6,
            files: JobFiles {
                device: "not: [a device".into(),
                ..files
            },
        },
    );
    let stderr = expect(&master, &mut inbox, "END 6", |_, message| match message {
        ControlMessage::End { job: 6, stderr, .. } => Some(stderr),
        _ => None,
    });
    assert!(stderr.contains("device.yaml"), "END's stderr: {stderr:?}");
}

/// The stand-in master's side of a job: answers HELLO, PING and END, keeps every log line,
/// until `done` says so or 90 s pass.
fn serve_lava(master: &MasterSockets, inbox: &mut Inbox, mut done: impl FnMut(&Inbox) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && !done(inbox) {
        inbox.poll(master);
        while let Some((peer, message)) = inbox.control.pop_front() {
            let answer = match message {
                ControlMessage::Hello { .. } => ControlMessage::HelloOk { features: vec![] },
                ControlMessage::Ping => ControlMessage::Pong { interval: 1 },
                ControlMessage::End { job, .. } => ControlMessage::EndOk { job },
                _ => continue,
            };
            master.send(&peer, &answer);
        }
    }
    assert!(done(inbox), "the job's log never completed");
}

/// A slave restarted during a job for a LAVA master (which acknowledges no log line) resumes
/// pushing after what the old one pushed: no line reaches the master twice.
#[test]
fn a_restarted_slave_pushes_no_line_twice_to_a_lava_master() {
    let mut cluster = Cluster::new();
    let master = stand_in_master(&mut cluster);
    let slave = cluster.start_slave();
    let mut inbox = Inbox::default();
    expect(&master, &mut inbox, "HELLO", |_, message| {
        matches!(message, ControlMessage::Hello { .. }).then_some(())
    });
    master.send("w1", &ControlMessage::HelloOk { features: vec![] });
    let job = cluster.job(
        "numbered",
        &[
            "for i in $(seq 1 20); do echo numbered-$i; sleep 0.2; done",
            "lava-test-case after --result pass",
        ],
    );
    let device = cluster.rendered_board();
    master.send(
        "w1",
        &ControlMessage::Start {
            job: 9,
            files: JobFiles {
                job: std::fs::read_to_string(&job).unwrap(),
                device,
                ..Default::default()
            },
        },
    );
    let has = |inbox: &Inbox, needle: &str| {
        inbox
            .logs
            .iter()
            .any(|(_, l)| String::from_utf8_lossy(l).contains(needle))
    };
    // The board's own line ("numbered-5" as a whole message), not run.sh's `set -x` trace of
    // the echo: the kill then lands in the sleep between lines.
    serve_lava(&master, &mut inbox, |inbox| has(inbox, "\"numbered-5\""));
    slave.kill();
    let _slave = cluster.start_slave();
    serve_lava(&master, &mut inbox, |inbox| has(inbox, "Job finished"));
    let lines: Vec<String> = inbox
        .logs
        .iter()
        .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
        .collect();
    let unique: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(
        unique.len(),
        lines.len(),
        "a line was pushed twice: {lines:#?}"
    );
    for i in 1..=20 {
        let echoed = format!("\"numbered-{i}\"");
        assert!(
            lines.iter().any(|l| l.contains(&echoed)),
            "numbered-{i} is missing"
        );
    }
}
