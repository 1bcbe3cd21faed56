//! The HTTP API: axum routes, their JSON shapes, and the one error type that maps every
//! failure to a status code and a `{"error", "detail", "field"}` body.

use std::sync::{Arc, OnceLock};

mod ingest;
mod openapi;
mod params;
mod push;
mod query;
mod targets;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, router::UtoipaMethodRouterExt as _, routes};

pub use ingest::MAX_BODY_BYTES;
pub use query::{
    FlameNode, FlamegraphReport, RangePoint, RangeResponse, RangeSeries, StacksReport, TopReport,
    TopReportRow,
};

use crate::{metrics::Metrics, scrape::ScrapeManager, store::Store};

/// Largest accepted JSON push body: base64 makes profiles a third larger.
pub const MAX_JSON_BODY_BYTES: usize = MAX_BODY_BYTES * 3 / 2;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    store: Arc<OnceLock<Arc<Store>>>,
    scrape: Arc<OnceLock<ScrapeManager>>,
    /// Cinder's own metrics.
    pub metrics: Arc<Metrics>,
    api_token: Option<Arc<str>>,
    targets_writable: bool,
}

impl Default for AppState {
    fn default() -> Self {
        AppState {
            store: Arc::default(),
            scrape: Arc::default(),
            metrics: Arc::default(),
            api_token: None,
            targets_writable: true,
        }
    }
}

impl AppState {
    /// A state whose store is not open yet: `/ready` answers 503 until [`Self::set_store`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares these metrics (the scrape manager records into them too).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Requires `Authorization: Bearer <token>` for ingest and target changes.
    pub fn with_api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Whether targets may be created, changed and deleted through the API.
    pub fn with_targets_api(mut self, writable: bool) -> Self {
        self.targets_writable = writable;
        self
    }

    /// Publishes the opened (and replayed) store; from now on the server is ready.
    pub fn set_store(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    /// Publishes the scrape manager (set it before the store, so that a ready server has it).
    pub fn set_scrape(&self, manager: ScrapeManager) {
        let _ = self.scrape.set(manager);
    }

    /// The store, or 503 while it is still being opened.
    pub fn store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store.get().ok_or(ApiError::NotReady)
    }

    /// The scrape manager, or 503 while storage is still being opened.
    pub fn scrape(&self) -> Result<&ScrapeManager, ApiError> {
        self.scrape.get().ok_or(ApiError::NotReady)
    }

    /// 401 unless the request carries the API token (when one is configured).
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.api_token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim())
            });
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized(
                "the bearer token is not valid".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "this endpoint needs an Authorization: Bearer <token> header".into(),
            )),
        }
    }
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every way an API call can fail; [`IntoResponse`] is the one place status codes are chosen.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending parameter when there is one.
    #[error("{error}: {detail}")]
    BadRequest {
        error: String,
        detail: String,
        field: Option<String>,
    },
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The body is over the size limit.
    #[error("request body too large: {0}")]
    TooLarge(String),
    /// The API token is missing or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller may not do this (read-only targets, read-only API).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing is busy (e.g. a CPU profile is already being recorded).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Storage is still opening or replaying its write-ahead log.
    #[error("storage is not ready yet")]
    NotReady,
    /// A failure of ours, not the caller's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 about the request as a whole.
    pub fn bad_request(error: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            error: error.into(),
            detail: detail.into(),
            field: None,
        }
    }

    /// A 400 about one named parameter or form field.
    pub fn bad_field(field: &str, error: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            error: error.into(),
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }
}

pub use shared::wire::ErrorBody;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, detail, field) = match self {
            ApiError::BadRequest {
                error,
                detail,
                field,
            } => (StatusCode::BAD_REQUEST, error, detail, field),
            ApiError::NotFound(detail) => (StatusCode::NOT_FOUND, "not found".into(), detail, None),
            ApiError::TooLarge(detail) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large".into(),
                detail,
                None,
            ),
            ApiError::Unauthorized(detail) => {
                let body = Json(ErrorBody {
                    error: "unauthorized".into(),
                    detail,
                    field: None,
                });
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    body,
                )
                    .into_response();
            }
            ApiError::Forbidden(detail) => {
                (StatusCode::FORBIDDEN, "forbidden".into(), detail, None)
            }
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, "conflict".into(), detail, None),
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready".into(),
                "storage is still opening; retry shortly".into(),
                None,
            ),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".into(),
                    detail,
                    None,
                )
            }
        };
        (
            status,
            Json(ErrorBody {
                error,
                detail,
                field,
            }),
        )
            .into_response()
    }
}

/// The API routes plus the health, metrics and self-profiling endpoints.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    if let Ok(json) = serde_json::to_value(&doc) {
        let _ = openapi::DOCUMENT.set(json);
    }
    router
        .nest("/api", Router::new().fallback(unknown_api_route))
        .route_layer(middleware::from_fn_with_state(state.clone(), track_query))
        .with_state(state)
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// Counts and times the query endpoints (`/api/v1/query*`) for `/metrics`.
async fn track_query(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .filter(|p| p.starts_with("/api/v1/query"));
    let Some(endpoint) = endpoint else {
        return next.run(request).await;
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .query(&endpoint, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Cinder's own metrics (scrapes, samples ingested, store sizes, queries) in the Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let sizes = state.store.get().map(|s| s.sizes());
    let health = state
        .scrape
        .get()
        .map(ScrapeManager::health_counts)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(sizes, &health),
    )
        .into_response()
}

/// `GET /debug/pprof/profile?seconds=N`: Cinder's own CPU profile, gzipped pprof.
/// Needs the API token when one is set: a profile costs CPU for up to 5 minutes.
#[utoipa::path(get, path = "/debug/pprof/profile", tag = "meta",
    params(("seconds" = Option<u64>, Query, description = "how long to record, 1 to 300 (default 30)")),
    responses(
        (status = 200, description = "Cinder's own CPU profile, gzipped pprof", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "another CPU profile is being recorded", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn cpu_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    // Served once the server is ready, like every other data endpoint.
    state.store()?;
    let seconds = match params.get("seconds").map(|s| s.trim()) {
        None | Some("") => 30,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=crate::debug::MAX_SECONDS).contains(s))
            .ok_or_else(|| {
                ApiError::bad_field(
                    "seconds",
                    "invalid seconds",
                    format!(
                        "seconds={text:?} must be a whole number from 1 to {}",
                        crate::debug::MAX_SECONDS
                    ),
                )
            })?,
    };
    let body = tokio::task::spawn_blocking(move || {
        crate::debug::cpu_profile(std::time::Duration::from_secs(seconds))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("profiling task failed: {e}")))?
    .map_err(|e| match e {
        crate::debug::ProfileError::Busy => ApiError::Conflict(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// Every route, each registered with its OpenAPI description.
fn documented_routes() -> OpenApiRouter<AppState> {
    let push_limit = || DefaultBodyLimit::max(MAX_BODY_BYTES);
    let json_limit = || DefaultBodyLimit::max(MAX_JSON_BODY_BYTES);
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthy))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(cpu_profile))
        .routes(routes!(push::pyroscope_ingest).layer(push_limit()))
        .routes(routes!(push::parca_write_raw).layer(json_limit()))
        .nest(
            "/api",
            OpenApiRouter::new()
                .nest("/v1", v1())
                .routes(routes!(push::parca_write_raw_gateway).layer(json_limit())),
        )
}

/// Version 1 of the API.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest::push).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .routes(routes!(query::profile_types))
        .routes(routes!(query::labels))
        .routes(routes!(query::label_values))
        .routes(routes!(query::query_range))
        .routes(routes!(query::query))
        .routes(routes!(targets::list, targets::create))
        .routes(routes!(targets::one, targets::update, targets::delete))
        .routes(routes!(openapi::document))
}

#[utoipa::path(get, path = "/healthy", tag = "meta",
    responses((status = 200, description = "the server is up", body = String)))]
async fn healthy() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/ready", tag = "meta",
    responses((status = 200, description = "storage is open and its WAL replayed", body = String),
        (status = 503, body = ErrorBody)))]
async fn ready(state: axum::extract::State<AppState>) -> Result<&'static str, ApiError> {
    state.store().map(|_| "ready\n")
}

async fn unknown_api_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}
