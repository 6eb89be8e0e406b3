//! Accepting HTTP connections so that no anonymous client can stop the port: a bound on
//! connections per client address and in all, and a deadline for each request's header.
//! (The deadline for a body and the limit on requests handled at once are in the router, see
//! [`super::router`]: a request holds a handler slot only once its body is in.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// Connections one client address may hold open at once. A browser opens six, lavacli one,
/// a CI system polling many jobs through one NAT address a few dozen.
pub const MAX_PER_CLIENT: usize = 64;

/// Connections open at once in all (each costs a descriptor and a small task).
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a client has to send a request's whole header (and, between requests on a
/// kept-alive connection, to start the next one).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections per client address.
#[derive(Default)]
struct Clients {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its place is given back when dropped.
struct Admitted {
    clients: Arc<Clients>,
    address: IpAddr,
}

impl Clients {
    /// Admits a connection from `address` unless it or the port is at its bound.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Admitted> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let total: usize = open.values().sum();
        let mine = open.entry(address).or_default();
        if *mine >= MAX_PER_CLIENT || total >= MAX_CONNECTIONS {
            return None;
        }
        *mine += 1;
        Some(Admitted {
            clients: self.clone(),
            address,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .clients
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener` until the runtime stops.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    let clients = Arc::new(Clients::default());
    let mut refused_logged = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: wait for some to be given back
                // rather than spin.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admitted) = clients.admit(peer.ip()) else {
            if refused_logged.elapsed() >= Duration::from_secs(60) {
                tracing::warn!(
                    "refusing HTTP connections from {}: it holds {MAX_PER_CLIENT} already (or the \
                     port holds {MAX_CONNECTIONS}); logged at most once a minute",
                    peer.ip()
                );
                refused_logged = std::time::Instant::now();
            }
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection from {peer}: {e}");
            }
            drop(admitted);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_share_and_gets_it_back() {
        let clients = Arc::new(Clients::default());
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let held: Vec<Admitted> = (0..MAX_PER_CLIENT)
            .map(|_| clients.admit(a).unwrap())
            .collect();
        assert!(clients.admit(a).is_none());
        let other = clients.admit(b);
        assert!(other.is_some());
        drop(held);
        assert!(clients.admit(a).is_some());
        drop(other);
        assert!(clients.open.lock().unwrap().get(&b).is_none());
    }
}
