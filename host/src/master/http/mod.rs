//! The master's HTTP port: the REST API ([`rest`], `/api/v1/`), LAVA's XML-RPC API ([`rpc`],
//! `/RPC2`), the web pages ([`web`]) and the event stream's WebSocket ([`ws`], `/ws/`), all
//! adapters over the [`Service`].
//!
//! Credentials are read here, once per request: `Authorization: Bearer TOKEN` (Basalt's
//! clients), or `Basic` with `username:token` (lavacli and Python's XML-RPC client, which
//! take them from the URL). No header means an anonymous caller, who may read.

mod connections;
mod rest;
mod rpc;
mod web;
mod ws;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::Router;
use base64::Engine;

use super::service::{Caller, ErrorKind, Service, ServiceError};

/// The largest request body accepted (a job definition or a template is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Requests handled at once; more wait their turn. Each holds a blocking thread while it runs
/// (see [`off_workers`]) and tokio's pool has 512: a burst of clients must not exhaust it.
const MAX_IN_FLIGHT: usize = 128;

/// How long a client has to send a request's whole body once its header is in.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves everything on `listener` until the runtime stops, with the bounds of
/// [`connections`] on what one client can hold.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
) -> std::io::Result<()> {
    connections::serve(listener, router(service)).await
}

/// All routes of the HTTP port. Needs a multi-threaded tokio runtime (see [`off_workers`]).
///
/// The order matters: the body is read (with its deadline) before a request takes one of the
/// [`MAX_IN_FLIGHT`] slots, so clients that send their bodies a byte at a time hold nothing
/// but their own connections.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .merge(rest::routes())
        .merge(rpc::routes())
        .merge(web::routes())
        .merge(ws::routes())
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn(off_workers))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_IN_FLIGHT,
        ))
        .layer(axum::middleware::from_fn(read_body))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

/// What every response carries: the pages load scripts, styles and data from this master
/// only (no inline script runs, whatever a job's name or log smuggles into a page), may not
/// be framed by another site, and their types are not guessed.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
];

async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// Reads the whole body, within [`BODY_TIMEOUT`] and [`MAX_BODY`], asynchronously: the
/// connection that delivers it is polled by this same task, so a handler blocked while
/// waiting for its body would wait forever, and a slow sender must not hold a handler slot.
async fn read_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
            )
                .into_response()
        }
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
                .into_response()
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Runs each request where blocking is allowed. Handlers call the [`Service`] synchronously
/// (SQLite, job log files); on the runtime's few worker threads one slow request would stall
/// every other connection, so each request tells tokio it blocks (`block_in_place`, which
/// moves the thread's other work elsewhere) and is driven to its end right there. Its body is
/// already in memory ([`read_body`]).
async fn off_workers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(next.run(request)))
}

/// Who sent the request; an error when credentials were given but are not valid.
fn caller(service: &Service, headers: &HeaderMap) -> Result<Caller, ServiceError> {
    let Some(value) = headers.get("authorization") else {
        return Ok(Caller::Anonymous);
    };
    let invalid = |what: &str| ServiceError::new(ErrorKind::Unauthorized, what.to_owned());
    let value = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" if !rest.is_empty() => service.authenticate(rest),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| invalid("the Basic credentials are not base64 text"))?;
            let (user, token) = decoded
                .split_once(':')
                .ok_or_else(|| invalid("the Basic credentials are not username:token"))?;
            if user.is_empty() && token.is_empty() {
                return Ok(Caller::Anonymous);
            }
            service.authenticate_as(user, token)
        }
        _ => Err(invalid(
            "the Authorization header must be `Bearer TOKEN` or Basic username:token",
        )),
    }
}

/// The HTTP status for a service error.
fn status(kind: ErrorKind) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(kind.code())
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
}
