//! LAVA's event stream: every state and health change of a job, device or worker, published
//! as LAVA's `lava-publisher` publishes it — a ZMQ PUB socket (LAVA's port 5500) sending the
//! five frames `[topic, uuid, datetime, username, json]`, and the same five strings as a JSON
//! array to each WebSocket client of `/ws/` (what lavacli `events listen` reads).
//!
//! The events are read from the store's history ([`crate::store::Store::changes_after`]), which
//! every change is written to in the transaction that made it, by whichever thread made it:
//! nothing that changes state has to remember to publish. Events are live only; a subscriber
//! that is not connected misses them, as with LAVA.

mod payload;
mod publisher;

pub use payload::{dumps as python_json, events_for, isoformat, Event, Subject};
pub use publisher::{spawn, EventSettings, Published};

/// Events kept for a WebSocket client that reads slower than they come; past it the client
/// misses the oldest (and is told so in the master's log).
pub const CHANNEL_CAPACITY: usize = 4096;
