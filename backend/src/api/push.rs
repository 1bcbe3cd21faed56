//! The push shapes existing agents send, so they can point at Cinder unchanged:
//! Pyroscope's `POST /ingest?name=app.cpu{k=v}&from&until&format=…` (pprof raw or
//! multipart, folded, lines or speedscope; see [`crate::ingest::pyroscope`]) and Parca's `WriteRaw`, as Connect JSON
//! (`POST /profilestore.v1alpha1.ProfileStoreService/WriteRaw`) or through its gateway
//! path (`POST /api/profiles/writeraw`).
//!
//! Agents send label names Prometheus would refuse (`otel.scope.name`); here they are
//! sanitized (`otel_scope_name`), and a label that cannot be saved costs that label,
//! not the profile.

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::BytesRejection},
    http::{HeaderMap, header},
};
use base64::Engine as _;
use serde::Deserialize;
use shared::labels::{Labels, NAME_LABEL, sanitize_label_name};

use super::{ApiError, AppState, ErrorBody, ingest::store_profiles};
use crate::ingest::{
    IngestOptions, IngestSummary, PushItem,
    pyroscope::{Format, Meta, to_profile},
};

/// Pyroscope's label for the application name.
const SERVICE_LABEL: &str = "service_name";

/// `POST /ingest`: Pyroscope's push API: pprof, folded/groups, lines or speedscope.
#[utoipa::path(post, path = "/ingest", tag = "compat",
    params(
        ("name" = String, Query, description = "`app.cpu{k=v,…}`"),
        ("from" = Option<i64>, Query, description = "unix seconds"),
        ("until" = Option<i64>, Query, description = "unix seconds"),
        ("format" = Option<String>, Query, description = "pprof (default), folded, groups, lines or speedscope; jfr is refused", pattern = "^(pprof|folded|groups|lines|speedscope)$"),
        ("sampleRate" = Option<u32>, Query, description = "Hz of CPU and wall samples in text formats (default 100)"),
        ("spyName" = Option<String>, Query, description = "the agent, stored as the pyroscope_spy label"),
        ("units" = Option<String>, Query, description = "samples, objects, goroutines, bytes, lock_samples or lock_nanoseconds"),
        ("aggregationType" = Option<String>, Query, description = "sum (default; stored as a delta) or average (a snapshot)"),
    ),
    request_body(content = Vec<u8>, description = "pprof (raw or multipart with a `profile` part), folded or lines text, or speedscope JSON", content_type = "application/octet-stream"),
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

/// The profile suffix of a Pyroscope name (`cpu` of `app.cpu{…}`), `""` when the name has
/// none Cinder knows.
fn profile_suffix(name: &str) -> &str {
    let app = name.split('{').next().unwrap_or("").trim();
    app.rsplit_once('.')
        .map(|(_, suffix)| suffix)
        .filter(|suffix| parca_name_of(suffix).is_some())
        .unwrap_or("")
}

/// The labels of a Pyroscope `name`: `app.cpu{env=prod,region=eu}` →
/// `service_name="app"`, `__name__="process_cpu"`, `env`, `region`.
///
/// A known profile suffix (`.cpu`, `.alloc_space`, …) picks `__name__` as Parca names
/// it; without one, the whole name is the service and `__name__` is `process_cpu`, what
/// Pyroscope's agents push by default.
pub(crate) fn pyroscope_labels(name: &str) -> Result<Labels, String> {
    let (app, tags) = match name.find('{') {
        Some(open) => {
            let Some(inner) = name[open + 1..].strip_suffix('}') else {
                return Err(format!("{name:?}: the label list must end with '}}'"));
            };
            (&name[..open], inner)
        }
        None => (name, ""),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err(format!("{name:?} has no application name"));
    }
    let (service, profile) = match app.rsplit_once('.') {
        Some((service, suffix)) => match parca_name_of(suffix) {
            Some(profile) => (service, profile),
            None => (app, "process_cpu"),
        },
        None => (app, "process_cpu"),
    };
    let mut labels = Labels::new();
    for pair in tags.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            tracing::debug!(pair, "pyroscope tag without '=' dropped");
            continue;
        };
        insert_sanitized(&mut labels, key.trim(), value.trim());
    }
    labels.insert(SERVICE_LABEL, service);
    labels.insert(NAME_LABEL, profile);
    Ok(labels)
}

/// Parca's profile name for a Pyroscope profile suffix.
fn parca_name_of(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "cpu" | "itimer" => "process_cpu",
        "wall" => "wall",
        "alloc_objects" | "alloc_space" | "inuse_objects" | "inuse_space" => "memory",
        "goroutines" | "goroutine" => "goroutine",
        "mutex_count" | "mutex_duration" => "mutex",
        "block_count" | "block_duration" => "block",
        _ => return None,
    })
}

/// Adds a label under its sanitized name; a name that cannot be sanitized, or a
/// reserved `__` name, is dropped (and logged) instead of refusing the profile.
pub(crate) fn insert_sanitized(labels: &mut Labels, name: &str, value: &str) {
    match sanitize_label_name(name) {
        Some(clean) if !clean.starts_with("__") => {
            labels.insert(clean, value);
        }
        _ => tracing::debug!(name, "label dropped: not a usable label name"),
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

/// Parca's `WriteRawRequest` in protobuf JSON (both `raw_profile` and `rawProfile`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct WriteRawRequest {
    #[serde(default)]
    series: Vec<RawProfileSeries>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RawProfileSeries {
    #[serde(default)]
    labels: LabelSet,
    #[serde(default)]
    samples: Vec<RawSample>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct LabelSet {
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RawLabel {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RawSample {
    #[serde(rename = "rawProfile", alias = "raw_profile", default)]
    raw_profile: String,
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
    let request: WriteRawRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid WriteRaw request", e.to_string()))?;
    let mut profiles = Vec::new();
    for (s, series) in request.series.iter().enumerate() {
        let mut labels = Labels::new();
        for label in &series.labels.labels {
            if label.name == NAME_LABEL {
                labels.insert(NAME_LABEL, label.value.as_str());
            } else {
                insert_sanitized(&mut labels, &label.name, &label.value);
            }
        }
        for (i, sample) in series.samples.iter().enumerate() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(sample.raw_profile.trim())
                .map_err(|e| {
                    ApiError::bad_field(
                        "raw_profile",
                        "invalid base64",
                        format!("series[{s}].samples[{i}].raw_profile: {e}"),
                    )
                })?;
            profiles.push(PushItem::new(Bytes::from(raw), labels.clone()));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyroscope_names_map_to_parca_labels() {
        let l = pyroscope_labels(
            "ride-sharing-app.cpu{region=eu-north,otel.scope.name=x, vehicle = car}",
        )
        .unwrap();
        assert_eq!(l.get("service_name"), Some("ride-sharing-app"));
        assert_eq!(l.get("__name__"), Some("process_cpu"));
        assert_eq!(l.get("region"), Some("eu-north"));
        assert_eq!(l.get("otel_scope_name"), Some("x"));
        assert_eq!(l.get("vehicle"), Some("car"));
        let l = pyroscope_labels("app.alloc_space").unwrap();
        assert_eq!(l.get("__name__"), Some("memory"));
        let l = pyroscope_labels("my.service{}").unwrap();
        assert_eq!(l.get("service_name"), Some("my.service"));
        assert_eq!(l.get("__name__"), Some("process_cpu"));
    }

    #[test]
    fn bad_pyroscope_names_are_errors_and_bad_tags_are_dropped() {
        assert!(
            pyroscope_labels("app{a=b")
                .unwrap_err()
                .contains("must end")
        );
        assert!(pyroscope_labels("{a=b}").is_err());
        let l = pyroscope_labels("app{__name__=evil,=x,novalue,9lives=1}").unwrap();
        assert_eq!(l.get("__name__"), Some("process_cpu"));
        assert_eq!(l.get("_9lives"), Some("1"));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn write_raw_json_accepts_both_field_spellings() {
        let camel: WriteRawRequest = serde_json::from_str(
            r#"{"normalized":true,"series":[{"labels":{"labels":[{"name":"__name__","value":"parca_agent_cpu"}]},"samples":[{"rawProfile":"AAE=","executableInfo":[]}]}]}"#,
        )
        .unwrap();
        assert_eq!(camel.series[0].samples[0].raw_profile, "AAE=");
        let snake: WriteRawRequest =
            serde_json::from_str(r#"{"series":[{"samples":[{"raw_profile":"AAE="}]}]}"#).unwrap();
        assert_eq!(snake.series[0].samples[0].raw_profile, "AAE=");
    }
}
