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
use std::sync::Arc;

use crate::ingest::{IngestError, IngestOptions, IngestSummary, PushItem, ingest_admitted};

/// Largest accepted (compressed) body.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Stores one pushed profile; answers with what was stored.
#[utoipa::path(post, path = "/ingest", tag = "ingest",
    params(
        ("__name__" = String, Query, description = "the profile's name, e.g. process_cpu; every other query parameter is a label"),
    ),
    request_body(content = super::Binary, description = "a pprof profile, gzipped or raw (any Content-Type)", content_type = "application/octet-stream"),
    responses((status = 200, body = IngestSummary),
        (status = 400, description = "an invalid profile or label, a label over a limit (--max-labels-per-series, --max-label-name-length, --max-label-value-length), or a profile time outside the allowed window (field time_nanos)", body = ErrorBody),
        (status = 413, description = "the body is over 16 MiB, or a profile is over a per-profile cap (--max-profile-samples, --max-profile-locations)", body = ErrorBody),
        (status = 429, description = "the ingest memory budget, the push concurrency limit or --max-series-per-type is reached; nothing of the request was stored", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait before retrying"))),
        (status = 503, description = "storage is opening or failed to write; nothing was stored, retry", body = ErrorBody),
        (status = 507, description = "the disk is full; nothing was stored, retry once it has room", body = ErrorBody)))]
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

/// Stores pushed profiles (all or none, see [`ingest_admitted`]) on a blocking thread
/// once a push slot and budget are free, then flushes the head if it is due.
pub(crate) async fn store_profiles(
    state: &AppState,
    items: Vec<PushItem>,
    mut options: IngestOptions,
) -> Result<IngestSummary, ApiError> {
    let store = state.store()?.clone();
    let _slot = state.admission.push().await?;
    let admission = state.admission.clone();
    options.limits = Arc::new(admission.limits().clone());
    let writer = store.clone();
    let summary = tokio::task::spawn_blocking(move || {
        ingest_admitted(&writer, &items, &options, Some(&admission))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingest task failed: {e}")))?
    .map_err(ApiError::from)?;
    state
        .metrics
        .pushed(summary.profile_types.iter().map(|t| t.samples).sum());
    if summary.dropped_sample_labels > 0 {
        state.metrics.rejected(
            &super::current_endpoint(),
            "sample_label_values",
            summary.dropped_sample_labels,
        );
    }
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
        let reason = err.reason();
        match err {
            IngestError::Read(proto::ReadError::TooLarge { limit }) => ApiError::TooLarge(format!(
                "the profile decompresses to more than {} MiB",
                limit >> 20
            )),
            IngestError::Read(e) => ApiError::bad_request("invalid profile", e.to_string()),
            IngestError::Framing(e) => ApiError::bad_request("invalid profile", e.to_string()),
            IngestError::Invalid(e) => ApiError::bad_request("invalid profile", e.to_string()),
            IngestError::MissingName => {
                ApiError::bad_field("__name__", "missing profile name", err.to_string())
            }
            IngestError::BadLabel { ref name, .. } => {
                ApiError::bad_field(&name.clone(), "invalid label", err.to_string())
            }
            IngestError::OutOfBounds { .. } => {
                ApiError::bad_field("time_nanos", "profile time out of bounds", err.to_string())
            }
            IngestError::Store(e) if e.is_disk_full() => ApiError::InsufficientStorage(format!(
                "the disk is full; nothing was stored, retry once it has room: {e}"
            )),
            IngestError::Store(e) if e.is_io() => ApiError::Unavailable(format!(
                "storage failed to write; nothing was stored, retry later: {e}"
            )),
            IngestError::LabelLimit { field, detail } => {
                ApiError::limit_field(&field, reason, detail)
            }
            IngestError::TooManySeries { .. } => ApiError::Limit {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason,
                detail: err.to_string(),
                field: None,
                retry_after: Some(std::time::Duration::from_secs(60)),
            },
            IngestError::Refused(refused) => refused.into(),
            IngestError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{body::Body, http::Request};
    use proto::{Function, Line, Location, Message as _, Profile, Sample, ValueType};
    use tower::ServiceExt as _;

    use crate::{
        api::{AppState, router},
        store::{
            Store, StoreOptions,
            io::{EIO, ENOSPC, Faults, Io, Op},
        },
    };

    fn profile(value: i64) -> Vec<u8> {
        let strings = ["", "samples", "count", "main.main"];
        Profile {
            sample_type: vec![ValueType { ty: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: vec![1],
                value: vec![value],
                ..Default::default()
            }],
            location: vec![Location {
                id: 1,
                line: vec![Line {
                    function_id: 1,
                    line: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            function: vec![Function {
                id: 1,
                name: 3,
                ..Default::default()
            }],
            string_table: strings.map(|s| s.as_bytes().to_vec()).to_vec(),
            time_nanos: crate::store::now_ms() * 1_000_000,
            ..Default::default()
        }
        .encode_to_vec()
    }

    async fn post(app: &axum::Router, body: Vec<u8>) -> (u16, serde_json::Value) {
        let request = Request::post("/api/v1/ingest?__name__=cpu&job=disk")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn storage_faults_answer_507_or_503_and_ingest_works_again_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::default());
        let options = StoreOptions {
            io: Io::with_faults(faults.clone()),
            ..StoreOptions::default()
        };
        let store = Arc::new(Store::open(dir.path(), options).unwrap());
        let state = AppState::new();
        state.set_store(store.clone());
        let app = router(state);
        faults.fail(Op::Sync, 1, u64::MAX, ENOSPC);
        let (status, body) = post(&app, profile(5)).await;
        assert_eq!(status, 507, "{body}");
        assert_eq!(body["error"], "insufficient storage");
        assert!(body["detail"].as_str().unwrap().contains("retry"));
        faults.clear();
        faults.fail(Op::Write, 1, 1, EIO);
        let (status, body) = post(&app, profile(7)).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "storage unavailable");
        let (status, body) = post(&app, profile(11)).await;
        assert_eq!(status, 200, "{body}");
        let types = store.meta.profile_types();
        assert_eq!(types.len(), 1);
        let snapshot = store.snapshot(&types[0], i64::MIN, i64::MAX);
        let stored: i64 = snapshot
            .batches
            .iter()
            .map(|b| {
                let values = b.column(3).as_any();
                let values = values.downcast_ref::<arrow::array::Int64Array>().unwrap();
                values.values().iter().sum::<i64>()
            })
            .sum();
        assert_eq!(stored, 11, "only the acknowledged profile is stored");
    }
}
