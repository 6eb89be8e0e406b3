//! The web pages.

use std::sync::Arc;

use axum::Router;

use crate::master::service::Service;

/// The pages' routes.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
}
