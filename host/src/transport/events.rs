//! The event stream's PUB socket (LAVA's `lava-publisher`, port 5500): multipart messages
//! to whoever subscribes, never waiting for them.

use super::sockets::{with_endpoint, TransportError};

/// A bound PUB socket.
pub struct EventPublisher {
    _context: zmq::Context,
    socket: zmq::Socket,
    port: Option<u16>,
}

impl EventPublisher {
    /// Binds `endpoint` (`tcp://*:5500`; port `*` for one the kernel picks), with LAVA's
    /// heartbeats so dead subscribers are noticed.
    pub fn bind(endpoint: &str) -> Result<Self, TransportError> {
        let context = zmq::Context::new();
        let socket = with_endpoint(
            context.socket(zmq::PUB),
            "create a PUB socket for",
            endpoint,
        )?;
        with_endpoint(socket.set_heartbeat_ivl(5_000), "configure", endpoint)?;
        with_endpoint(socket.set_heartbeat_timeout(15_000), "configure", endpoint)?;
        with_endpoint(socket.set_heartbeat_ttl(15_000), "configure", endpoint)?;
        with_endpoint(socket.set_linger(0), "configure", endpoint)?;
        with_endpoint(socket.bind(endpoint), "bind the event socket", endpoint)?;
        let port = socket
            .get_last_endpoint()
            .ok()
            .and_then(Result::ok)
            .and_then(|e| e.rsplit(':').next().and_then(|p| p.parse().ok()));
        Ok(Self {
            _context: context,
            socket,
            port,
        })
    }

    /// The port it is bound to.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Publishes one message; a subscriber too slow to keep up loses it (as with LAVA).
    pub fn publish(&self, frames: &[String]) {
        let parts: Vec<&[u8]> = frames.iter().map(|f| f.as_bytes()).collect();
        if let Err(e) = self.socket.send_multipart(parts, zmq::DONTWAIT) {
            tracing::debug!("event socket: {e}");
        }
    }
}
