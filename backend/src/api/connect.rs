//! Pyroscope's Connect push API, `POST /push.v1.PusherService/Push`, as Grafana's Pyroscope
//! SDKs (Go, Python, Ruby, .NET, Rust, Java) and Alloy send it: unary Connect with an
//! `application/proto` or `application/json` body, optionally `Content-Encoding: gzip`,
//! `Connect-Protocol-Version` not required.
//!
//! Labels map as Pyroscope maps them: `__name__` and `service_name` come from the series
//! labels, other names are sanitized (`service.version` → `service_version`) and other
//! `__` names dropped. `__delta__="false"` says the SDK sends deltas already; otherwise Go's
//! cumulative counters (`alloc_*`, `contentions`, `delay`) are differenced per series
//! against the previous push of that series, as the scraper does ([`crate::scrape::delta`]),
//! the first push of a series only setting the baseline.
//!
//! Answers: the empty `PushResponse` in the request's codec; errors as Connect's JSON
//! `{"code", "message"}` with the matching HTTP status.

use std::{borrow::Cow, collections::HashMap, sync::Mutex};

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use prost::Message as _;
use proto::pyroscope::PushRequest;
use serde::Serialize;
use shared::labels::Labels;

use super::{ApiError, AppState, ingest::store_profiles};
use crate::{
    ingest::{DEFAULT_MAX_UNCOMPRESSED, IngestOptions, PushItem, check_series_labels},
    scrape::delta::{self, DeltaState},
};

use ::push::labels::series_labels;

/// How many series' delta baselines are kept; the least recently pushed go first.
const MAX_DELTA_SERIES: usize = 10_000;

/// A Connect error: `{"code": "invalid_argument", "message": …}` and its HTTP status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectError {
    /// Connect's error code, e.g. `invalid_argument`.
    code: String,
    /// What went wrong.
    message: String,
}

impl ConnectError {
    fn invalid(message: impl Into<String>) -> Self {
        ConnectError {
            code: "invalid_argument".into(),
            message: message.into(),
        }
    }

    /// The HTTP status Connect maps the code to.
    fn status(&self) -> StatusCode {
        match self.code.as_str() {
            "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "aborted" | "already_exists" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for ConnectError {
    fn from(err: ApiError) -> Self {
        let message = err.to_string();
        let code = match err.into_response().status() {
            StatusCode::BAD_REQUEST => "invalid_argument",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::FORBIDDEN => "permission_denied",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "aborted",
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => "resource_exhausted",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        ConnectError {
            code: code.into(),
            message,
        }
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

/// The codec of a Connect unary request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Json,
}

impl Codec {
    fn of(headers: &HeaderMap) -> Result<Codec, ConnectError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/proto");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/proto" | "application/protobuf" | "application/x-protobuf" => {
                Ok(Codec::Proto)
            }
            "application/json" => Ok(Codec::Json),
            _ => Err(ConnectError {
                code: "unimplemented".into(),
                message: format!(
                    "content type {content_type:?}: unary Connect with application/proto or application/json is served"
                ),
            }),
        }
    }

    /// The empty `PushResponse` in this codec.
    fn empty_response(self) -> Response {
        match self {
            Codec::Proto => {
                ([(header::CONTENT_TYPE, "application/proto")], Vec::new()).into_response()
            }
            Codec::Json => Json(serde_json::json!({})).into_response(),
        }
    }
}

/// The request body with its `Content-Encoding` undone (gzip or identity), inflated to at
/// most `limit` bytes.
pub(crate) fn decoded_body(
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" if proto::is_gzip(body) => {
            proto::inflate(body, limit)
                .map(Cow::into_owned)
                .map_err(|e| match e {
                    proto::ReadError::TooLarge { limit } => {
                        ApiError::TooLarge(format!("the body inflates to more than {limit} bytes"))
                    }
                    e => ApiError::bad_request("invalid gzip body", e.to_string()),
                })
        }
        "gzip" => Err(ApiError::bad_request(
            "invalid gzip body",
            "Content-Encoding: gzip but the body is not gzip",
        )),
        other => Err(ApiError::bad_request(
            "unsupported content encoding",
            format!("Content-Encoding: {other}; gzip and identity are accepted"),
        )),
    }
}

/// Delta baselines of pushed series (keyed by a hash of their labels).
#[derive(Debug, Default)]
pub(crate) struct PushDeltas {
    inner: Mutex<Baselines>,
}

#[derive(Debug, Default)]
struct Baselines {
    /// Each series' state and when it was last pushed (a push counter).
    series: HashMap<u64, (DeltaState, u64)>,
    pushes: u64,
}

impl PushDeltas {
    /// Differences a cumulative profile against the previous push of its series.
    fn convert(&self, labels: &Labels, profile: proto::Profile, now_ms: i64) -> Vec<delta::Part> {
        let key = labels_key(labels);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.pushes += 1;
        let tick = inner.pushes;
        if !inner.series.contains_key(&key) && inner.series.len() >= MAX_DELTA_SERIES {
            let oldest = inner
                .series
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                inner.series.remove(&oldest);
            }
        }
        let (state, used) = inner.series.entry(key).or_default();
        *used = tick;
        delta::convert(profile, false, state, now_ms.saturating_mul(1_000_000)).0
    }
}

fn labels_key(labels: &Labels) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in labels.iter() {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(value.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

/// `POST /push.v1.PusherService/Push`: Pyroscope's push, unary Connect.
#[utoipa::path(post, path = "/push.v1.PusherService/Push", tag = "compat",
    request_body(content = Option<super::Binary>, description = "push.v1.PushRequest, protobuf (application/proto) or JSON (application/json), optionally Content-Encoding: gzip; an empty body is the empty request (protobuf's zero-length message)", content_type = "application/proto"),
    responses((status = 200, description = "the empty PushResponse in the request's codec (`{}` in JSON)"),
        (status = 400, body = ConnectError), (status = 401, body = ConnectError),
        (status = 415, description = "neither application/proto nor application/json", body = ConnectError)))]
pub(crate) async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(err) = state.authorize(&headers) {
        return ConnectError::from(err).into_response();
    }
    let codec = match Codec::of(&headers) {
        Ok(codec) => codec,
        // Connect answers an unsupported codec with 415 and the ones it takes.
        Err(err) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                [(ACCEPT_POST, "application/proto, application/json")],
                Json(err),
            )
                .into_response();
        }
    };
    match push_body(&state, &headers, codec, body).await {
        Ok(()) => codec.empty_response(),
        Err(err) => err.into_response(),
    }
}

/// `Accept-Post`: the media types a POST takes (RFC 9110's companion, RFC 5789 style).
const ACCEPT_POST: header::HeaderName = header::HeaderName::from_static("accept-post");

async fn push_body(
    state: &AppState,
    headers: &HeaderMap,
    codec: Codec,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), ConnectError> {
    let body = body.map_err(super::ingest::body_error)?;
    let body = decoded_body(headers, &body, DEFAULT_MAX_UNCOMPRESSED)?;
    let request = match codec {
        Codec::Proto => PushRequest::decode(body.as_slice())
            .map_err(|e| ConnectError::invalid(format!("invalid PushRequest protobuf: {e}")))?,
        Codec::Json => serde_json::from_slice(&body)
            .map_err(|e| ConnectError::invalid(format!("invalid PushRequest JSON: {e}")))?,
    };
    let options = IngestOptions::now();
    let items = push_items(state, request, &options)?;
    store_profiles(state, items, options).await?;
    Ok(())
}

/// Every profile of the request, read and validated, with its labels; cumulative ones
/// differenced. Every profile is checked before any baseline moves or anything is
/// stored, so a bad request changes nothing.
fn push_items(
    state: &AppState,
    request: PushRequest,
    options: &IngestOptions,
) -> Result<Vec<PushItem>, ConnectError> {
    let mut decoded = Vec::new();
    for (s, series) in request.series.into_iter().enumerate() {
        let (labels, server_delta) = series_labels(&series);
        check_series_labels(&labels)
            .map_err(|e| ConnectError::invalid(format!("series[{s}]: {e}")))?;
        for (i, sample) in series.samples.into_iter().enumerate() {
            let at = |e: &dyn std::fmt::Display| format!("series[{s}].samples[{i}]: {e}");
            let profile = proto::read(&sample.raw_profile, options.max_uncompressed).map_err(
                |e| match e {
                    proto::ReadError::TooLarge { .. } => ConnectError {
                        code: "resource_exhausted".into(),
                        message: at(&e),
                    },
                    e => ConnectError::invalid(at(&e)),
                },
            )?;
            profile
                .validate()
                .map_err(|e| ConnectError::invalid(at(&e)))?;
            decoded.push((labels.clone(), server_delta, profile));
        }
    }
    let mut items = Vec::with_capacity(decoded.len());
    for (labels, server_delta, profile) in decoded {
        let parts = if server_delta {
            state
                .push_deltas
                .convert(&labels, profile, options.received_ms)
        } else {
            delta::split_deltas(profile)
        };
        items.extend(parts.into_iter().map(|part| PushItem {
            payload: part.profile.into(),
            labels: labels.clone(),
            delta: Some(part.delta),
        }));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::pyroscope::{LabelPair, RawProfileSeries};

    #[test]
    fn labels_map_as_pyroscope_does() {
        let pair = |name: &str, value: &str| LabelPair {
            name: name.into(),
            value: value.into(),
        };
        let series = RawProfileSeries {
            labels: vec![
                pair("__name__", "process_cpu"),
                pair("service_name", "shop"),
                pair("__delta__", "false"),
                pair("service.version", "1.2"),
                pair("__session_id__", "x"),
            ],
            ..Default::default()
        };
        let (labels, server_delta) = series_labels(&series);
        assert!(!server_delta);
        assert_eq!(labels.get("__name__"), Some("process_cpu"));
        assert_eq!(labels.get("service_name"), Some("shop"));
        assert_eq!(labels.get("service_version"), Some("1.2"));
        assert_eq!(labels.len(), 3);
        let (_, server_delta) = series_labels(&RawProfileSeries::default());
        assert!(server_delta);
    }

    #[test]
    fn api_errors_map_to_connect_codes() {
        let e = ConnectError::from(ApiError::bad_request("x", "y"));
        assert_eq!(
            (e.code.as_str(), e.status()),
            ("invalid_argument", StatusCode::BAD_REQUEST)
        );
        let e = ConnectError::from(ApiError::TooLarge("big".into()));
        assert_eq!(e.code, "resource_exhausted");
        let e = ConnectError::from(ApiError::Unauthorized("no".into()));
        assert_eq!(
            (e.code.as_str(), e.status()),
            ("unauthenticated", StatusCode::UNAUTHORIZED)
        );
        let e = ConnectError::from(ApiError::NotReady);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn content_encodings() {
        let mut headers = HeaderMap::new();
        assert_eq!(decoded_body(&headers, b"abc", 10).unwrap(), b"abc");
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(decoded_body(&headers, b"abc", 10).is_err());
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert!(decoded_body(&headers, b"abc", 10).is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[0u8; 100]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(matches!(
            decoded_body(&headers, &gz, 10),
            Err(ApiError::TooLarge(_))
        ));
        assert_eq!(decoded_body(&headers, &gz, 100).unwrap().len(), 100);
    }
}
