//! `POST /api/v1/ingest?__name__=NAME&LABEL=VALUE…` with a pprof body (gzip or raw; the
//! Content-Type is ignored so curl's default works).

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
};
use shared::labels::Labels;

use super::{ApiError, AppState, ErrorBody};
use crate::ingest::{IngestError, IngestOptions, IngestSummary, PushItem, ingest_all};

/// Largest accepted (compressed) body.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Stores one pushed profile; answers with what was stored.
#[utoipa::path(post, path = "/ingest", tag = "ingest",
    params(
        ("__name__" = String, Query, description = "the profile's name, e.g. process_cpu; every other query parameter is a label"),
    ),
    request_body(content = Vec<u8>, description = "a pprof profile, gzipped or raw (any Content-Type)", content_type = "application/octet-stream"),
    responses((status = 200, body = IngestSummary),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(crate) async fn push(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestSummary>, ApiError> {
    state.authorize(&headers)?;
    let body = body.map_err(body_error)?;
    let labels: Labels = params.into_iter().collect();
    store_profiles(
        &state,
        vec![PushItem::new(body, labels)],
        IngestOptions::now(),
    )
    .await
    .map(Json)
}

/// Stores pushed profiles (all or none, see [`ingest_all`]) on a blocking thread, then
/// flushes the head if it is due.
pub(crate) async fn store_profiles(
    state: &AppState,
    items: Vec<PushItem>,
    options: IngestOptions,
) -> Result<IngestSummary, ApiError> {
    let store = state.store()?.clone();
    let writer = store.clone();
    let summary = tokio::task::spawn_blocking(move || ingest_all(&writer, &items, &options))
        .await
        .map_err(|e| ApiError::Internal(format!("ingest task failed: {e}")))?
        .map_err(ApiError::from)?;
    state
        .metrics
        .pushed(summary.profile_types.iter().map(|t| t.samples).sum());
    if store.flush_due() {
        tokio::task::spawn_blocking(move || {
            if let Err(err) = store.flush_if_due() {
                tracing::error!(%err, "flushing the head failed");
            }
        });
    }
    Ok(summary)
}

pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("the body is over {} MiB", MAX_BODY_BYTES >> 20))
    } else {
        ApiError::bad_request("unreadable body", rejection.body_text())
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Read(proto::ReadError::TooLarge { limit }) => ApiError::TooLarge(format!(
                "the profile decompresses to more than {} MiB",
                limit >> 20
            )),
            IngestError::Read(e) => ApiError::bad_request("invalid profile", e.to_string()),
            IngestError::Invalid(e) => ApiError::bad_request("invalid profile", e.to_string()),
            IngestError::MissingName => {
                ApiError::bad_field("__name__", "missing profile name", err.to_string())
            }
            IngestError::BadLabel { ref name, .. } => {
                ApiError::bad_field(&name.clone(), "invalid label", err.to_string())
            }
            IngestError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}
