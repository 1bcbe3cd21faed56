//! `GET/POST /api/v1/targets`, `GET/PUT/DELETE /api/v1/targets/{id}`: scrape targets and
//! their health. Writes need the API token (when set), are refused with 403 when
//! `--targets-api=false` or for targets of the config file, and are validated field by
//! field (400 naming the field).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::Value;

use super::{ApiError, AppState, ErrorBody};
use crate::scrape::{ScrapeManager, TargetError, TargetView, TargetsView};

impl From<TargetError> for ApiError {
    fn from(err: TargetError) -> Self {
        match err {
            TargetError::Invalid(f) if f.field.is_empty() => {
                ApiError::bad_request(f.error, f.detail)
            }
            TargetError::Invalid(f) => ApiError::bad_field(&f.field, f.error, f.detail),
            TargetError::NotFound(_) => ApiError::NotFound(err.to_string()),
            TargetError::ReadOnly(_) => ApiError::Forbidden(err.to_string()),
            TargetError::TooMany(_) => ApiError::Conflict(err.to_string()),
            TargetError::Store(_) => ApiError::Internal(err.to_string()),
        }
    }
}

/// The body of `POST` and `PUT`. A target read from `GET` may be sent back as it is: the
/// fields the API reports (`id`, `health`, …) are ignored.
///
/// Documentation only: handlers validate the JSON field by field, to name the bad field.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TargetRequest {
    /// The `job` label: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub job: String,
    /// `host:port`, without scheme or path. Link-local addresses are refused unless
    /// `--allow-link-local-targets`.
    pub address: String,
    /// `http` (default, also when empty) or `https`, in any case.
    #[schema(pattern = "^([hH][tT][tT][pP][sS]?)?$")]
    pub scheme: Option<String>,
    /// Between scrapes: a duration such as `15s` or a number of seconds; at least 1s
    /// (default 10s).
    #[schema(value_type = Option<String>)]
    pub interval: Option<Value>,
    /// Of one scrape; greater than the interval (default interval + 3s).
    #[schema(value_type = Option<String>)]
    pub timeout: Option<Value>,
    /// Among `process_cpu`, `memory`, `heap`, `block`, `mutex`, `goroutine` (default:
    /// Parca's five).
    pub profiles: Option<Vec<String>>,
    /// Extra labels of the target's series (not `job`, not starting with `__`).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// `GET /api/v1/targets`.
#[utoipa::path(get, path = "/targets", tag = "targets",
    responses((status = 200, description = "scrape targets by job, with their health", body = TargetsView),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<TargetsView>, ApiError> {
    Ok(Json(state.scrape()?.targets()))
}

/// `GET /api/v1/targets/{id}`.
#[utoipa::path(get, path = "/targets/{id}", tag = "targets",
    params(("id" = String, Path, description = "a target id")),
    responses((status = 200, body = TargetView), (status = 404, body = ErrorBody)))]
pub(crate) async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TargetView>, ApiError> {
    state
        .scrape()?
        .target(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no target with id {id:?}")))
}

/// Checks the token and that writes are allowed; parses the JSON body.
fn writable(state: &AppState, headers: &HeaderMap) -> Result<ScrapeManager, ApiError> {
    state.authorize(headers)?;
    if !state.targets_writable {
        return Err(ApiError::Forbidden(
            "the targets API is read-only (cinder runs with --targets-api=false)".into(),
        ));
    }
    Ok(state.scrape()?.clone())
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid JSON", format!("the body is not JSON: {e}")))
}

/// Runs a manager call (it writes sled and spawns loops) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TargetError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("targets task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `POST /api/v1/targets` → 201 with the new target.
#[utoipa::path(post, path = "/targets", tag = "targets",
    request_body = TargetRequest,
    responses((status = 201, description = "the created target", body = TargetView),
        (status = 400, description = "invalid; `field` names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the targets API is read-only", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    let manager = writable(&state, &headers)?;
    let body = json_body(&body)?;
    let view = blocking(move || manager.create(&body)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PUT /api/v1/targets/{id}` → the changed target.
#[utoipa::path(put, path = "/targets/{id}", tag = "targets",
    params(("id" = String, Path, description = "a target created through the API")),
    request_body = TargetRequest,
    responses((status = 200, description = "the changed target", body = TargetView),
        (status = 400, description = "invalid; `field` names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a config-file target, or the targets API is read-only", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TargetView>, ApiError> {
    let manager = writable(&state, &headers)?;
    let body = json_body(&body)?;
    Ok(Json(blocking(move || manager.update(&id, &body)).await?))
}

/// `DELETE /api/v1/targets/{id}` → 204.
#[utoipa::path(delete, path = "/targets/{id}", tag = "targets",
    params(("id" = String, Path, description = "a target created through the API")),
    responses((status = 204, description = "deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a config-file target, or the targets API is read-only", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let manager = writable(&state, &headers)?;
    blocking(move || manager.delete(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
