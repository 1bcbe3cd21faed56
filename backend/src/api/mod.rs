//! The HTTP API: axum routes, their JSON shapes, and the one error type that maps every
//! failure to a status code and a `{"error", "detail", "field"}` body.

use std::sync::{Arc, OnceLock};

mod ingest;
mod openapi;
mod params;
mod push;
mod query;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, router::UtoipaMethodRouterExt as _, routes};

pub use ingest::MAX_BODY_BYTES;
pub use openapi::ProfileTypeDoc;
pub use query::{
    FlameNode, FlamegraphReport, RangePoint, RangeResponse, RangeSeries, StacksReport, TopReport,
    TopReportRow,
};
use serde::Serialize;

use crate::store::Store;

/// Largest accepted JSON push body: base64 makes profiles a third larger.
pub const MAX_JSON_BODY_BYTES: usize = MAX_BODY_BYTES * 3 / 2;

/// What every handler can reach.
#[derive(Clone, Default)]
pub struct AppState {
    store: Arc<OnceLock<Arc<Store>>>,
}

impl AppState {
    /// A state whose store is not open yet: `/ready` answers 503 until [`Self::set_store`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes the opened (and replayed) store; from now on the server is ready.
    pub fn set_store(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    /// The store, or 503 while it is still being opened.
    pub fn store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store.get().ok_or(ApiError::NotReady)
    }
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

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A short, stable description of the kind of failure.
    pub error: String,
    /// What exactly was wrong.
    pub detail: String,
    /// The request parameter or form field at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

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

/// The API routes plus the health endpoints.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    if let Ok(json) = serde_json::to_value(&doc) {
        let _ = openapi::DOCUMENT.set(json);
    }
    router
        .nest("/api", Router::new().fallback(unknown_api_route))
        .with_state(state)
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// Every route, each registered with its OpenAPI description.
fn documented_routes() -> OpenApiRouter<AppState> {
    let push_limit = || DefaultBodyLimit::max(MAX_BODY_BYTES);
    let json_limit = || DefaultBodyLimit::max(MAX_JSON_BODY_BYTES);
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthy))
        .routes(routes!(ready))
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
