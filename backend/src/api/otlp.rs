//! The OTLP profiles receiver: gRPC
//! `opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export` (on the
//! HTTP port over h2c, and on `--otlp-grpc-listen`), and OTLP/HTTP
//! `POST /v1development/profiles` with `application/x-protobuf` or `application/json`,
//! gzip or not, answered in the request's content type. The mapping is
//! [`crate::ingest::otlp`]'s.
//!
//! A request whose every profile is bad gets the protocol's error (gRPC
//! `InvalidArgument`, HTTP 400 with an OTLP `Status`) and stores nothing; one with some
//! good profiles stores those and reports `partial_success` with `rejected_profiles` and
//! the reasons.

use std::sync::LazyLock;

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesPartialSuccess, ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};

use super::{ApiError, AppState, connect::decoded_body, ingest::store_profiles};
use crate::ingest::{
    DEFAULT_MAX_UNCOMPRESSED, IngestOptions, PushItem,
    otlp::{convert, profile_count},
};

/// The gRPC path of the Export method.
pub(crate) const GRPC_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

/// The full name of the request message, for JSON decoding.
const REQUEST_MESSAGE: &str =
    "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceRequest";

/// The official descriptors of the OTLP protos (those the prost types were generated from).
static DESCRIPTORS: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(opentelemetry_proto::DESCRIPTORS).map_err(|e| e.to_string())
});

/// Why an export failed, with the gRPC code it maps to.
#[derive(Debug)]
pub(crate) struct ExportError {
    code: tonic::Code,
    message: String,
}

impl ExportError {
    fn invalid(message: impl Into<String>) -> Self {
        ExportError {
            code: tonic::Code::InvalidArgument,
            message: message.into(),
        }
    }

    fn http_status(&self) -> StatusCode {
        match self.code {
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            tonic::Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unimplemented => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for ExportError {
    fn from(err: ApiError) -> Self {
        let message = err.to_string();
        let code = match err.into_response().status() {
            StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
                tonic::Code::ResourceExhausted
            }
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        };
        ExportError { code, message }
    }
}

/// Stores the good profiles of a request; the answer reports the rejected ones.
pub(crate) async fn export(
    state: &AppState,
    request: &ExportProfilesServiceRequest,
) -> Result<ExportProfilesServiceResponse, ExportError> {
    let total = profile_count(request);
    let conversion = convert(request);
    if conversion.profiles.is_empty() && !conversion.rejected.is_empty() {
        return Err(ExportError::invalid(summary(&conversion.rejected, total)));
    }
    let items: Vec<PushItem> = conversion
        .profiles
        .into_iter()
        .map(|c| PushItem {
            delta: Some(c.delta),
            ..PushItem::new(c.profile, c.labels)
        })
        .collect();
    if !items.is_empty() {
        store_profiles(state, items, IngestOptions::now()).await?;
    }
    let partial_success = (!conversion.rejected.is_empty()).then(|| ExportProfilesPartialSuccess {
        rejected_profiles: conversion.rejected.len() as i64,
        error_message: summary(&conversion.rejected, total),
    });
    Ok(ExportProfilesServiceResponse { partial_success })
}

/// "2 of 3 profiles rejected: …" with the first few reasons.
fn summary(rejected: &[String], total: usize) -> String {
    const SHOWN: usize = 5;
    let mut text = format!(
        "{} of {total} profiles rejected: {}",
        rejected.len(),
        rejected[..rejected.len().min(SHOWN)].join("; ")
    );
    if rejected.len() > SHOWN {
        text.push_str(&format!("; and {} more", rejected.len() - SHOWN));
    }
    text
}

/// The codec of an OTLP/HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Protobuf,
    Json,
}

impl Codec {
    fn content_type(self) -> &'static str {
        match self {
            Codec::Protobuf => "application/x-protobuf",
            Codec::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP errors.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `POST /v1development/profiles`: OTLP/HTTP profiles export.
#[utoipa::path(post, path = "/v1development/profiles", tag = "compat",
    request_body(content = super::Binary, description = "ExportProfilesServiceRequest, protobuf (application/x-protobuf) or OTLP JSON (application/json), optionally Content-Encoding: gzip", content_type = "application/x-protobuf"),
    responses((status = 200, description = "ExportProfilesServiceResponse in the request's content type, with partial_success when some profiles were rejected"),
        (status = 400, description = "google.rpc.Status in the request's content type"),
        (status = 401, description = "google.rpc.Status: the API token is missing or wrong (checked before the content type)"),
        (status = 413, description = "google.rpc.Status: the body is over the size limit"),
        (status = 429, description = "google.rpc.Status RESOURCE_EXHAUSTED: the ingest memory budget or the push concurrency limit is reached", headers(("Retry-After" = u64, description = "seconds to wait before retrying"))),
        (status = 415, description = "unsupported content type")))]
pub(crate) async fn http_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A missing token is answered first (401), whatever the body's content type.
    let codec = codec_of(&headers);
    if let Err(err) = state.authorize(&headers) {
        let shape = *codec.as_ref().unwrap_or(&Codec::Protobuf);
        return error_response(shape, err.into());
    }
    let codec = match codec {
        Ok(codec) => codec,
        Err(err) => return error_response(Codec::Protobuf, err),
    };
    match http_export_inner(&state, &headers, body, codec).await {
        Ok(response) => encode_response(codec, &response),
        Err(err) => error_response(codec, err),
    }
}

async fn http_export_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    codec: Codec,
) -> Result<ExportProfilesServiceResponse, ExportError> {
    state.authorize(headers)?;
    let body = body.map_err(super::ingest::body_error)?;
    let body = decoded_body(headers, &body, DEFAULT_MAX_UNCOMPRESSED)?;
    let request = match codec {
        Codec::Protobuf => ExportProfilesServiceRequest::decode(body.as_slice()).map_err(|e| {
            ExportError::invalid(format!(
                "invalid ExportProfilesServiceRequest protobuf: {e}"
            ))
        })?,
        Codec::Json => decode_json(&body)?,
    };
    export(state, &request).await
}

fn codec_of(headers: &HeaderMap) -> Result<Codec, ExportError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Codec::Protobuf),
        "application/json" => Ok(Codec::Json),
        _ => Err(ExportError {
            code: tonic::Code::Unimplemented,
            message: format!(
                "content type {content_type:?}: OTLP/HTTP takes application/x-protobuf or application/json"
            ),
        }),
    }
}

/// OTLP JSON to the request message, through the official descriptors: lowerCamelCase
/// or proto names, 64-bit integers as strings or numbers, enums as names or numbers,
/// `bytes` as base64, unknown fields ignored; trace and span ids (hex in OTLP JSON) are
/// turned into base64 first.
pub(crate) fn decode_json(body: &[u8]) -> Result<ExportProfilesServiceRequest, ExportError> {
    let pool = DESCRIPTORS.as_ref().map_err(|e| ExportError {
        code: tonic::Code::Internal,
        message: format!("the OTLP descriptors do not load: {e}"),
    })?;
    let descriptor = pool
        .get_message_by_name(REQUEST_MESSAGE)
        .ok_or_else(|| ExportError {
            code: tonic::Code::Internal,
            message: format!("{REQUEST_MESSAGE} is missing from the OTLP descriptors"),
        })?;
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ExportError::invalid(format!("invalid JSON: {e}")))?;
    hex_ids_to_base64(&mut value);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(descriptor, value, &options)
        .map_err(|e| ExportError::invalid(format!("invalid OTLP JSON: {e}")))?;
    message
        .transcode_to::<ExportProfilesServiceRequest>()
        .map_err(|e| ExportError::invalid(format!("invalid OTLP JSON: {e}")))
}

/// OTLP JSON writes `Link.trace_id`/`span_id` in hex, not protobuf JSON's base64.
fn hex_ids_to_base64(request: &mut serde_json::Value) {
    use base64::Engine as _;
    let Some(dictionary) = request.get_mut("dictionary") else {
        return;
    };
    for table in ["linkTable", "link_table"] {
        let Some(links) = dictionary.get_mut(table).and_then(|t| t.as_array_mut()) else {
            continue;
        };
        for link in links.iter_mut().filter_map(|l| l.as_object_mut()) {
            for key in ["traceId", "trace_id", "spanId", "span_id"] {
                let Some(serde_json::Value::String(hex)) = link.get_mut(key) else {
                    continue;
                };
                if let Some(bytes) = decode_hex(hex) {
                    *hex = base64::engine::general_purpose::STANDARD.encode(bytes);
                }
            }
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_response(codec: Codec, response: &ExportProfilesServiceResponse) -> Response {
    let body = match codec {
        Codec::Protobuf => response.encode_to_vec(),
        Codec::Json => {
            let json = match &response.partial_success {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedProfiles": p.rejected_profiles.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            json.to_string().into_bytes()
        }
    };
    ([(header::CONTENT_TYPE, codec.content_type())], body).into_response()
}

fn error_response(codec: Codec, err: ExportError) -> Response {
    let status = err.http_status();
    let body = match codec {
        Codec::Protobuf => RpcStatus {
            code: err.code as i32,
            message: err.message,
        }
        .encode_to_vec(),
        Codec::Json => serde_json::json!({"code": err.code as i32, "message": err.message})
            .to_string()
            .into_bytes(),
    };
    (status, [(header::CONTENT_TYPE, codec.content_type())], body).into_response()
}

/// The gRPC Export method as a tower service (what `route_service` mounts): tonic's
/// unary handling (framing, gzip, the size limit — compressed and inflated — and trailers)
/// with a codec that hands the raw message to [`export_grpc`], so a malformed message is
/// `InvalidArgument` rather than prost's default `Internal`.
#[derive(Clone)]
pub(crate) struct GrpcExport {
    state: AppState,
}

/// The gRPC Export service over the app state.
pub(crate) fn grpc_service(state: AppState) -> GrpcExport {
    GrpcExport { state }
}

impl tower::Service<axum::extract::Request> for GrpcExport {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let method = ExportMethod {
            state: self.state.clone(),
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(super::MAX_BODY_BYTES);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// The unary method: decode, authorize, export.
#[derive(Clone)]
struct ExportMethod {
    state: AppState,
}

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = ExportProfilesServiceResponse;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<Self::Response>, tonic::Status>>
                + Send,
        >,
    >;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { export_grpc(&state, request).await })
    }
}

/// One gRPC Export call.
async fn export_grpc(
    state: &AppState,
    request: tonic::Request<Bytes>,
) -> Result<tonic::Response<ExportProfilesServiceResponse>, tonic::Status> {
    let headers = request.metadata().clone().into_headers();
    state
        .authorize(&headers)
        .map_err(|e| tonic::Status::unauthenticated(e.to_string()))?;
    let message =
        ExportProfilesServiceRequest::decode(request.get_ref().as_ref()).map_err(|e| {
            tonic::Status::invalid_argument(format!(
                "invalid ExportProfilesServiceRequest protobuf: {e}"
            ))
        })?;
    export(state, &message)
        .await
        .map(tonic::Response::new)
        .map_err(|e| tonic::Status::new(e.code, e.message))
}

/// Requests stay bytes (decoded by [`export_grpc`]); responses are prost-encoded.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = ExportProfilesServiceResponse;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = ExportProfilesServiceResponse;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encoding the response: {e}")))
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_link_ids_become_base64() {
        let mut v = serde_json::json!({"dictionary": {"linkTable": [{}, {"traceId": "0102", "spanId": "ff"}]}});
        hex_ids_to_base64(&mut v);
        assert_eq!(v["dictionary"]["linkTable"][1]["traceId"], "AQI=");
        assert_eq!(v["dictionary"]["linkTable"][1]["spanId"], "/w==");
        assert_eq!(decode_hex("0g"), None);
    }

    /// The canonical protobuf JSON of a message, from the official descriptors.
    fn canonical(request: &ExportProfilesServiceRequest) -> serde_json::Value {
        let pool = DESCRIPTORS.as_ref().unwrap();
        let mut message = DynamicMessage::new(pool.get_message_by_name(REQUEST_MESSAGE).unwrap());
        message.transcode_from(request).unwrap();
        serde_json::to_value(&message).unwrap()
    }

    #[test]
    fn canonical_json_round_trips_with_hex_link_ids() {
        let mut request = crate::ingest::otlp::tests::ebpf_request();
        let dictionary = request.dictionary.as_mut().unwrap();
        dictionary
            .link_table
            .push(opentelemetry_proto::tonic::profiles::v1development::Link {
                trace_id: vec![0xab; 16],
                span_id: vec![0xcd; 8],
            });
        let mut json = canonical(&request);
        let link = &mut json["dictionary"]["linkTable"][1];
        assert_eq!(link["traceId"], "q6urq6urq6urq6urq6urqw==");
        link["traceId"] = "ab".repeat(16).into();
        link["spanId"] = "cd".repeat(8).into();
        let decoded = decode_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(decoded, request);
    }

    #[test]
    fn json_takes_proto_names_strings_for_int64_and_ignores_unknown_fields() {
        let json = br#"{"resource_profiles": [{"scope_profiles": [{"profiles": [
            {"time_unix_nano": "17", "durationNano": 5, "period": "3", "future": [1],
             "samples": [{"stack_index": 1, "timestampsUnixNano": ["1", 2]}]}]}]}],
            "dictionary": {"string_table": ["", "x"], "stackTable": [{}, {}]}}"#;
        let request = decode_json(json).unwrap();
        let profile = &request.resource_profiles[0].scope_profiles[0].profiles[0];
        assert_eq!(
            (
                profile.time_unix_nano,
                profile.duration_nano,
                profile.period
            ),
            (17, 5, 3)
        );
        assert_eq!(profile.samples[0].timestamps_unix_nano, [1, 2]);
        assert_eq!(request.dictionary.unwrap().string_table, ["", "x"]);
        let err = decode_json(br#"{"resourceProfiles": [{"scopeProfiles": 1}]}"#).unwrap_err();
        assert_eq!(err.code, tonic::Code::InvalidArgument);
        assert!(
            decode_json(b"[")
                .unwrap_err()
                .message
                .contains("invalid JSON")
        );
    }

    #[test]
    fn summaries_name_the_first_reasons() {
        let rejected: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
        let text = summary(&rejected, 9);
        assert!(
            text.starts_with("7 of 9 profiles rejected: p0; p1; p2; p3; p4; and 2 more"),
            "{text}"
        );
    }
}
