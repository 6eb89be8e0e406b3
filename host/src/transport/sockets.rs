//! The ZMQ sockets of both daemons. Nothing outside this file touches libzmq.
//!
//! The master binds a ROUTER (control, identity `master`, handover on, as LAVA's) and a PULL
//! (LAVA's lava-run log lines), plus an in-process PULL that other threads poke through a
//! [`Waker`] when something changed that the control loop must act on (a job submitted or
//! canceled, a device freed). A Basalt slave connects a DEALER whose identity is its name —
//! wire-compatible with LAVA's ROUTER-with-CONNECT_RID slave — and, only towards a LAVA
//! master, a PUSH to the log socket ([`LogPusher`]).
//!
//! Sends never block: a message that cannot be queued is dropped and counted on, as every
//! message that matters is re-sent until acknowledged.

use std::sync::Mutex;
use std::time::Duration;

use super::protocol::ControlMessage;

/// The largest message either daemon accepts; a peer announcing more is disconnected by
/// libzmq before anything is allocated.
const MAX_MESSAGE_BYTES: i64 = 256 * 1024 * 1024;

/// Where the master's wake-up socket lives.
const WAKE_ENDPOINT: &str = "inproc://basalt-master-wake";

/// How many messages one poll drains from a socket before looking at the others.
const DRAIN_BATCH: usize = 4096;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{what} {endpoint}: {source}")]
pub struct TransportError {
    what: &'static str,
    endpoint: String,
    #[source]
    source: zmq::Error,
}

fn with_endpoint<T>(
    result: Result<T, zmq::Error>,
    what: &'static str,
    endpoint: &str,
) -> Result<T, TransportError> {
    result.map_err(|source| TransportError {
        what,
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// Something the master's sockets received.
#[derive(Debug)]
pub enum Incoming {
    /// A control message's frames from a slave (routing frame removed).
    Control {
        /// The slave's identity (its worker name).
        peer: String,
        /// The frames after the routing frame.
        frames: Vec<Vec<u8>>,
    },
    /// A control message from a peer whose identity is not text: dropped by the caller.
    BadPeer {
        /// The raw identity.
        peer: Vec<u8>,
    },
    /// A LAVA log message (`[job id, YAML line]`).
    Log {
        /// Its frames.
        frames: Vec<Vec<u8>>,
    },
    /// Another thread asked the control loop to look at the database again.
    Wake,
}

/// The master's bound sockets.
pub struct MasterSockets {
    // Declared first so the sockets close before the context is dropped.
    control: zmq::Socket,
    logs: zmq::Socket,
    wake: zmq::Socket,
    context: zmq::Context,
}

impl MasterSockets {
    /// Binds the control ROUTER and the log PULL (`tcp://HOST:PORT` endpoints).
    pub fn bind(control_endpoint: &str, log_endpoint: &str) -> Result<Self, TransportError> {
        let context = zmq::Context::new();
        let control = context_socket(&context, zmq::ROUTER, control_endpoint)?;
        let setup = || -> Result<(), zmq::Error> {
            control.set_identity(b"master")?;
            control.set_router_handover(true)?;
            control.set_linger(0)?;
            control.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
            control.set_sndhwm(10_000)?;
            control.set_rcvhwm(10_000)?;
            control.bind(control_endpoint)
        };
        with_endpoint(
            setup(),
            "cannot bind the control socket on",
            control_endpoint,
        )?;
        let logs = context_socket(&context, zmq::PULL, log_endpoint)?;
        let setup = || -> Result<(), zmq::Error> {
            logs.set_linger(0)?;
            logs.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
            logs.bind(log_endpoint)
        };
        with_endpoint(setup(), "cannot bind the log socket on", log_endpoint)?;
        let wake = context_socket(&context, zmq::PULL, WAKE_ENDPOINT)?;
        with_endpoint(wake.bind(WAKE_ENDPOINT), "cannot bind", WAKE_ENDPOINT)?;
        Ok(Self {
            control,
            logs,
            wake,
            context,
        })
    }

    /// A handle other threads use to wake the control loop.
    pub fn waker(&self) -> Result<Waker, TransportError> {
        let socket = context_socket(&self.context, zmq::PUSH, WAKE_ENDPOINT)?;
        with_endpoint(socket.set_sndhwm(1), "cannot configure", WAKE_ENDPOINT)?;
        with_endpoint(
            socket.connect(WAKE_ENDPOINT),
            "cannot connect",
            WAKE_ENDPOINT,
        )?;
        Ok(Waker {
            socket: Mutex::new(socket),
        })
    }

    /// Waits up to `timeout` for traffic and returns everything that is ready (at most a
    /// few thousand messages per socket, so one busy peer cannot starve the rest).
    pub fn poll(&self, timeout: Duration) -> Vec<Incoming> {
        let mut items = [
            self.control.as_poll_item(zmq::POLLIN),
            self.logs.as_poll_item(zmq::POLLIN),
            self.wake.as_poll_item(zmq::POLLIN),
        ];
        let millis = timeout.as_millis().min(i64::MAX as u128) as i64;
        if zmq::poll(&mut items, millis).is_err() {
            // EINTR (a signal): the caller's loop checks its flags and polls again.
            return Vec::new();
        }
        let ready = [
            items[0].is_readable(),
            items[1].is_readable(),
            items[2].is_readable(),
        ];
        let mut incoming = Vec::new();
        if ready[0] {
            for mut frames in drain(&self.control) {
                if frames.is_empty() {
                    continue;
                }
                let peer = frames.remove(0);
                incoming.push(match String::from_utf8(peer) {
                    Ok(peer) => Incoming::Control { peer, frames },
                    Err(e) => Incoming::BadPeer {
                        peer: e.into_bytes(),
                    },
                });
            }
        }
        if ready[1] {
            incoming.extend(
                drain(&self.logs)
                    .into_iter()
                    .map(|frames| Incoming::Log { frames }),
            );
        }
        if ready[2] && !drain(&self.wake).is_empty() {
            incoming.push(Incoming::Wake);
        }
        incoming
    }

    /// Sends raw frames to a peer, valid or not (for tests and benchmarks that play a
    /// misbehaving master).
    pub fn send_frames(&self, peer: &str, frames: Vec<Vec<u8>>) -> bool {
        let mut all = vec![peer.as_bytes().to_vec()];
        all.extend(frames);
        self.control.send_multipart(all, zmq::DONTWAIT).is_ok()
    }

    /// Sends a message to a slave. False if it could not be queued (the peer is not
    /// connected, or its queue is full); re-sends recover.
    pub fn send(&self, peer: &str, message: &ControlMessage) -> bool {
        let mut frames = message.encode();
        frames.insert(0, peer.as_bytes().to_vec());
        self.control.send_multipart(frames, zmq::DONTWAIT).is_ok()
    }
}

fn context_socket(
    context: &zmq::Context,
    kind: zmq::SocketType,
    endpoint: &str,
) -> Result<zmq::Socket, TransportError> {
    with_endpoint(context.socket(kind), "cannot create a socket for", endpoint)
}

/// Receives every message ready on `socket`, up to [`DRAIN_BATCH`].
fn drain(socket: &zmq::Socket) -> Vec<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    while messages.len() < DRAIN_BATCH {
        match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => messages.push(frames),
            Err(_) => break,
        }
    }
    messages
}

/// Wakes the master's control loop from another thread.
pub struct Waker {
    socket: Mutex<zmq::Socket>,
}

impl Waker {
    /// Asks the control loop to look at the database again. Wake-ups coalesce: if one is
    /// already pending, this one is dropped.
    pub fn wake(&self) {
        if let Ok(socket) = self.socket.lock() {
            let _ = socket.send(&b""[..], zmq::DONTWAIT);
        }
    }
}

/// A slave's connection to the master's control socket.
pub struct SlaveSocket {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl SlaveSocket {
    /// Connects to `endpoint` (`tcp://HOST:PORT`) presenting `identity`. Returns at once;
    /// libzmq connects (and reconnects) in the background and queues messages meanwhile.
    pub fn connect(endpoint: &str, identity: &str) -> Result<Self, TransportError> {
        let context = zmq::Context::new();
        let socket = context_socket(&context, zmq::DEALER, endpoint)?;
        let setup = || -> Result<(), zmq::Error> {
            socket.set_identity(identity.as_bytes())?;
            socket.set_linger(0)?;
            socket.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
            socket.set_sndhwm(1000)?;
            socket.set_reconnect_ivl(100)?;
            socket.set_reconnect_ivl_max(2000)?;
            socket.connect(endpoint)
        };
        with_endpoint(setup(), "cannot connect to the master at", endpoint)?;
        Ok(Self {
            socket,
            _context: context,
        })
    }

    /// Sends a message. False if it could not be queued; re-sends recover.
    pub fn send(&self, message: &ControlMessage) -> bool {
        self.socket
            .send_multipart(message.encode(), zmq::DONTWAIT)
            .is_ok()
    }

    /// Sends raw frames, valid or not (for tests and benchmarks that play a misbehaving or
    /// simulated slave).
    pub fn send_frames(&self, frames: Vec<Vec<u8>>) -> bool {
        self.socket.send_multipart(frames, zmq::DONTWAIT).is_ok()
    }

    /// Waits up to `timeout` for messages and returns every one that is ready.
    pub fn recv(&self, timeout: Duration) -> Vec<Vec<Vec<u8>>> {
        let millis = timeout.as_millis().min(i64::MAX as u128) as i64;
        match self.socket.poll(zmq::POLLIN, millis) {
            Ok(n) if n > 0 => drain(&self.socket),
            _ => Vec::new(),
        }
    }
}

/// LAVA's log path, used only towards a LAVA master: each line PUSHed as `[job id, line]`.
pub struct LogPusher {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl LogPusher {
    /// Connects to a LAVA master's log socket.
    pub fn connect(endpoint: &str) -> Result<Self, TransportError> {
        let context = zmq::Context::new();
        let socket = context_socket(&context, zmq::PUSH, endpoint)?;
        with_endpoint(socket.set_linger(0), "cannot configure", endpoint)?;
        with_endpoint(
            socket.connect(endpoint),
            "cannot connect the log socket to",
            endpoint,
        )?;
        Ok(Self {
            socket,
            _context: context,
        })
    }

    /// Sends raw frames, valid or not (for tests).
    pub fn send_frames(&self, frames: Vec<Vec<u8>>) -> bool {
        self.socket.send_multipart(frames, zmq::DONTWAIT).is_ok()
    }

    /// Queues one log line (without the `- ` list prefix). False if the queue is full.
    pub fn push(&self, job: u64, line: &[u8]) -> bool {
        self.socket
            .send_multipart([job.to_string().into_bytes(), line.to_vec()], zmq::DONTWAIT)
            .is_ok()
    }
}

/// Wait a little: used by tests of this module.
#[cfg(test)]
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn a_slave_and_the_master_exchange_messages_by_identity() {
        let (control, logs) = (free_port(), free_port());
        let control = format!("tcp://127.0.0.1:{control}");
        let master = MasterSockets::bind(&control, &format!("tcp://127.0.0.1:{logs}")).unwrap();
        let slave = SlaveSocket::connect(&control, "worker-1").unwrap();
        assert!(slave.send(&ControlMessage::Ping));
        let mut got = Vec::new();
        for _ in 0..50 {
            got.extend(master.poll(Duration::from_millis(100)));
            if !got.is_empty() {
                break;
            }
        }
        let Some(Incoming::Control { peer, frames }) = got.pop() else {
            panic!("nothing received: {got:?}");
        };
        assert_eq!(peer, "worker-1");
        assert_eq!(frames, vec![b"PING".to_vec()]);
        assert!(master.send("worker-1", &ControlMessage::Pong { interval: 20 }));
        let reply = slave.recv(Duration::from_secs(5));
        assert_eq!(reply, vec![vec![b"PONG".to_vec(), b"20".to_vec()]]);
        // A message to nobody is dropped, not an error that stops the master.
        master.send("nobody", &ControlMessage::Ping);
        let waker = master.waker().unwrap();
        waker.wake();
        waker.wake();
        settle();
        let woken = master.poll(Duration::from_secs(1));
        assert!(matches!(woken.as_slice(), [Incoming::Wake]), "{woken:?}");
    }

    #[test]
    fn binding_a_taken_port_names_the_socket_and_endpoint() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        let error = MasterSockets::bind(&endpoint, "tcp://127.0.0.1:0")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("control socket") && error.contains(&endpoint),
            "{error}"
        );
    }
}
#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn messages_after_the_first_reply_arrive_in_order() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        let master = MasterSockets::bind(&endpoint, "tcp://127.0.0.1:0").unwrap();
        let slave = SlaveSocket::connect(&endpoint, "w1").unwrap();
        slave.send(&ControlMessage::Ping);
        let mut got = Vec::new();
        while got.is_empty() {
            got = master.poll(Duration::from_millis(100));
        }
        assert!(master.send("w1", &ControlMessage::HelloOk { features: vec![] }));
        assert!(master.send_frames("w1", vec![b"\xff".to_vec()]));
        assert!(master.send("w1", &ControlMessage::Status { job: 77 }));
        let mut received = Vec::new();
        for _ in 0..20 {
            received.extend(slave.recv(Duration::from_millis(100)));
        }
        assert_eq!(received.len(), 3, "{received:?}");
    }
}
