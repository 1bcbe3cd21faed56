//! The push shapes existing agents send, so they can point at Cinder unchanged:
//! Pyroscope's `POST /ingest?name=app.cpu{k=v}&from&until&format=…` (pprof raw or
//! multipart, folded, lines or speedscope; see [`crate::ingest::pyroscope`]) and Parca's `WriteRaw`, as Connect JSON
//! (`POST /profilestore.v1alpha1.ProfileStoreService/WriteRaw`) or through its gateway
//! path (`POST /api/profiles/writeraw`).
//!
//! Agents send label names Prometheus would refuse (`otel.scope.name`); here they are
//! sanitized (`otel_scope_name`), and a label that cannot be saved costs that label,
//! not the profile.

use ::push::labels::{profile_suffix, pyroscope_labels};
use ::push::parca::{WriteRawError, WriteRawRequest};
use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::BytesRejection},
    http::{HeaderMap, header},
};

use super::{ApiError, AppState, ErrorBody, ingest::store_profiles};
use crate::ingest::{
    IngestOptions, IngestSummary, PushItem,
    pyroscope::{Format, Meta, to_profile},
};

/// `POST /ingest`: Pyroscope's push API: pprof, folded/groups, lines or speedscope.
#[utoipa::path(post, path = "/ingest", tag = "compat",
    params(
        ("name" = String, Query, description = "`app.cpu{k=v,…}`: an application name, then optionally tags in braces", pattern = "^[^{]*[^{\\s][^{]*(\\{.*\\})?$"),
        ("from" = Option<i64>, Query, description = "unix seconds"),
        ("until" = Option<i64>, Query, description = "unix seconds"),
        ("format" = Option<String>, Query, description = "pprof (default), folded, groups, lines or speedscope; jfr is refused", pattern = "^(pprof|folded|groups|lines|speedscope)$"),
        ("sampleRate" = Option<u32>, Query, description = "Hz of CPU and wall samples in text formats (default 100)", minimum = 1),
        ("spyName" = Option<String>, Query, description = "the agent, stored as the pyroscope_spy label"),
        ("units" = Option<String>, Query, description = "samples, objects, goroutines, bytes, lock_samples or lock_nanoseconds"),
        ("aggregationType" = Option<String>, Query, description = "sum (default; stored as a delta) or average (a snapshot)"),
    ),
    request_body(content = super::Binary, description = "pprof (raw or multipart with a `profile` part), folded or lines text, or speedscope JSON", content_type = "application/octet-stream"),
    responses((status = 200, body = IngestSummary), (status = 400, body = ErrorBody),
        (status = 413, description = "the body is over 16 MiB, or a profile is over a per-profile cap (--max-profile-samples, --max-profile-locations)", body = ErrorBody),
        (status = 429, description = "the ingest memory budget, the push concurrency limit or --max-series-per-type is reached; nothing of the request was stored", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait before retrying")))))]
pub(crate) async fn pyroscope_ingest(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestSummary>, ApiError> {
    state.authorize(&headers)?;
    let body = body.map_err(super::ingest::body_error)?;
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let format = param("format").unwrap_or("pprof");
    let text_format = match format {
        "pprof" => None,
        "jfr" => {
            return Err(ApiError::bad_field(
                "format",
                "unsupported format",
                "format=\"jfr\" is not supported by Cinder; send pprof, folded, groups, lines or speedscope",
            ));
        }
        other => Some(Format::parse(other).ok_or_else(|| {
            ApiError::bad_field(
                "format",
                "unsupported format",
                format!(
                    "format={other:?}; Cinder accepts pprof, folded, groups, lines and speedscope"
                ),
            )
        })?),
    };
    let name = param("name").ok_or_else(|| {
        ApiError::bad_field(
            "name",
            "missing parameter",
            "name is required, e.g. name=app.cpu{env=prod}",
        )
    })?;
    let mut labels = pyroscope_labels(name)
        .map_err(|detail| ApiError::bad_field("name", "invalid name", detail))?;
    if let Some(spy) = param("spyName").filter(|s| !s.is_empty()) {
        labels.insert(SPY_LABEL, spy);
    }
    let mut options = IngestOptions::now();
    let from = seconds_param(param("from"), "from")?;
    if let Some(from) = from {
        options.received_ms = from.saturating_mul(1000);
    }
    let item = match text_format {
        None => {
            let profile = match multipart_boundary(&headers) {
                Some(boundary) => multipart_profile(body, boundary).await?,
                None => body,
            };
            PushItem::new(profile, labels)
        }
        Some(format) => {
            let profile = text_profile(format, name, &param, &body, &options)?;
            PushItem {
                delta: Some(aggregation_is_sum(param("aggregationType"))?),
                ..PushItem::new(profile, labels)
            }
        }
    };
    store_profiles(&state, vec![item], options).await.map(Json)
}

/// The profile of a folded, lines or speedscope body, described by the query string.
fn text_profile<'p>(
    format: Format,
    name: &'p str,
    param: &dyn Fn(&str) -> Option<&'p str>,
    body: &[u8],
    options: &IngestOptions,
) -> Result<proto::Profile, ApiError> {
    let meta = Meta {
        suffix: profile_suffix(name),
        sample_rate: sample_rate(param("sampleRate"))?,
        units: param("units"),
        from: seconds_param(param("from"), "from")?.unwrap_or(options.received_ms / 1000),
        until: seconds_param(param("until"), "until")?.unwrap_or(0),
    };
    let raw = proto::inflate(body, options.max_uncompressed)
        .map_err(|e| ApiError::from(crate::ingest::IngestError::Read(e)))?;
    to_profile(format, &raw, &meta).map_err(|e| {
        ApiError::bad_request(
            format!("invalid {format:?} profile").to_lowercase(),
            e.to_string(),
        )
    })
}

/// `aggregationType`: `sum` (default) stores a delta, `average` a snapshot.
fn aggregation_is_sum(value: Option<&str>) -> Result<bool, ApiError> {
    match value.unwrap_or("sum") {
        "sum" | "" => Ok(true),
        "average" | "avg" => Ok(false),
        other => Err(ApiError::bad_field(
            "aggregationType",
            "invalid aggregationType",
            format!("aggregationType={other:?}; expected sum or average"),
        )),
    }
}

/// Pyroscope's label for the agent that sent a profile (`spyName`).
const SPY_LABEL: &str = "pyroscope_spy";

/// An optional unix-seconds parameter.
fn seconds_param(value: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_field(
                    field,
                    "invalid time",
                    format!("{field}={v:?}; expected unix seconds"),
                )
            })
        })
        .transpose()
}

/// `sampleRate` (Hz, default 100).
fn sample_rate(value: Option<&str>) -> Result<u32, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(100),
        Some(v) => v.parse::<u32>().ok().filter(|r| *r > 0).ok_or_else(|| {
            ApiError::bad_field(
                "sampleRate",
                "invalid sampleRate",
                format!("sampleRate={v:?}; expected a positive whole number of Hz"),
            )
        }),
    }
}

fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !content_type.starts_with("multipart/") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

/// The `profile` part of a multipart body (Pyroscope's Go agent sends one).
async fn multipart_profile(body: Bytes, boundary: String) -> Result<Bytes, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let unreadable =
        |e: multer::Error| ApiError::bad_request("unreadable multipart body", e.to_string());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() == Some("profile") {
            return field.bytes().await.map_err(unreadable);
        }
    }
    Err(ApiError::bad_field(
        "profile",
        "missing profile",
        "the multipart body has no part named \"profile\"",
    ))
}

/// `POST /profilestore.v1alpha1.ProfileStoreService/WriteRaw` and
/// `POST /api/profiles/writeraw`: Parca agents' push, JSON forms. Every profile of the
/// request is decoded and checked before any is stored.
#[utoipa::path(post, path = "/profilestore.v1alpha1.ProfileStoreService/WriteRaw", tag = "compat",
    request_body(content = WriteRawRequest, content_type = "application/json"),
    responses((status = 200, description = "`{}`"), (status = 400, body = ErrorBody),
        (status = 413, description = "the body is over 16 MiB, or a profile is over a per-profile cap (--max-profile-samples, --max-profile-locations)", body = ErrorBody),
        (status = 429, description = "the ingest memory budget, the push concurrency limit or --max-series-per-type is reached; nothing of the request was stored", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait before retrying")))))]
pub(crate) async fn parca_write_raw(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.authorize(&headers)?;
    let body = body.map_err(super::ingest::body_error)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.contains("json") {
        return Err(ApiError::bad_request(
            "unsupported content type",
            format!("{content_type}: Cinder accepts the JSON form of WriteRaw (application/json)"),
        ));
    }
    let profiles = ::push::parca::decode(&body)
        .map_err(|e| match e {
            WriteRawError::Json(detail) => {
                ApiError::bad_request("invalid WriteRaw request", detail)
            }
            e @ WriteRawError::Base64 { .. } => {
                ApiError::bad_field("raw_profile", "invalid base64", e.to_string())
            }
        })?
        .into_iter()
        .map(|(labels, raw)| PushItem::new(Bytes::from(raw), labels))
        .collect();
    store_profiles(&state, profiles, IngestOptions::now()).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /api/profiles/writeraw`: [`parca_write_raw`] through Parca's gateway path.
#[utoipa::path(post, path = "/profiles/writeraw", tag = "compat",
    request_body(content = WriteRawRequest, content_type = "application/json"),
    responses((status = 200, description = "`{}`"), (status = 400, body = ErrorBody),
        (status = 413, description = "the body is over 16 MiB, or a profile is over a per-profile cap (--max-profile-samples, --max-profile-locations)", body = ErrorBody),
        (status = 429, description = "the ingest memory budget, the push concurrency limit or --max-series-per-type is reached; nothing of the request was stored", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait before retrying")))))]
pub(crate) async fn parca_write_raw_gateway(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    parca_write_raw(state, headers, body).await
}
