//! Partial answers: when a query left out remote blocks because the bucket did not answer
//! ([`crate::query::tracking_partial`]), the answer says so with the `Cinder-Partial: true`
//! header and, in a JSON object body, a `"partial": true` member. JSON arrays (such as
//! `/api/v1/profile-types`) keep their shape and carry the header only.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse as _, Response},
};

/// The header of a partial answer.
pub(super) const PARTIAL_HEADER: &str = "cinder-partial";
/// Largest JSON body that gets the member (bigger ones keep the header only).
const MAX_REWRITE_BYTES: usize = 256 << 20;

/// Middleware: marks the answers of requests whose queries were partial.
pub(super) async fn mark_partial_answers(req: Request, next: Next) -> Response {
    let (resp, partial) = crate::query::tracking_partial(next.run(req)).await;
    if !partial {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts
        .headers
        .insert(PARTIAL_HEADER, HeaderValue::from_static("true"));
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, MAX_REWRITE_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return super::ApiError::Internal(format!("reading a partial answer: {err}"))
                .into_response();
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(with_partial_member(&bytes)))
}

/// A JSON object with `"partial":true` as its first member; anything else unchanged.
fn with_partial_member(body: &[u8]) -> Vec<u8> {
    let Some(rest) = body.trim_ascii_start().strip_prefix(b"{") else {
        return body.to_vec();
    };
    let empty = rest.trim_ascii_start().starts_with(b"}");
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(br#"{"partial":true"#);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_get_the_member_and_arrays_keep_their_shape() {
        let parse = |b: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(&with_partial_member(b)).unwrap()
        };
        assert_eq!(
            parse(br#"{"total": 3, "series": []}"#),
            serde_json::json!({"partial": true, "total": 3, "series": []})
        );
        assert_eq!(parse(b" { } "), serde_json::json!({"partial": true}));
        assert_eq!(parse(br#"[{"a":1}]"#), serde_json::json!([{"a": 1}]));
    }
}
