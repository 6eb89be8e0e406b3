//! `/RPC2`: LAVA's XML-RPC API over HTTP POST.
//!
//! As LAVA does, credentials that are given but wrong are an HTTP 401 (Python's client raises
//! a ProtocolError), while calls that need a user and have none, or lack the right, are
//! faults (401, 403). Malformed requests get a fault that says what is wrong.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::caller;
use crate::master::lava_api::{call, Fault};
use crate::master::service::Service;
use crate::xmlrpc::{fault, parse_call, response};

/// The routes: LAVA answers on both spellings.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/RPC2", get(help).post(rpc))
        .route("/RPC2/", get(help).post(rpc))
}

/// A browser pointed at the endpoint gets the API's description, as LAVA sends it to its help.
async fn help() -> Redirect {
    Redirect::to("/api")
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

async fn rpc(State(service): State<Arc<Service>>, headers: HeaderMap, body: String) -> Response {
    let caller = match caller(&service, &headers) {
        Ok(caller) => caller,
        Err(error) => {
            // No WWW-Authenticate: clients send their credentials unasked, and a browser
            // must not be invited to remember some for cross-site requests.
            return (StatusCode::UNAUTHORIZED, error.message).into_response();
        }
    };
    let request = match parse_call(&body) {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!("bad XML-RPC request: {error}");
            return xml(fault(400, &format!("bad request: {error}")));
        }
    };
    let method = request.name.clone();
    // Methods touch SQLite and files: keep them off the async workers.
    let outcome =
        tokio::task::spawn_blocking(move || call(&service, &caller, &request.name, request.params))
            .await
            .unwrap_or_else(|e| Err(Fault::new(500, format!("{method} failed: {e}"))));
    match outcome {
        Ok(value) => xml(response(&value)),
        Err(Fault { code, message }) => xml(fault(code, &message)),
    }
}
