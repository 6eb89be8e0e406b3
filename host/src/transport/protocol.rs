//! LAVA's control messages (protocol version 3), frame for frame.
//!
//! Frames are what a ROUTER application sees after the routing frame: `[action, args...]`.
//! Every frame is UTF-8 text except END's last one (an xz-compressed `description.yaml`),
//! and job ids are decimal ASCII. Extra trailing frames are ignored as LAVA ignores them
//! (a 2020.04+ HELLO carries the LAVA version as a third frame, which is kept), except for
//! START, which must have exactly its six frames after the action.
//!
//! Basalt's additions are negotiated, never assumed: a Basalt slave lists the features it
//! offers in a fourth HELLO frame (after the version, which LAVA's master stores and whose
//! followers it ignores), and a Basalt master answers with the ones it accepts in an extra
//! HELLO_OK frame (which LAVA's slave ignores). Only when both sides named
//! [`FEATURE_ACKED_LOGS`] do LOGS and LOGS_OK travel.

use std::fmt;

/// The protocol version HELLO carries.
pub const PROTOCOL_VERSION: u32 = 3;

/// Job logs travel on the control socket as byte ranges the master acknowledges (LOGS /
/// LOGS_OK), instead of LAVA's unacknowledged PUSH to the log socket.
pub const FEATURE_ACKED_LOGS: &str = "acked-logs/1";

/// The files START hands a slave for one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFiles {
    /// The job definition (YAML).
    pub job: String,
    /// The rendered device configuration (YAML).
    pub device: String,
    /// The worker's dispatcher configuration (YAML, may be empty).
    pub dispatcher: String,
    /// Environment for the job process (YAML, may be empty).
    pub env: String,
    /// Environment for the device under test (YAML, may be empty).
    pub env_dut: String,
}

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Slave → master, once after connecting: the protocol version, and (2020.04+) the
    /// slave's version.
    Hello {
        /// The protocol version the slave speaks.
        protocol: u32,
        /// The slave's software version, if sent.
        version: Option<String>,
        /// Basalt features the slave offers (none from a LAVA slave).
        features: Vec<String>,
    },
    /// Slave → master, every few seconds until HELLO_OK.
    HelloRetry {
        /// The protocol version the slave speaks.
        protocol: u32,
        /// The slave's software version, if sent.
        version: Option<String>,
        /// Basalt features the slave offers.
        features: Vec<String>,
    },
    /// Master → slave: the connection is established.
    HelloOk {
        /// The offered features the master accepts (none from a LAVA master).
        features: Vec<String>,
    },
    /// Slave → master: a sign of life.
    Ping,
    /// Master → slave: the answer to PING, with the ping interval in seconds.
    Pong {
        /// Seconds between pings.
        interval: u32,
    },
    /// Master → slave: run this job.
    Start {
        /// The job id.
        job: u64,
        /// What the job needs.
        files: JobFiles,
    },
    /// Slave → master: the job runs (also the answer to a repeated START or a STATUS).
    StartOk {
        /// The job id.
        job: u64,
    },
    /// Slave → master: the job's process ended.
    End {
        /// The job id.
        job: u64,
        /// What the job process printed on stderr.
        stderr: String,
        /// The job's `description.yaml`, xz-compressed (empty when it crashed).
        description: Vec<u8>,
        /// (acked-logs) The length of the job's whole log: the master finishes the job only
        /// once it holds all of it. A fifth frame, which LAVA's master ignores.
        log_bytes: Option<u64>,
    },
    /// Master → slave: END received; the slave may forget the job.
    EndOk {
        /// The job id.
        job: u64,
    },
    /// Master → slave: stop this job.
    Cancel {
        /// The job id.
        job: u64,
    },
    /// Master → slave: what became of this job? (sent by a restarted master)
    Status {
        /// The job id.
        job: u64,
    },
    /// Slave → master (acked-logs): bytes of a job's log starting at `offset`, whole lines
    /// only. Empty `data` asks how much the master holds.
    Logs {
        /// The job id.
        job: u64,
        /// Where `data` starts in the job's log.
        offset: u64,
        /// Complete log lines.
        data: Vec<u8>,
    },
    /// Master → slave (acked-logs): how many bytes of the job's log the master holds durably.
    LogsOk {
        /// The job id.
        job: u64,
        /// Bytes stored.
        stored: u64,
    },
}

/// Why received frames are not a valid control message. Daemons log it and drop the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// No frames at all.
    Empty,
    /// A frame that must be text is not UTF-8.
    NotText {
        /// Which frame (0 = the action).
        frame: usize,
    },
    /// An action nobody knows.
    UnknownAction(String),
    /// Fewer frames than the action needs.
    MissingFrames {
        /// The action.
        action: &'static str,
        /// How many it needs (after the action).
        needed: usize,
        /// How many came.
        got: usize,
    },
    /// START with more frames than it has.
    TooManyFrames {
        /// The action.
        action: &'static str,
        /// How many came (after the action).
        got: usize,
    },
    /// A job id, protocol version or interval that is not a decimal number.
    BadNumber {
        /// The action.
        action: &'static str,
        /// What came instead.
        value: String,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty message"),
            Self::NotText { frame } => write!(f, "frame {frame} is not UTF-8 text"),
            Self::UnknownAction(action) => write!(f, "unknown action {action:?}"),
            Self::MissingFrames {
                action,
                needed,
                got,
            } => write!(
                f,
                "{action} needs {needed} frame(s) after the action, got {got}"
            ),
            Self::TooManyFrames { action, got } => {
                write!(
                    f,
                    "{action} has {got} frame(s) after the action, more than it takes"
                )
            }
            Self::BadNumber { action, value } => {
                write!(f, "{action}: {value:?} is not a decimal number")
            }
        }
    }
}

impl std::error::Error for FrameError {}

fn text(frames: &[Vec<u8>], index: usize) -> Result<&str, FrameError> {
    std::str::from_utf8(&frames[index]).map_err(|_| FrameError::NotText { frame: index })
}

fn number<T: std::str::FromStr>(
    frames: &[Vec<u8>],
    index: usize,
    action: &'static str,
) -> Result<T, FrameError> {
    let value = text(frames, index)?;
    // Plain decimal digits only: no sign, no spaces, as Python's int() of these frames.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::BadNumber {
            action,
            value: value.to_owned(),
        });
    }
    value.parse().map_err(|_| FrameError::BadNumber {
        action,
        value: value.to_owned(),
    })
}

fn need(frames: &[Vec<u8>], action: &'static str, needed: usize) -> Result<(), FrameError> {
    let got = frames.len() - 1;
    if got < needed {
        return Err(FrameError::MissingFrames {
            action,
            needed,
            got,
        });
    }
    Ok(())
}

impl ControlMessage {
    /// The action name as sent on the wire.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "HELLO",
            Self::HelloRetry { .. } => "HELLO_RETRY",
            Self::HelloOk { .. } => "HELLO_OK",
            Self::Ping => "PING",
            Self::Pong { .. } => "PONG",
            Self::Start { .. } => "START",
            Self::StartOk { .. } => "START_OK",
            Self::End { .. } => "END",
            Self::EndOk { .. } => "END_OK",
            Self::Cancel { .. } => "CANCEL",
            Self::Status { .. } => "STATUS",
            Self::Logs { .. } => "LOGS",
            Self::LogsOk { .. } => "LOGS_OK",
        }
    }

    /// Reads a message from its frames (without the routing frame).
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, FrameError> {
        if frames.is_empty() {
            return Err(FrameError::Empty);
        }
        let action = text(frames, 0)?;
        let job = |name: &'static str| -> Result<u64, FrameError> {
            need(frames, name, 1)?;
            number(frames, 1, name)
        };
        let features = |index: usize| -> Result<Vec<String>, FrameError> {
            Ok(match frames.get(index) {
                Some(_) => text(frames, index)?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            })
        };
        type Hello = (u32, Option<String>, Vec<String>);
        let hello = |name: &'static str| -> Result<Hello, FrameError> {
            need(frames, name, 1)?;
            let protocol = number(frames, 1, name)?;
            let version = match frames.get(2) {
                Some(_) => Some(text(frames, 2)?.to_owned()).filter(|v| !v.is_empty()),
                None => None,
            };
            Ok((protocol, version, features(3)?))
        };
        Ok(match action {
            "HELLO" => {
                let (protocol, version, features) = hello("HELLO")?;
                Self::Hello {
                    protocol,
                    version,
                    features,
                }
            }
            "HELLO_RETRY" => {
                let (protocol, version, features) = hello("HELLO_RETRY")?;
                Self::HelloRetry {
                    protocol,
                    version,
                    features,
                }
            }
            "HELLO_OK" => Self::HelloOk {
                features: features(1)?,
            },
            "PING" => Self::Ping,
            "PONG" => {
                need(frames, "PONG", 1)?;
                Self::Pong {
                    interval: number(frames, 1, "PONG")?,
                }
            }
            "START" => {
                need(frames, "START", 6)?;
                if frames.len() - 1 > 6 {
                    return Err(FrameError::TooManyFrames {
                        action: "START",
                        got: frames.len() - 1,
                    });
                }
                Self::Start {
                    job: number(frames, 1, "START")?,
                    files: JobFiles {
                        job: text(frames, 2)?.to_owned(),
                        device: text(frames, 3)?.to_owned(),
                        dispatcher: text(frames, 4)?.to_owned(),
                        env: text(frames, 5)?.to_owned(),
                        env_dut: text(frames, 6)?.to_owned(),
                    },
                }
            }
            "START_OK" => Self::StartOk {
                job: job("START_OK")?,
            },
            "END" => {
                need(frames, "END", 3)?;
                Self::End {
                    job: number(frames, 1, "END")?,
                    stderr: text(frames, 2)?.to_owned(),
                    description: frames[3].clone(),
                    log_bytes: match frames.get(4) {
                        Some(_) => Some(number(frames, 4, "END")?),
                        None => None,
                    },
                }
            }
            "END_OK" => Self::EndOk {
                job: job("END_OK")?,
            },
            "CANCEL" => Self::Cancel {
                job: job("CANCEL")?,
            },
            "STATUS" => Self::Status {
                job: job("STATUS")?,
            },
            "LOGS" => {
                need(frames, "LOGS", 3)?;
                Self::Logs {
                    job: number(frames, 1, "LOGS")?,
                    offset: number(frames, 2, "LOGS")?,
                    data: frames[3].clone(),
                }
            }
            "LOGS_OK" => {
                need(frames, "LOGS_OK", 2)?;
                Self::LogsOk {
                    job: number(frames, 1, "LOGS_OK")?,
                    stored: number(frames, 2, "LOGS_OK")?,
                }
            }
            other => return Err(FrameError::UnknownAction(other.to_owned())),
        })
    }

    /// The frames to send (without the routing frame).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        let mut frames = vec![self.action().as_bytes().to_vec()];
        let mut push = |text: &str| frames.push(text.as_bytes().to_vec());
        match self {
            Self::Hello {
                protocol,
                version,
                features,
            }
            | Self::HelloRetry {
                protocol,
                version,
                features,
            } => {
                push(&protocol.to_string());
                if version.is_some() || !features.is_empty() {
                    push(version.as_deref().unwrap_or(""));
                }
                if !features.is_empty() {
                    push(&features.join(" "));
                }
            }
            Self::HelloOk { features } => {
                if !features.is_empty() {
                    push(&features.join(" "));
                }
            }
            Self::Ping => {}
            Self::Logs { job, offset, data } => {
                push(&job.to_string());
                push(&offset.to_string());
                frames.push(data.clone());
            }
            Self::LogsOk { job, stored } => {
                push(&job.to_string());
                push(&stored.to_string());
            }
            Self::Pong { interval } => push(&interval.to_string()),
            Self::Start { job, files } => {
                push(&job.to_string());
                push(&files.job);
                push(&files.device);
                push(&files.dispatcher);
                push(&files.env);
                push(&files.env_dut);
            }
            Self::StartOk { job }
            | Self::EndOk { job }
            | Self::Cancel { job }
            | Self::Status { job } => push(&job.to_string()),
            Self::End {
                job,
                stderr,
                description,
                log_bytes,
            } => {
                push(&job.to_string());
                push(stderr);
                frames.push(description.clone());
                if let Some(bytes) = log_bytes {
                    frames.push(bytes.to_string().into_bytes());
                }
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.to_vec()).collect()
    }

    #[test]
    fn lavas_captured_messages_decode() {
        assert_eq!(
            ControlMessage::decode(&frames(&[b"HELLO", b"3"])).unwrap(),
            ControlMessage::Hello {
                protocol: 3,
                version: None,
                features: vec![],
            }
        );
        assert_eq!(
            ControlMessage::decode(&frames(&[b"HELLO_RETRY", b"3", b"2020.04"])).unwrap(),
            ControlMessage::HelloRetry {
                protocol: 3,
                version: Some("2020.04".into()),
                features: vec![],
            }
        );
        assert_eq!(
            ControlMessage::decode(&frames(&[b"HELLO_OK"])).unwrap(),
            ControlMessage::HelloOk { features: vec![] }
        );
        assert_eq!(
            ControlMessage::decode(&frames(&[b"PONG", b"20"])).unwrap(),
            ControlMessage::Pong { interval: 20 }
        );
        let start = ControlMessage::decode(&frames(&[
            b"START",
            b"42",
            b"job_name: t\nsleep: 2\n",
            b"hostname: qemu01\nactions: {}\n",
            b"prefix: pfx-\n",
            b"overrides:\n  LAVA_TEST_VAR: hello\n",
            b"overrides:\n  DUT_VAR: x\n",
        ]))
        .unwrap();
        let ControlMessage::Start { job, files } = &start else {
            panic!("not a START: {start:?}");
        };
        assert_eq!(*job, 42);
        assert_eq!(files.dispatcher, "prefix: pfx-\n");
        let end = ControlMessage::decode(&frames(&[b"END", b"42", b"", b"\xfd7zXZ\x00"])).unwrap();
        assert_eq!(
            end,
            ControlMessage::End {
                job: 42,
                stderr: String::new(),
                description: b"\xfd7zXZ\x00".to_vec(),
                log_bytes: None,
            }
        );
    }

    #[test]
    fn every_message_round_trips_frame_for_frame() {
        let messages = vec![
            ControlMessage::Hello {
                protocol: 3,
                version: None,
                features: vec![],
            },
            ControlMessage::Hello {
                protocol: 3,
                version: None,
                features: vec![FEATURE_ACKED_LOGS.into()],
            },
            ControlMessage::HelloRetry {
                protocol: 3,
                version: Some("basalt 0.1".into()),
                features: vec![FEATURE_ACKED_LOGS.into(), "other".into()],
            },
            ControlMessage::HelloOk { features: vec![] },
            ControlMessage::HelloOk {
                features: vec![FEATURE_ACKED_LOGS.into()],
            },
            ControlMessage::Logs {
                job: 7,
                offset: 1024,
                data: b"- {}\n".to_vec(),
            },
            ControlMessage::LogsOk {
                job: 7,
                stored: 1030,
            },
            ControlMessage::Ping,
            ControlMessage::Pong { interval: 20 },
            ControlMessage::Start {
                job: 7,
                files: JobFiles {
                    job: "j".into(),
                    ..Default::default()
                },
            },
            ControlMessage::StartOk { job: 7 },
            ControlMessage::End {
                job: 7,
                stderr: "oops".into(),
                description: vec![0, 255],
                log_bytes: None,
            },
            ControlMessage::End {
                job: 7,
                stderr: String::new(),
                description: vec![],
                log_bytes: Some(4096),
            },
            ControlMessage::EndOk { job: 7 },
            ControlMessage::Cancel { job: 7 },
            ControlMessage::Status { job: 7 },
        ];
        for message in messages {
            let encoded = message.encode();
            assert_eq!(ControlMessage::decode(&encoded).unwrap(), message);
        }
        assert_eq!(
            ControlMessage::HelloOk { features: vec![] }.encode(),
            vec![b"HELLO_OK".to_vec()],
            "a LAVA slave gets exactly LAVA's HELLO_OK when nothing was negotiated"
        );
        assert_eq!(
            ControlMessage::Start {
                job: 1,
                files: JobFiles::default()
            }
            .encode()
            .len(),
            7,
            "START is always the action, the id and five files"
        );
    }

    #[test]
    fn malformed_frames_are_named_errors() {
        let cases: Vec<(Vec<Vec<u8>>, FrameError)> = vec![
            (vec![], FrameError::Empty),
            (frames(&[b"\xff\xfe"]), FrameError::NotText { frame: 0 }),
            (
                frames(&[b"REBOOT"]),
                FrameError::UnknownAction("REBOOT".into()),
            ),
            (
                frames(&[b"START_OK"]),
                FrameError::MissingFrames {
                    action: "START_OK",
                    needed: 1,
                    got: 0,
                },
            ),
            (
                frames(&[b"CANCEL", b"-4"]),
                FrameError::BadNumber {
                    action: "CANCEL",
                    value: "-4".into(),
                },
            ),
            (
                frames(&[b"HELLO", b"three"]),
                FrameError::BadNumber {
                    action: "HELLO",
                    value: "three".into(),
                },
            ),
            (
                frames(&[b"START", b"1", b"j", b"d", b"", b""]),
                FrameError::MissingFrames {
                    action: "START",
                    needed: 6,
                    got: 5,
                },
            ),
            (
                frames(&[b"START", b"1", b"j", b"d", b"", b"", b"", b"extra"]),
                FrameError::TooManyFrames {
                    action: "START",
                    got: 7,
                },
            ),
            (
                frames(&[b"END", b"1", b"\xc3\x28", b""]),
                FrameError::NotText { frame: 2 },
            ),
            (
                frames(&[b"STATUS", b"99999999999999999999999"]),
                FrameError::BadNumber {
                    action: "STATUS",
                    value: "99999999999999999999999".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ControlMessage::decode(&input),
                Err(expected.clone()),
                "{input:?}"
            );
            assert!(!expected.to_string().is_empty());
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        // A small linear congruential generator keeps the test deterministic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize
        };
        let actions: [&[u8]; 6] = [b"START", b"END", b"HELLO", b"PONG", b"CANCEL", b"X"];
        for _ in 0..20_000 {
            let count = next() % 9;
            let mut input: Vec<Vec<u8>> = Vec::new();
            for i in 0..count {
                if i == 0 && next() % 2 == 0 {
                    input.push(actions[next() % actions.len()].to_vec());
                    continue;
                }
                let len = next() % 12;
                input.push((0..len).map(|_| (next() % 256) as u8).collect());
            }
            let _ = ControlMessage::decode(&input);
        }
    }
}
