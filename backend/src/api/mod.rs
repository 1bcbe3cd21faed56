//! The HTTP API: axum routes, their JSON shapes, and the one error type that maps every
//! failure to a status code and a `{"error", "detail", "field"}` body.

use std::sync::{Arc, OnceLock};

mod connect;
mod flame_json;
mod guard;
mod ingest;
mod openapi;
mod otlp;
mod params;
mod partial;
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
use tower_http::compression::Predicate;
use utoipa_axum::{router::OpenApiRouter, router::UtoipaMethodRouterExt as _, routes};

pub use guard::AllowedHosts;
pub use ingest::MAX_BODY_BYTES;
pub use query::{
    FlameNode, FlamegraphReport, RangePoint, RangeResponse, RangeSeries, StacksReport, TopReport,
    TopReportRow,
};

use crate::{
    admission::{Admission, Refused},
    metrics::Metrics,
    scrape::ScrapeManager,
    store::Store,
};

/// Largest accepted JSON push body: base64 makes profiles a third larger.
pub const MAX_JSON_BODY_BYTES: usize = MAX_BODY_BYTES * 3 / 2;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    store: Arc<OnceLock<Arc<Store>>>,
    scrape: Arc<OnceLock<ScrapeManager>>,
    /// Cinder's own metrics.
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the API token: compared digest to digest, so neither the token's
    /// content nor its length shows in timings.
    api_token: Option<[u8; 32]>,
    targets_writable: bool,
    /// Budget and concurrency limits of pushes and queries.
    pub admission: Admission,
    /// Bounds of queries.
    pub query_limits: QueryLimits,
    /// Delta baselines of series pushed as cumulative profiles.
    push_deltas: Arc<connect::PushDeltas>,
    security: Arc<Security>,
}

/// Bounds every query is held to (see the README's Limits section).
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// A query running longer is answered 503.
    pub timeout: std::time::Duration,
    /// Series one query may select.
    pub max_series: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: std::time::Duration::from_secs(30),
            max_series: 100_000,
        }
    }
}

/// Host, CSRF and read-auth settings ([`guard`]).
#[derive(Debug, Clone, Default)]
struct Security {
    allowed_hosts: AllowedHosts,
    auth_reads: bool,
}

impl Default for AppState {
    fn default() -> Self {
        AppState {
            store: Arc::default(),
            scrape: Arc::default(),
            metrics: Arc::default(),
            api_token: None,
            targets_writable: true,
            admission: Admission::default(),
            query_limits: QueryLimits::default(),
            push_deltas: Arc::default(),
            security: Arc::default(),
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
        self.api_token = token.filter(|t| !t.is_empty()).map(|t| digest(&t));
        self
    }

    /// Requires the API token for reads too (`--auth-reads`), but `/healthy` and `/ready`.
    pub fn with_auth_reads(mut self, auth_reads: bool) -> Self {
        Arc::make_mut(&mut self.security).auth_reads = auth_reads;
        self
    }

    /// The `Host` names served (`--allowed-hosts`).
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        Arc::make_mut(&mut self.security).allowed_hosts = hosts;
        self
    }

    /// Uses these budget and concurrency limits (share them with the scrape manager).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Holds queries to these bounds.
    pub fn with_query_limits(mut self, limits: QueryLimits) -> Self {
        self.query_limits = limits;
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
            Some(given) if constant_time_eq(&digest(given), token) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized(
                "the bearer token is not valid".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "this endpoint needs an Authorization: Bearer <token> header".into(),
            )),
        }
    }
}

/// SHA-256 of a token.
fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
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
    /// The body is not in the media type the endpoint takes.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Storage is still opening or replaying its write-ahead log.
    #[error("storage is not ready yet")]
    NotReady,
    /// Storage failed to write (an I/O error); the caller may retry (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The disk is full; the caller may retry once it has room (507).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// A limit refused the request: 400 (a bound of the request), 413 (a per-profile
    /// cap) or 429 (a budget or concurrency limit, with `Retry-After`). Counted in
    /// `cinder_rejected_total{endpoint, reason}`.
    #[error("{detail}")]
    Limit {
        status: StatusCode,
        reason: &'static str,
        detail: String,
        field: Option<String>,
        retry_after: Option<std::time::Duration>,
    },
    /// The query ran past `--query-timeout`.
    #[error("query timed out: {0}")]
    Timeout(String),
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

    /// A 400 from a query bound, naming the parameter.
    pub fn limit_field(field: &str, reason: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Limit {
            status: StatusCode::BAD_REQUEST,
            reason,
            detail: detail.into(),
            field: Some(field.to_owned()),
            retry_after: None,
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

/// A request body of raw bytes (pprof, protobuf), documented as `type: string, format:
/// binary` rather than as an array of numbers.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct Binary(Vec<u8>);

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
            ApiError::Limit {
                status,
                reason,
                detail,
                field,
                retry_after,
            } => return limit_response(status, reason, detail, field, retry_after),
            ApiError::Timeout(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "query timeout".into(),
                detail,
                None,
            ),
            ApiError::UnsupportedMediaType(detail) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type".into(),
                detail,
                None,
            ),
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready".into(),
                "storage is still opening; retry shortly".into(),
                None,
            ),
            ApiError::Unavailable(detail) => {
                tracing::error!(%detail, "storage unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable".into(),
                    detail,
                    None,
                )
            }
            ApiError::InsufficientStorage(detail) => {
                tracing::error!(%detail, "disk full");
                (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient storage".into(),
                    detail,
                    None,
                )
            }
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

/// Why a request was refused, attached to the answer for `cinder_rejected_total`.
#[derive(Debug, Clone, Copy)]
struct RejectReason(&'static str);

fn limit_response(
    status: StatusCode,
    reason: &'static str,
    detail: String,
    field: Option<String>,
    retry_after: Option<std::time::Duration>,
) -> Response {
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too large",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        _ => "limit exceeded",
    };
    let body = Json(ErrorBody {
        error: error.into(),
        detail,
        field,
    });
    let mut response = (status, body).into_response();
    if let Some(after) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(after.as_secs().max(1)),
        );
    }
    response.extensions_mut().insert(RejectReason(reason));
    response
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::ProfileTooLarge(detail) => ApiError::Limit {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                reason: "profile_too_large",
                detail,
                field: None,
                retry_after: None,
            },
            Refused::Busy {
                detail,
                retry_after,
            } => ApiError::Limit {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: "overloaded",
                detail,
                field: None,
                retry_after: Some(retry_after),
            },
        }
    }
}

tokio::task_local! {
    /// The route being served (for counting what its handler drops).
    static ENDPOINT: String;
}

/// The route the current request matched, inside a handler.
pub(crate) fn current_endpoint() -> String {
    ENDPOINT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".into())
}

/// The API routes plus the health, metrics and self-profiling endpoints.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    let _ = openapi::DOCUMENT.set(doc);
    router
        .route_service(otlp::GRPC_EXPORT_PATH, otlp::grpc_service(state.clone()))
        .nest("/api", Router::new().fallback(unknown_api_route))
        .route_layer(middleware::from_fn(partial::mark_partial_answers))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::check_request,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), track_query))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_rejections,
        ))
        .with_state(state)
        .layer(compression())
}

/// Compresses JSON and Arrow answers when the client asks (`Accept-Encoding: gzip` or
/// `zstd`), at the fastest level: answers are built per request, so speed beats ratio.
/// pprof exports are gzip already; other answers are left alone.
fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    use tower_http::compression::{CompressionLayer, CompressionLevel, predicate::SizeAbove};
    let compressible =
        |_: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &axum::http::Extensions| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| {
                    t.starts_with("application/json") || t.starts_with(shared::ipc::CONTENT_TYPE)
                })
        };
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(1024).and(compressible))
}

/// The OTLP gRPC receiver alone, for `--otlp-grpc-listen`.
pub fn otlp_grpc_router(state: AppState) -> Router {
    Router::new().route_service(otlp::GRPC_EXPORT_PATH, otlp::grpc_service(state))
}

/// Wraps the whole application (API and UI) in the `Host` check (`--allowed-hosts`).
pub fn with_host_check(app: Router, state: AppState) -> Router {
    app.layer(middleware::from_fn_with_state(state, guard::check_host))
}

/// The OpenAPI document of every route [`router`] serves, as it reads with `--api-token`
/// set (the committed `docs/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    guard::describe_document(&documented_routes().split_for_parts().1, true, false)
}

/// Counts refused requests per route and reason for `/metrics`.
async fn count_rejections(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let response = ENDPOINT.scope(endpoint.clone(), next.run(request)).await;
    if let Some(RejectReason(reason)) = response.extensions().get::<RejectReason>() {
        state.metrics.rejected(&endpoint, reason, 1);
    }
    response
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

/// `GET /debug/pprof/heap`: Cinder's own in-use heap (jemalloc's sampled allocations),
/// gzipped pprof with function names. Needs the API token when one is set.
#[utoipa::path(get, path = "/debug/pprof/heap", tag = "meta",
    responses(
        (status = 200, description = "Cinder's in-use heap, gzipped pprof (`inuse_space`, bytes)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "heap profiling is off in this process (it does not allocate through jemalloc)", body = ErrorBody),
        (status = 500, description = "the heap profiler failed", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn heap_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    state.store()?;
    let body = crate::debug::heap_profile().await.map_err(|e| match e {
        crate::debug::HeapError::Unavailable => ApiError::NotFound(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"heap\""),
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
        .routes(routes!(heap_profile))
        .routes(routes!(push::pyroscope_ingest).layer(push_limit()))
        .routes(routes!(push::parca_write_raw).layer(json_limit()))
        .routes(routes!(connect::push).layer(json_limit()))
        .routes(routes!(otlp::http_export).layer(json_limit()))
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
