//! Cinder's server. Data flows one way through the modules:
//! [`scrape`] → [`ingest`] → [`store`] → [`query`] → [`api`]; [`web`] serves the UI and
//! [`config`] holds what the command line and the config file say. [`metrics`] counts what
//! happens for `/metrics`; [`admission`] bounds the memory and concurrency of pushes,
//! scrapes and queries; [`debug`] records Cinder's own CPU profile so it can scrape itself.

pub mod admission;
pub mod api;
pub mod config;
pub mod debug;
pub mod ingest;
pub mod metrics;
pub mod query;
pub mod scrape;
pub mod store;
pub mod web;

use axum::Router;

/// The whole HTTP application: API and health routes first, the UI for everything else,
/// all behind the `Host` check.
pub fn app(state: api::AppState, ui: web::UiSource) -> Router {
    let app = api::router(state.clone()).fallback_service(web::router(ui));
    api::with_host_check(app, state)
}
