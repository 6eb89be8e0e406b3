//! `/ws/`: the event stream over a WebSocket, as LAVA's `lava-publisher` serves it to
//! lavacli `events listen`/`wait`: one text message per event, a JSON array of the five frames
//! (`[topic, uuid, datetime, username, json]`, the payload still a JSON string), each client
//! getting only the jobs it may see. Credentials are optional (Basic `user:token`, as lavacli
//! sends them); bad ones get LAVA's `{"error": ...}` message, then the socket closes. What a
//! client sends is read (so pings are answered) and ignored.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast::error::RecvError;

use crate::master::events::{Published, Subject};
use crate::master::service::{Caller, Service};

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/ws/", get(upgrade))
        .route("/ws/v1/healthz", get(healthz))
}

/// LAVA's publisher health probe.
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"health": "good"}))
}

/// WebSocket clients at once. An upgraded connection leaves the HTTP connection bounds
/// behind it, so it is counted here, for as long as it is open.
const MAX_WEBSOCKETS: usize = 256;

/// The largest message a client may send (they are ignored; only pings matter).
const MAX_CLIENT_MESSAGE: usize = 4096;

static WEBSOCKETS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_WEBSOCKETS);

async fn upgrade(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    socket: WebSocketUpgrade,
) -> Response {
    use axum::response::IntoResponse;
    let Ok(permit) = WEBSOCKETS.try_acquire() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_WEBSOCKETS} event stream clients are connected; try again later"),
        )
            .into_response();
    };
    let caller = super::caller(&service, &headers);
    socket
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _permit = permit;
            match caller {
                Ok(caller) => stream(socket, service, caller).await,
                Err(e) => refuse(socket, &e.message).await,
            }
        })
}

async fn refuse(mut socket: WebSocket, error: &str) {
    let message = serde_json::json!({ "error": error }).to_string();
    let _ = socket.send(Message::Text(message.into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn stream(mut socket: WebSocket, service: Arc<Service>, caller: Caller) {
    let Some(mut events) = service.subscribe_events() else {
        refuse(socket, "this master publishes no events").await;
        return;
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if !may_see(&caller, &event) {
                        continue;
                    }
                    let text = serde_json::to_string(&event.frames).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!("a WebSocket client of /ws/ missed {missed} events (it reads too slowly)");
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Jobs as their visibility says (the rule `job_for` applies, with the visibility the event
/// carries, so no client costs a database read per event); devices and workers are public,
/// as in LAVA's default permissions.
fn may_see(caller: &Caller, event: &Published) -> bool {
    match &event.subject {
        Subject::Job {
            visibility,
            submitter,
            ..
        } => visibility.allows(caller.user(), submitter),
        Subject::Device(_) | Subject::Worker(_) => true,
    }
}
