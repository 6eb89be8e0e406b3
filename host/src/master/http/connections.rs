//! Accepting HTTP connections so that no anonymous client can stop the port: a bound on the
//! connections served per client address (more wait their turn) and open in all, and a
//! deadline for each request's header.
//! (The deadline for a body and the limit on requests handled at once are in the router, see
//! [`super::router`]: a request holds a handler slot only once its body is in.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections one client address may have served at once; its further connections wait
/// for one of these to close (a burst from one CI system is served in turn), and are closed
/// if none does within [`HEADER_TIMEOUT`]. A browser opens six, lavacli one.
pub const MAX_PER_CLIENT: usize = 64;

/// Connections open at once in all, served or waiting (each costs a descriptor and a small
/// task); more are closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a client has to send a request's whole header (and, between requests on a
/// kept-alive connection, to start the next one), and how long a connection waits for its
/// address's turn.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections of each client address, and how many are open in all.
#[derive(Default)]
struct Clients {
    state: Mutex<ClientsState>,
}

#[derive(Default)]
struct ClientsState {
    /// Each address's turns: [`MAX_PER_CLIENT`] permits.
    turns: HashMap<IpAddr, Arc<Semaphore>>,
    /// Connections open, served or waiting.
    open: usize,
}

/// One open connection; its place is given back when dropped.
struct Admitted {
    clients: Arc<Clients>,
    address: IpAddr,
    turns: Arc<Semaphore>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClientsState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a connection from `address` unless the port is full.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Admitted> {
        let mut state = self.lock();
        if state.open >= MAX_CONNECTIONS {
            return None;
        }
        state.open += 1;
        let turns = state
            .turns
            .entry(address)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_PER_CLIENT)))
            .clone();
        Some(Admitted {
            clients: self.clone(),
            address,
            turns,
        })
    }
}

impl Admitted {
    /// Waits for this address's turn (at most [`HEADER_TIMEOUT`]).
    async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(HEADER_TIMEOUT, self.turns.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.clients.lock();
        state.open -= 1;
        // The map's handle and this one: nobody else of this address is connected.
        if Arc::strong_count(&self.turns) == 2 {
            state.turns.remove(&self.address);
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
                    "refusing HTTP connections: {MAX_CONNECTIONS} are open (logged at most once \
                     a minute)"
                );
                refused_logged = std::time::Instant::now();
            }
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let Some(_turn) = admitted.turn().await else {
                tracing::debug!(
                    "HTTP connection from {peer} closed: {MAX_PER_CLIENT} of its address's \
                     stayed busy for {} s",
                    HEADER_TIMEOUT.as_secs()
                );
                return;
            };
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = http
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades();
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

    #[tokio::test]
    async fn each_address_gets_its_turns_and_gives_them_back() {
        let clients = Arc::new(Clients::default());
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let connections: Vec<Admitted> = (0..=MAX_PER_CLIENT)
            .map(|_| clients.admit(a).unwrap())
            .collect();
        let mut turns = Vec::new();
        for connection in &connections[..MAX_PER_CLIENT] {
            turns.push(connection.turn().await.unwrap());
        }
        // The next one of the same address waits; another address does not.
        assert_eq!(connections[MAX_PER_CLIENT].turns.available_permits(), 0);
        let other = clients.admit(b).unwrap();
        assert!(other.turn().await.is_some());
        turns.pop();
        assert!(connections[MAX_PER_CLIENT].turn().await.is_some());
        drop(turns);
        drop(connections);
        drop(other);
        let state = clients.lock();
        assert_eq!(state.open, 0);
        assert!(state.turns.is_empty());
    }
}
