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
//!
//! With CURVE ([`MasterCurve`], [`ClientCurve`]) both master sockets are CURVE servers behind
//! the allow-list's ZAP handler, every received message carries the [`Sender`] its connection
//! was admitted as, and the control socket refuses a second connection under a name that is
//! connected (no handover, ZMQ heartbeats to drop dead connections), while a monitor reports
//! every admitted connection that closes: the control loop uses both to send a worker's jobs
//! only to a connection that proved to be that worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::curve::{AllowList, Certificate, CurveError, Sender, ZapHandler};
use super::protocol::ControlMessage;

/// The largest message either daemon accepts; a peer announcing more is disconnected by
/// libzmq before anything is allocated. What the protocol carries is far smaller: a LOGS
/// message at most 1 MiB of log, START a job definition (at most 4 MiB) with its device
/// configuration and the worker's files, END a compressed description.
pub const MAX_MESSAGE_BYTES: i64 = 16 * 1024 * 1024;

/// Where the master's wake-up socket lives.
const WAKE_ENDPOINT: &str = "inproc://basalt-master-wake";
/// Where the control socket's connection events are published.
const MONITOR_ENDPOINT: &str = "inproc://basalt-master-control-events";
/// ZMQ heartbeats on an encrypted control socket: a dead connection must not keep its
/// worker's name, since no other connection may take it over.
const HEARTBEAT_IVL_MS: i32 = 5_000;
const HEARTBEAT_TIMEOUT_MS: i32 = 15_000;

/// How many messages one poll drains from a socket before looking at the others.
const DRAIN_BATCH: usize = 4096;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// libzmq refused.
    #[error("{what} {endpoint}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: zmq::Error,
    },
    /// Encryption was asked for and cannot be had.
    #[error(transparent)]
    Curve(#[from] CurveError),
}

pub(super) fn with_endpoint<T>(
    result: Result<T, zmq::Error>,
    what: &'static str,
    endpoint: &str,
) -> Result<T, TransportError> {
    result.map_err(|source| TransportError::Socket {
        what,
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// The master's side of CURVE: its own key pair and the slaves it admits.
pub struct MasterCurve {
    /// The master's certificate (with its secret key).
    pub certificate: Certificate,
    /// The slaves' public certificates.
    pub allow: Arc<AllowList>,
}

/// A slave's side of CURVE: the master's public key and the slave's own pair.
#[derive(Clone, Debug)]
pub struct ClientCurve {
    /// The master's public key.
    pub master: [u8; 32],
    /// This slave's certificate (with its secret key).
    pub own: Certificate,
}

impl ClientCurve {
    fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        let Some(secret) = &self.own.secret else {
            return Err(zmq::Error::EINVAL);
        };
        socket.set_curve_serverkey(&self.master)?;
        socket.set_curve_publickey(&self.own.public)?;
        socket.set_curve_secretkey(secret)
    }
}

fn require_curve() -> Result<(), TransportError> {
    if super::curve::available() {
        Ok(())
    } else {
        Err(CurveError::Unavailable.into())
    }
}

/// Something the master's sockets received.
#[derive(Debug)]
pub enum Incoming {
    /// A control message's frames from a slave (routing frame removed).
    Control {
        /// The slave's identity (its worker name, as the slave claims it).
        peer: String,
        /// Who the connection was admitted as (CURVE only).
        sender: Option<Sender>,
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
        /// Who the connection was admitted as (CURVE only).
        sender: Option<Sender>,
        /// Its frames.
        frames: Vec<Vec<u8>>,
    },
    /// Another thread asked the control loop to look at the database again.
    Wake,
    /// A connection to the control socket closed (CURVE only): a worker's name may now be
    /// taken by another connection, so every worker has to prove itself again.
    Disconnected,
}

/// The control socket's connection events (CURVE only): whether a connection closed since
/// the control loop last asked. libzmq reports the close before the socket can give that
/// connection's name to another one, so asking right before a send is enough. (A failed
/// handshake counts too: libzmq 4.3 does not say which connection a handshake belonged to,
/// and a close too many only delays a START until its worker's next message.)
struct Monitor {
    socket: zmq::Socket,
}

impl Monitor {
    /// Reads every pending event; true if a connection closed.
    fn drain(&self) -> bool {
        let mut closed = false;
        while let Ok(frames) = self.socket.recv_multipart(zmq::DONTWAIT) {
            let Some(head) = frames.first().filter(|f| f.len() >= 6) else {
                continue;
            };
            let event = u16::from_le_bytes([head[0], head[1]]);
            closed |= event == zmq::SocketEvent::DISCONNECTED as u16;
        }
        closed
    }
}

/// The master's bound sockets.
pub struct MasterSockets {
    // Declared first so the sockets close before the context is dropped.
    control: zmq::Socket,
    logs: zmq::Socket,
    wake: zmq::Socket,
    monitor: Option<Monitor>,
    _zap: Option<ZapHandler>,
    context: zmq::Context,
}

impl MasterSockets {
    /// Binds the control ROUTER and the log PULL (`tcp://HOST:PORT` endpoints), without
    /// encryption (LAVA's default).
    pub fn bind(control_endpoint: &str, log_endpoint: &str) -> Result<Self, TransportError> {
        Self::bind_with(control_endpoint, log_endpoint, None)
    }

    /// Binds both sockets, as CURVE servers admitting only the allow-list when `curve` is
    /// given.
    pub fn bind_with(
        control_endpoint: &str,
        log_endpoint: &str,
        curve: Option<&MasterCurve>,
    ) -> Result<Self, TransportError> {
        let context = zmq::Context::new();
        // The ZAP handler first: libzmq admits anyone while a context has none.
        let zap = match curve {
            Some(curve) => {
                require_curve()?;
                Some(with_endpoint(
                    ZapHandler::start(&context, curve.allow.clone()),
                    "cannot start the ZAP handler on",
                    "inproc://zeromq.zap.01",
                )?)
            }
            None => None,
        };
        let secure = |socket: &zmq::Socket| -> Result<(), zmq::Error> {
            if let Some(curve) = curve {
                let secret = curve.certificate.secret.ok_or(zmq::Error::EINVAL)?;
                socket.set_curve_server(true)?;
                socket.set_curve_secretkey(&secret)?;
                socket.set_zap_domain("basalt")?;
            }
            Ok(())
        };
        let control = context_socket(&context, zmq::ROUTER, control_endpoint)?;
        let monitor = match curve {
            Some(_) => {
                with_endpoint(
                    control.monitor(MONITOR_ENDPOINT, zmq::SocketEvent::DISCONNECTED as i32),
                    "cannot monitor",
                    control_endpoint,
                )?;
                let socket = context_socket(&context, zmq::PAIR, MONITOR_ENDPOINT)?;
                with_endpoint(
                    socket.connect(MONITOR_ENDPOINT),
                    "cannot connect",
                    MONITOR_ENDPOINT,
                )?;
                Some(Monitor { socket })
            }
            None => None,
        };
        let setup = || -> Result<(), zmq::Error> {
            control.set_identity(b"master")?;
            // In the clear, the newest connection takes a name over, as LAVA's master does
            // (a restarted slave is back at once). Encrypted, a name stays with the
            // connection that holds it until that one closes, so a worker whose key is
            // admitted cannot take another worker's name, and heartbeats close dead ones.
            control.set_router_handover(curve.is_none())?;
            if curve.is_some() {
                control.set_heartbeat_ivl(HEARTBEAT_IVL_MS)?;
                control.set_heartbeat_timeout(HEARTBEAT_TIMEOUT_MS)?;
            }
            control.set_linger(0)?;
            control.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
            control.set_sndhwm(10_000)?;
            control.set_rcvhwm(10_000)?;
            secure(&control)?;
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
            secure(&logs)?;
            logs.bind(log_endpoint)
        };
        with_endpoint(setup(), "cannot bind the log socket on", log_endpoint)?;
        let wake = context_socket(&context, zmq::PULL, WAKE_ENDPOINT)?;
        with_endpoint(wake.bind(WAKE_ENDPOINT), "cannot bind", WAKE_ENDPOINT)?;
        Ok(Self {
            control,
            logs,
            wake,
            monitor,
            _zap: zap,
            context,
        })
    }

    /// The ports the control and log sockets are bound on (what `*` became).
    pub fn ports(&self) -> Result<(u16, u16), TransportError> {
        Ok((bound_port(&self.control)?, bound_port(&self.logs)?))
    }

    /// Whether the sockets are encrypted.
    pub fn encrypted(&self) -> bool {
        self.monitor.is_some()
    }

    /// True if a connection to the control socket closed since the last call (or
    /// since [`Incoming::Disconnected`] was last returned). Called right before sending
    /// anything secret, so that a name taken over since is noticed first.
    pub fn connection_lost(&self) -> bool {
        self.monitor.as_ref().is_some_and(Monitor::drain)
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
        let mut items = vec![
            self.control.as_poll_item(zmq::POLLIN),
            self.logs.as_poll_item(zmq::POLLIN),
            self.wake.as_poll_item(zmq::POLLIN),
        ];
        if let Some(monitor) = &self.monitor {
            items.push(monitor.socket.as_poll_item(zmq::POLLIN));
        }
        let millis = timeout.as_millis().min(i64::MAX as u128) as i64;
        if zmq::poll(&mut items, millis).is_err() {
            // EINTR (a signal): the caller's loop checks its flags and polls again.
            return Vec::new();
        }
        let ready: Vec<bool> = items.iter().map(|item| item.is_readable()).collect();
        let mut incoming = Vec::new();
        if ready.get(3) == Some(&true) && self.connection_lost() {
            incoming.push(Incoming::Disconnected);
        }
        if ready[0] {
            for (mut frames, user) in drain_with_user(&self.control) {
                if frames.is_empty() {
                    continue;
                }
                let peer = frames.remove(0);
                let sender = user.as_deref().and_then(Sender::parse);
                incoming.push(match String::from_utf8(peer) {
                    Ok(peer) => Incoming::Control {
                        peer,
                        sender,
                        frames,
                    },
                    Err(e) => Incoming::BadPeer {
                        peer: e.into_bytes(),
                    },
                });
            }
        }
        if ready[1] {
            incoming.extend(
                drain_with_user(&self.logs)
                    .into_iter()
                    .map(|(frames, user)| Incoming::Log {
                        sender: user.as_deref().and_then(Sender::parse),
                        frames,
                    }),
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

/// The port of the endpoint `socket` was last bound to (`tcp://HOST:PORT`).
fn bound_port(socket: &zmq::Socket) -> Result<u16, TransportError> {
    let endpoint = with_endpoint(
        socket.get_last_endpoint(),
        "cannot read the endpoint of",
        "",
    )?
    .unwrap_or_default();
    endpoint
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .ok_or(TransportError::Socket {
            what: "no TCP port in the bound endpoint",
            endpoint,
            source: zmq::Error::EINVAL,
        })
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

/// Like [`drain`], with each message's `User-Id` (what the ZAP handler named its connection).
/// A ROUTER's routing frame is made locally and carries no metadata, so every frame is asked.
fn drain_with_user(socket: &zmq::Socket) -> Vec<(Vec<Vec<u8>>, Option<String>)> {
    let mut messages = Vec::new();
    while messages.len() < DRAIN_BATCH {
        let Ok(mut frame) = socket.recv_msg(zmq::DONTWAIT) else {
            break;
        };
        let mut frames = Vec::new();
        let mut user = None;
        loop {
            if user.is_none() {
                user = frame.gets("User-Id").map(str::to_owned);
            }
            let more = frame.get_more();
            frames.push(frame.to_vec());
            if !more {
                break;
            }
            match socket.recv_msg(0) {
                Ok(next) => frame = next,
                Err(_) => break,
            }
        }
        messages.push((frames, user));
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
        Self::connect_with(endpoint, identity, None)
    }

    /// Like [`Self::connect`], as a CURVE client when `curve` is given.
    pub fn connect_with(
        endpoint: &str,
        identity: &str,
        curve: Option<&ClientCurve>,
    ) -> Result<Self, TransportError> {
        if curve.is_some() {
            require_curve()?;
        }
        let context = zmq::Context::new();
        let socket = context_socket(&context, zmq::DEALER, endpoint)?;
        let setup = || -> Result<(), zmq::Error> {
            if let Some(curve) = curve {
                curve.apply(&socket)?;
            }
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
    /// Connects to a LAVA master's log socket (as a CURVE client when `curve` is given).
    pub fn connect(endpoint: &str, curve: Option<&ClientCurve>) -> Result<Self, TransportError> {
        if curve.is_some() {
            require_curve()?;
        }
        let context = zmq::Context::new();
        let socket = context_socket(&context, zmq::PUSH, endpoint)?;
        if let Some(curve) = curve {
            with_endpoint(curve.apply(&socket), "cannot configure CURVE for", endpoint)?;
        }
        // Lines are queued only on a live connection (IMMEDIATE): while the master is away a
        // push fails and the line stays in the job's log file, the durable spool, instead
        // of in memory that a killed slave loses after counting it pushed. A clean stop
        // still delivers what is queued (linger).
        with_endpoint(socket.set_immediate(true), "cannot configure", endpoint)?;
        with_endpoint(socket.set_linger(2000), "cannot configure", endpoint)?;
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
        let Some(Incoming::Control { peer, frames, .. }) = got.pop() else {
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
