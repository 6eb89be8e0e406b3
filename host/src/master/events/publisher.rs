//! The publishing thread: reads the history from where it was when the master started, turns
//! each run of changes into LAVA's events, sends each on the ZMQ PUB socket and hands it to
//! the WebSocket clients (a broadcast channel the HTTP side subscribes to).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::broadcast;

use super::payload::{dumps, events_for, isoformat, Subject};
use crate::store::Store;
use crate::transport::EventPublisher;

/// How the stream is published.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// The PUB socket's ZMQ endpoint (`tcp://*:5500`), or none for WebSocket clients only.
    pub endpoint: Option<String>,
    /// LAVA's `EVENT_TOPIC`, the topics' prefix (`org.lavasoftware`).
    pub topic: String,
    /// How often the history is read.
    pub poll: Duration,
}

/// One event as sent: its five frames, and what it is about.
#[derive(Debug, Clone)]
pub struct Published {
    /// `[topic, uuid, datetime, username, json]`.
    pub frames: [String; 5],
    /// What it is about (the WebSocket sends each client only what it may see).
    pub subject: Subject,
}

/// Changes read per pass.
const BATCH: u32 = 500;

/// Binds the PUB socket (so a port in use fails the master's start, naming it), then
/// publishes from a thread of its own until `stop`. Returns the bound port, if any, and the
/// thread (joined at the master's end, so its database connection closes cleanly).
pub fn spawn(
    settings: EventSettings,
    database: PathBuf,
    sender: broadcast::Sender<Arc<Published>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Option<u16>, std::thread::JoinHandle<()>)> {
    let store = Store::open(&database)
        .with_context(|| format!("events: cannot open {}", database.display()))?;
    let socket = match &settings.endpoint {
        Some(endpoint) => Some(EventPublisher::bind(endpoint)?),
        None => None,
    };
    let port = socket.as_ref().and_then(EventPublisher::port);
    let mut cursor = store.last_change()?;
    let thread = std::thread::Builder::new()
        .name("basalt-events".into())
        .spawn(move || {
            let node = node_id();
            let mut failing = false;
            while !stop.load(Ordering::Relaxed) {
                let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    publish_pass(
                        &store,
                        &mut cursor,
                        &settings,
                        socket.as_ref(),
                        &sender,
                        &node,
                    )
                }));
                match pass {
                    Ok(Ok(more)) => {
                        failing = false;
                        if more {
                            continue;
                        }
                    }
                    // Said once per spell of failures (a locked or full database).
                    Ok(Err(e)) if !failing => {
                        tracing::warn!("events: {e:#}");
                        failing = true;
                    }
                    Ok(Err(_)) => {}
                    Err(_) => tracing::warn!("events: a pass panicked; going on with the next"),
                }
                std::thread::sleep(settings.poll);
            }
        })
        .context("cannot start the event thread")?;
    Ok((port, thread))
}

/// Publishes what the history holds past `cursor`; true if a whole batch was read (more may
/// be waiting).
fn publish_pass(
    store: &Store,
    cursor: &mut i64,
    settings: &EventSettings,
    socket: Option<&EventPublisher>,
    sender: &broadcast::Sender<Arc<Published>>,
    node: &[u8; 6],
) -> anyhow::Result<bool> {
    let changes = store.changes_after(*cursor, BATCH)?;
    let Some(last) = changes.last() else {
        return Ok(false);
    };
    let full = changes.len() == BATCH as usize;
    let next = last.id;
    // Events are live and best effort: a batch that cannot be read (a damaged row) is
    // skipped, said once, rather than holding every later event up behind it.
    let events = match events_for(store, &changes) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!("events: history {}..={} skipped: {e}", changes[0].id, next);
            *cursor = next;
            return Ok(full);
        }
    };
    for event in events {
        let frames = [
            format!("{}{}", settings.topic, event.suffix),
            uuid::Uuid::now_v1(node).to_string(),
            isoformat(std::time::SystemTime::now()),
            event.username,
            dumps(&event.data),
        ];
        // The PUB socket has no login: only public jobs' events go there (devices and workers
        // are public); WebSocket clients get what their credentials may see.
        let public = match &event.subject {
            Subject::Job { visibility, .. } => *visibility == crate::store::Visibility::Public,
            Subject::Device(_) | Subject::Worker(_) => true,
        };
        if let (Some(socket), true) = (socket, public) {
            socket.publish(&frames);
        }
        // No WebSocket client listening is not an error.
        let _ = sender.send(Arc::new(Published {
            frames,
            subject: event.subject,
        }));
    }
    *cursor = next;
    Ok(full)
}

/// The node field of the version-1 UUIDs (Python's `uuid1()` uses the MAC; a random node
/// with the multicast bit set is RFC 4122's alternative).
fn node_id() -> [u8; 6] {
    let mut node = [0u8; 6];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut node);
    }
    node[0] |= 0x01;
    node
}
