//! Read endpoints: profile types, labels, metrics over time (`query_range`) and profiles
//! (`query`: merge, single or diff; reported as a top table, a flame-graph tree, an Arrow
//! stream of stacks or gzipped pprof).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::Serialize;
use shared::{
    flame::{FlameTree, StackFilter, StackSet, TopRow, TreeOptions, top},
    ipc::{self, StacksMeta},
    labels::Labels,
    query::{ProfileType, Query as ProfileQuery},
};

use super::{
    ApiError, AppState, ErrorBody, flame_json,
    params::{self, Params},
};
use crate::{
    query::{self as engine, Merged, QueryError, Selection, StackValue},
    store::Store,
};

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::UnknownProfileType(t) => {
                ApiError::NotFound(format!("unknown profile type {t:?}"))
            }
            QueryError::MemoryLimit(detail) => ApiError::Limit {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                reason: "query_memory",
                detail: format!(
                    "the query needs more memory than --query-memory allows ({detail}); narrow its time range or selector, or raise --query-memory"
                ),
                field: None,
                retry_after: None,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `GET /api/v1/profile-types[?start&end]`.
#[utoipa::path(get, path = "/profile-types", tag = "query",
    params(
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
    ),
    responses((status = 200, description = "profile types with data (in the range, when given); the first is the one a fresh page shows: CPU time, else in-use memory, else another, whose newest profile has samples", body = Vec<shared::query::ProfileTypeJson>),
        (status = 400, body = ErrorBody)))]
pub(crate) async fn profile_types(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<Vec<ProfileType>>, ApiError> {
    let store = state.store()?;
    let ids = match (
        params::time_param(&p, "start")?,
        params::time_param(&p, "end")?,
    ) {
        (None, None) => store.meta.profile_types(),
        (start, end) => store.profile_types_in(start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)),
    };
    let types = ids.iter().filter_map(|id| id.parse().ok()).collect();
    let now = crate::store::now_ms();
    Ok(Json(
        engine::default_type::suggested_first(store, types, now).await?,
    ))
}

/// Series ids with samples in `start..end` (default: the last hour) that the `query`
/// parameter selects (all series of all types when absent).
async fn selected_series(store: &Arc<Store>, p: &Params) -> Result<Vec<u64>, ApiError> {
    let (start, end) = params::range(p, "")?;
    let selections: Vec<Selection> = if p.get("query").is_none_or(|q| q.trim().is_empty()) {
        store
            .profile_types_in(start, end)
            .iter()
            .filter_map(|t| t.parse().ok())
            .map(|profile_type| Selection {
                profile_type,
                selector: shared::labels::Selector::default(),
                start,
                end,
            })
            .collect()
    } else {
        let q = params::query(p, "query")?;
        vec![Selection {
            profile_type: q.profile_type,
            selector: q.selector,
            start,
            end,
        }]
    };
    let mut ids = Vec::new();
    for sel in &selections {
        ids.extend(engine::series_in(store, sel).await?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `GET /api/v1/labels?query&start&end`: label names.
#[utoipa::path(get, path = "/labels", tag = "query",
    params(
        ("query" = Option<String>, Query, description = "a query selecting series; all series when absent or empty", pattern = "^$|^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){4}(:delta)?(\\{([A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\")(, ?[A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\"))*)?\\})?$"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
    ),
    responses((status = 200, description = "label names of the series with samples in start..end", body = Vec<String>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "too many queries at once; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "storage still opening, or the query ran past --query-timeout", body = ErrorBody)))]
pub(crate) async fn labels(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<Vec<String>>, ApiError> {
    let store = state.store()?.clone();
    bounded(&state, async move {
        let series = selected_series(&store, &p).await?;
        Ok(Json(store.meta.label_names(&series)))
    })
    .await
}

/// `GET /api/v1/labels/{name}/values?query&start&end`.
#[utoipa::path(get, path = "/labels/{name}/values", tag = "query",
    params(
        ("name" = String, Path, description = "a label name"),
        ("query" = Option<String>, Query, description = "a query selecting series; all series when absent or empty", pattern = "^$|^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){4}(:delta)?(\\{([A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\")(, ?[A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\"))*)?\\})?$"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
    ),
    responses((status = 200, description = "values of the label among the series with samples in start..end", body = Vec<String>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "too many queries at once; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "storage still opening, or the query ran past --query-timeout", body = ErrorBody)))]
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Json<Vec<String>>, ApiError> {
    let store = state.store()?.clone();
    bounded(&state, async move {
        let series = selected_series(&store, &p).await?;
        Ok(Json(store.meta.label_values(&name, &series)))
    })
    .await
}

/// Most points `query_range` answers per series (as Prometheus).
pub(crate) const MAX_POINTS: i128 = 11_000;
/// Largest accepted `max_nodes`.
pub(crate) const MAX_NODES_CAP: usize = 2_000_000;
/// Most labels `group_by` or `sum_by` may name.
pub(crate) const MAX_GROUP_LABELS: usize = 10;
/// Most groups a `group_by` query may make.
pub(crate) const MAX_GROUPS: usize = 10_000;

/// Runs a query in a query slot (see [`crate::admission`]) within `--query-timeout`.
async fn bounded<T>(
    state: &AppState,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let _slot = state.admission.query().await?;
    let timeout = state.query_limits.timeout;
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        ApiError::Timeout(format!(
            "the query ran past --query-timeout ({}); narrow its time range or selector",
            shared::duration::format_duration(timeout)
        ))
    })?
}

/// Runs CPU-heavy work (resolving, trees, encoding) on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("query task failed: {e}")))?
}

/// 400 when the selection has more series than `--query-max-series`.
fn check_series(
    state: &AppState,
    store: &Store,
    query: &ProfileQuery,
    field: &str,
) -> Result<(), ApiError> {
    let max = state.query_limits.max_series;
    let n = store
        .meta
        .select_series(&query.profile_type.id(), &query.selector)
        .len();
    if n > max {
        return Err(ApiError::limit_field(
            field,
            "query_max_series",
            format!(
                "{field} selects {n} series; the limit is {max} (--query-max-series): narrow the selector"
            ),
        ));
    }
    Ok(())
}

/// 400 when a label list (`group_by`, `sum_by`) names too many or invalid labels.
fn group_labels_param(p: &Params, field: &str) -> Result<Vec<String>, ApiError> {
    let names = params::list(p, field);
    if names.len() > MAX_GROUP_LABELS {
        return Err(ApiError::limit_field(
            field,
            "group_labels",
            format!(
                "{field} names {} labels; the limit is {MAX_GROUP_LABELS}",
                names.len()
            ),
        ));
    }
    for name in &names {
        if !shared::labels::is_valid_label_name(name) {
            return Err(ApiError::bad_field(
                field,
                "invalid label name",
                format!("{field}={name:?} is not a label name"),
            ));
        }
    }
    Ok(names)
}

pub use shared::wire::{RangePoint, RangeResponse, RangeSeries};

/// `GET /api/v1/query_range?query&start&end&step&sum_by=a,b`.
#[utoipa::path(get, path = "/query_range", tag = "query",
    params(
        ("query" = String, Query, description = "e.g. `process_cpu:samples:count:cpu:nanoseconds:delta{job=\"api\"}`", pattern = "^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){4}(:delta)?(\\{([A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\")(, ?[A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\"))*)?\\})?$"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("step" = Option<String>, Query, description = "bucket width of delta types, e.g. `15s`; at most 11,000 buckets per series (default: about 200)"),
        ("sum_by" = Option<String>, Query, description = "comma-separated label names to sum series by (at most 10)"),
    ),
    responses((status = 200, body = RangeResponse),
        (status = 400, description = "invalid parameters, or over a query bound (step, series)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the query needs more memory than --query-memory allows; narrow its range or selector", body = ErrorBody),
        (status = 429, description = "too many queries at once; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "storage still opening, or the query ran past --query-timeout", body = ErrorBody)))]
pub(crate) async fn query_range(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<RangeResponse>, ApiError> {
    let store = state.store()?.clone();
    let q = params::query(&p, "query")?;
    let (start, end) = params::range(&p, "")?;
    let step = params::duration_ms(&p, "step")?.unwrap_or_else(|| default_step(start, end));
    if step <= 0 {
        return Err(ApiError::bad_field(
            "step",
            "invalid duration",
            "step must be at least 1ms",
        ));
    }
    let points = (i128::from(end) - i128::from(start)) / i128::from(step) + 1;
    if points > MAX_POINTS {
        return Err(ApiError::limit_field(
            "step",
            "query_range_points",
            format!(
                "step={step}ms over {start}..{end} makes {points} points per series; the limit is \
                 {MAX_POINTS}: use a step of at least {}ms",
                (i128::from(end) - i128::from(start)) / (MAX_POINTS - 1) + 1
            ),
        ));
    }
    let sum_by = group_labels_param(&p, "sum_by")?;
    check_series(&state, &store, &q, "query")?;
    bounded(&state, async move {
        let sel = Selection {
            profile_type: q.profile_type.clone(),
            selector: q.selector,
            start,
            end,
        };
        let points = engine::profile_points(&store, &sel).await?;
        let profile_type = q.profile_type;
        blocking(move || {
            let range = RangeShape {
                start,
                step,
                delta: profile_type.delta,
                scale_by_period: profile_type.scales_by_period(),
            };
            Ok(Json(range.series(&store, points, &sum_by)))
        })
        .await
    })
    .await
}

/// How `query_range` buckets points.
struct RangeShape {
    start: i64,
    step: i64,
    delta: bool,
    scale_by_period: bool,
}

impl RangeShape {
    /// The graph's series: points grouped by (summed) labels and bucketed by `step` (delta
    /// types) or kept per profile (snapshots).
    fn series(
        &self,
        store: &Store,
        points: Vec<engine::ProfilePoint>,
        sum_by: &[String],
    ) -> RangeResponse {
        let mut groups: BTreeMap<Labels, BTreeMap<i64, Bucket>> = BTreeMap::new();
        let mut labels_of: HashMap<u64, Labels> = HashMap::new();
        for point in points {
            let labels = labels_of
                .entry(point.series)
                .or_insert_with(|| {
                    group_labels(&engine::series_labels(&store.meta, point.series), sum_by)
                })
                .clone();
            let t = if self.delta {
                self.bucket_start(point.timestamp)
            } else {
                point.timestamp
            };
            let scaled = if self.scale_by_period && point.period > 0 {
                point.total as f64 * point.period as f64
            } else {
                point.total as f64
            };
            let bucket = groups.entry(labels).or_default().entry(t).or_default();
            bucket.value = bucket.value.saturating_add(point.total);
            let series = bucket.per_series.entry(point.series).or_default();
            series.0 += scaled;
            series.1 = series.1.saturating_add(point.duration);
        }
        let series = groups
            .into_iter()
            .map(|(labels, buckets)| RangeSeries {
                labels,
                points: buckets
                    .into_iter()
                    .map(|(t, b)| b.point(t, self.delta, self.step))
                    .collect(),
            })
            .collect();
        RangeResponse { series }
    }

    /// The start of the bucket holding `t`, in checked arithmetic.
    fn bucket_start(&self, t: i64) -> i64 {
        let (start, step) = (i128::from(self.start), i128::from(self.step));
        let bucket = start + (i128::from(t) - start).div_euclid(step) * step;
        bucket.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// One bucket of one graph series: the summed value and, per stored series, its scaled
/// value and profiled time.
#[derive(Debug, Default)]
struct Bucket {
    value: i64,
    per_series: HashMap<u64, (f64, i64)>,
}

impl Bucket {
    /// `value_per_second` sums each stored series' rate (its values over its own
    /// profiled time): ten targets using one core each read ten cores.
    fn point(&self, t: i64, delta: bool, step_ms: i64) -> RangePoint {
        let per_second = delta.then(|| {
            self.per_series
                .values()
                .map(|&(scaled, duration_ns)| {
                    let seconds = if duration_ns > 0 {
                        duration_ns as f64 / 1e9
                    } else {
                        step_ms as f64 / 1e3
                    };
                    scaled / seconds
                })
                .sum()
        });
        RangePoint {
            t,
            value: self.value,
            value_per_second: per_second,
        }
    }
}

/// About 200 points over the range, at least 1 s.
fn default_step(start: i64, end: i64) -> i64 {
    let width = (i128::from(end) - i128::from(start)) / 200;
    width.clamp(1000, i128::from(i64::MAX)) as i64
}

fn group_labels(labels: &Labels, sum_by: &[String]) -> Labels {
    if sum_by.is_empty() {
        return labels.clone();
    }
    sum_by
        .iter()
        .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.to_owned())))
        .collect()
}

/// What `/api/v1/query` was asked for, parsed.
struct ProfileRequest {
    profile_type: ProfileType,
    merged: Merged,
    filter: StackFilter,
    diff: bool,
    start: i64,
    end: i64,
}

/// One side of a request: its query, what it read and its time range.
struct Side {
    query: ProfileQuery,
    merged: Merged,
    start: i64,
    end: i64,
}

/// Reads a selection (`mode=merge` over start..end, `mode=single` at `time`, with a suffix
/// such as `_a` for diff sides).
async fn read_side(
    state: &AppState,
    store: &Store,
    p: &Params,
    suffix: &str,
    mode: &str,
    group_by: &[String],
) -> Result<Side, ApiError> {
    let query_key = if suffix.is_empty() {
        "query".to_owned()
    } else {
        format!("query{suffix}")
    };
    let q = params::query(p, &query_key)?;
    check_series(state, store, &q, &query_key)?;
    let time_key = format!("time{suffix}");
    let (start, end) = match (mode, params::time_param(p, &time_key)?) {
        ("single", None) => {
            return Err(ApiError::bad_field(
                &time_key,
                "missing parameter",
                format!("mode=single needs {time_key} (unix ms of one profile)"),
            ));
        }
        (_, Some(t)) => (t, t),
        _ => params::range(p, suffix)?,
    };
    let sel = Selection {
        profile_type: q.profile_type.clone(),
        selector: q.selector.clone(),
        start,
        end,
    };
    let merged = engine::merge_by(store, &sel, group_by).await?;
    if merged.groups.len() > MAX_GROUPS {
        return Err(ApiError::limit_field(
            "group_by",
            "groups",
            format!(
                "group_by makes {} groups; the limit is {MAX_GROUPS}: group by fewer labels or narrow the selector",
                merged.groups.len()
            ),
        ));
    }
    Ok(Side {
        query: q,
        merged,
        start,
        end,
    })
}

async fn read_request(
    state: &AppState,
    store: &Store,
    p: &Params,
) -> Result<ProfileRequest, ApiError> {
    let mode = p.get("mode").map(String::as_str).unwrap_or("merge");
    let filter = StackFilter {
        keep_containing: params::list(p, "keep"),
        drop_containing: params::list(p, "drop"),
        hide_frames: params::list(p, "hide"),
    };
    let group_by = group_labels_param(p, "group_by")?;
    match mode {
        "merge" | "single" => {
            let side = read_side(state, store, p, "", mode, &group_by).await?;
            Ok(ProfileRequest {
                profile_type: side.query.profile_type,
                merged: side.merged,
                filter,
                diff: false,
                start: side.start,
                end: side.end,
            })
        }
        "diff" => {
            let side_mode = |s: &str| {
                if p.contains_key(&format!("time{s}")) {
                    "single"
                } else {
                    "merge"
                }
            };
            let a = read_side(state, store, p, "_a", side_mode("_a"), &group_by).await?;
            let b = read_side(state, store, p, "_b", side_mode("_b"), &group_by).await?;
            if a.query.profile_type != b.query.profile_type {
                return Err(ApiError::bad_field(
                    "query_b",
                    "profile types differ",
                    format!(
                        "a diff compares one profile type: query_a has {}, query_b {}",
                        a.query.profile_type, b.query.profile_type
                    ),
                ));
            }
            Ok(ProfileRequest {
                profile_type: a.query.profile_type,
                merged: combine_diff(&a.merged, &b.merged),
                filter,
                diff: true,
                start: a.start.min(b.start),
                end: a.end.max(b.end),
            })
        }
        other => Err(ApiError::bad_field(
            "mode",
            "invalid mode",
            format!("mode={other:?}; expected merge, single or diff"),
        )),
    }
}

/// Diff rows: value from B (the comparison), baseline from A; groups of both sides merged
/// by name.
fn combine_diff(a: &Merged, b: &Merged) -> Merged {
    let mut groups: Vec<String> = Vec::new();
    let mut remap = |names: &[String]| -> Vec<u32> {
        names
            .iter()
            .map(|name| match groups.iter().position(|g| g == name) {
                Some(i) => i as u32 + 1,
                None => {
                    groups.push(name.clone());
                    groups.len() as u32
                }
            })
            .collect()
    };
    let (map_a, map_b) = (remap(&a.groups), remap(&b.groups));
    let new_group = |map: &[u32], g: u32| g.checked_sub(1).map_or(0, |i| map[i as usize]);
    let mut by_stack: BTreeMap<(u32, u64), StackValue> = BTreeMap::new();
    fn slot(map: &mut BTreeMap<(u32, u64), StackValue>, group: u32, stack: u64) -> &mut StackValue {
        map.entry((group, stack)).or_insert(StackValue {
            stack,
            value: 0,
            baseline: 0,
            group,
        })
    }
    for s in &a.stacks {
        slot(&mut by_stack, new_group(&map_a, s.group), s.stack).baseline += s.value;
    }
    for s in &b.stacks {
        slot(&mut by_stack, new_group(&map_b, s.group), s.stack).value += s.value;
    }
    Merged {
        stacks: by_stack.into_values().collect(),
        groups,
    }
}

/// The answer formats of `/api/v1/query`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Arrow,
}

/// `GET /api/v1/query?query&mode&start&end&time&report&format`.
#[utoipa::path(get, path = "/query", tag = "query",
    params(
        ("query" = Option<String>, Query, description = "the selection (mode merge or single)", pattern = "^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){4}(:delta)?(\\{([A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\")(, ?[A-Za-z_][A-Za-z0-9_]*((=|!=)\"[^\"\\\\\\n]*\"|(=~|!~)\"[A-Za-z0-9_ -]*\"))*)?\\})?$"),
        ("mode" = Option<String>, Query, description = "merge (default), single or diff", pattern = "^(merge|single|diff)$"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now", pattern = "^(|[ \\t\\n\\r]*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))[ \\t\\n\\r]*)$"),
        ("time" = Option<String>, Query, description = "mode=single: the profile's timestamp (a `t` of query_range)"),
        ("query_a" = Option<String>, Query, description = "mode=diff: side A (the baseline); also start_a, end_a or time_a"),
        ("query_b" = Option<String>, Query, description = "mode=diff: side B (the value); also start_b, end_b or time_b"),
        ("report" = Option<String>, Query, description = "stacks (default), flamegraph, top or pprof", pattern = "^(stacks|flamegraph|top|pprof)$"),
        ("format" = Option<String>, Query, description = "arrow (default for stacks and flamegraph) or json (top and pprof: json only)", pattern = "^(arrow|json)$"),
        ("limit" = Option<usize>, Query, description = "report=top: rows (default 100)"),
        ("max_nodes" = Option<usize>, Query, description = "fold the smallest subtrees beyond this many flame-tree nodes (default 8192 for flamegraph, 200000 for stacks; at most 2000000)"),
        ("keep" = Option<String>, Query, description = "keep stacks with a frame containing one of these (comma-separated, case-insensitive)"),
        ("drop" = Option<String>, Query, description = "drop stacks with a frame containing one of these"),
        ("hide" = Option<String>, Query, description = "remove frames containing one of these"),
        ("group_by" = Option<String>, Query, description = "label names (at most 10); adds an outermost frame per group (at most 10000 groups)"),
    ),
    responses(
        (status = 200, description = "report=stacks: an Arrow IPC stream (see the README), or StacksReport with format=json; report=top: TopReport; report=flamegraph: FlamegraphReport, or with format=arrow one row per node; report=pprof: gzipped pprof",
            content(
                (StacksReport = "application/json"),
                (Vec<u8> = "application/vnd.apache.arrow.stream"),
                (Vec<u8> = "application/octet-stream"),
            )),
        (status = 400, description = "invalid parameters, or over a query bound (max_nodes, group_by, series)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the query needs more memory than --query-memory allows; narrow its range or selector", body = ErrorBody),
        (status = 429, description = "too many queries at once; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "storage still opening, or the query ran past --query-timeout", body = ErrorBody)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let store = state.store()?.clone();
    let report = p.get("report").map(String::as_str).unwrap_or("stacks");
    let report = match report {
        "top" => Report::Top,
        "flamegraph" => Report::Flamegraph,
        "stacks" => Report::Stacks,
        "pprof" => Report::Pprof,
        other => {
            return Err(ApiError::bad_field(
                "report",
                "invalid report",
                format!("report={other:?}; expected stacks, flamegraph, top or pprof"),
            ));
        }
    };
    let format = answer_format(&p, report)?;
    let limit = params::usize_param(&p, "limit")?;
    let max_nodes = params::usize_param(&p, "max_nodes")?;
    if let Some(n) = max_nodes.filter(|&n| n > MAX_NODES_CAP) {
        return Err(ApiError::limit_field(
            "max_nodes",
            "max_nodes",
            format!("max_nodes={n}; the limit is {MAX_NODES_CAP}"),
        ));
    }
    bounded(&state, async {
        let request = read_request(&state, &store, &p).await?;
        let store = store.clone();
        blocking(move || {
            let stacks =
                engine::resolve(&store.meta, &request.merged.stacks, &request.merged.groups)?;
            let stacks = if request.filter.is_empty() {
                stacks
            } else {
                request.filter.apply(&stacks)
            };
            render(&request, stacks, report, format, limit, max_nodes)
        })
        .await
    })
    .await
}

/// The reports of `/api/v1/query`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    Top,
    Flamegraph,
    Stacks,
    Pprof,
}

/// Builds the answer of a resolved request (on a blocking thread).
fn render(
    request: &ProfileRequest,
    stacks: StackSet,
    report: Report,
    format: Format,
    limit: Option<usize>,
    max_nodes: Option<usize>,
) -> Result<Response, ApiError> {
    let unit = request.profile_type.sample_unit.clone();
    let meta = StacksMeta {
        unit: unit.clone(),
        total: stacks.total(),
        trimmed_value: 0,
        trimmed_nodes: 0,
        diff: request.diff,
        profile_type: request.profile_type.id(),
    };
    match (report, format) {
        (Report::Top, _) => {
            Ok(Json(top_report(&stacks, &unit, limit.unwrap_or(100))).into_response())
        }
        (Report::Flamegraph, Format::Json) => {
            let tree = FlameTree::build(&stacks, TreeOptions::default());
            let (tree, trimmed) = tree.trim(max_nodes.unwrap_or(DEFAULT_MAX_NODES).max(1));
            let body = flame_json::report(&tree, &unit, trimmed);
            Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
        }
        (Report::Flamegraph, Format::Arrow) => {
            let tree = FlameTree::build(&stacks, TreeOptions::default());
            let (tree, trimmed) = tree.trim(max_nodes.unwrap_or(DEFAULT_MAX_NODES).max(1));
            let meta = StacksMeta {
                trimmed_nodes: trimmed.nodes as u64,
                trimmed_value: trimmed.value,
                ..meta
            };
            let body = ipc::write_flame_tree(Vec::new(), &tree, &meta)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, ipc::CONTENT_TYPE)], body).into_response())
        }
        (Report::Stacks, format) => {
            let (stacks, meta, order) =
                trim_stacks(stacks, meta, max_nodes.unwrap_or(DEFAULT_MAX_STACK_NODES));
            if format == Format::Json {
                return Ok(Json(StacksReport {
                    unit: meta.unit,
                    total: meta.total,
                    trimmed_nodes: meta.trimmed_nodes,
                    trimmed_value: meta.trimmed_value,
                    frames: stacks.frames,
                    stacks: stacks.stacks,
                })
                .into_response());
            }
            Ok(stream_stacks(stacks, meta, order))
        }
        (Report::Pprof, _) => {
            let info = engine::ExportInfo {
                profile_type: &request.profile_type,
                start_ms: request.start,
                end_ms: request.end,
                period: 0,
            };
            let body = engine::export_pprof(&stacks, &info);
            Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"profile.pb.gz\"",
                    ),
                ],
                body,
            )
                .into_response())
        }
    }
}

/// `format=json|arrow`, defaulting to Arrow for stacks and JSON for the rest.
fn answer_format(p: &Params, report: Report) -> Result<Format, ApiError> {
    match (p.get("format").map(String::as_str), report) {
        (None, Report::Stacks) | (Some("arrow"), Report::Stacks | Report::Flamegraph) => {
            Ok(Format::Arrow)
        }
        (None | Some("json"), _) => Ok(Format::Json),
        (Some("arrow"), Report::Top | Report::Pprof) => Err(ApiError::bad_field(
            "format",
            "invalid format",
            "report=top and report=pprof are only available as json",
        )),
        (Some(other), _) => Err(ApiError::bad_field(
            "format",
            "invalid format",
            format!("format={other:?}; expected arrow or json"),
        )),
    }
}

/// Default node budget of `report=stacks`: larger than a flame graph's, since the UI
/// filters and zooms client-side.
pub(crate) const DEFAULT_MAX_STACK_NODES: usize = 200_000;

/// The flame-tree order of a stack set ([`shared::flame::tree_order`]): stack indexes
/// and the frames each shares with the one before.
type TreeOrder = (Vec<u32>, Vec<u32>);

/// Folds the smallest subtrees into "other" when the stacks' flame tree would exceed
/// `max_nodes`; stacks are left as they are otherwise. Also returns the stacks'
/// flame-tree order when it was computed on the way (to count the tree's nodes, which it
/// gives without building the tree).
fn trim_stacks(
    stacks: StackSet,
    meta: StacksMeta,
    max_nodes: usize,
) -> (StackSet, StacksMeta, Option<TreeOrder>) {
    let frames: usize = stacks.stacks.iter().map(|s| s.frames.len()).sum();
    if frames < max_nodes {
        return (stacks, meta, None);
    }
    let (order, prefix) = shared::flame::tree_order(&stacks);
    if tree_nodes(&stacks, &order, &prefix) <= max_nodes {
        return (stacks, meta, Some((order, prefix)));
    }
    let tree = FlameTree::build(&stacks, TreeOptions::default());
    let (tree, trimmed) = tree.trim(max_nodes.max(1));
    let meta = StacksMeta {
        trimmed_nodes: trimmed.nodes as u64,
        trimmed_value: trimmed.value,
        ..meta
    };
    (tree.to_stacks(), meta, None)
}

/// The number of flame-tree nodes (root included) of stacks in flame-tree order: each
/// stack adds the frames it does not share with the one before.
fn tree_nodes(stacks: &StackSet, order: &[u32], prefix: &[u32]) -> usize {
    let added: usize = order
        .iter()
        .zip(prefix)
        .map(|(&i, &shared)| stacks.stacks[i as usize].frames.len() - shared as usize)
        .sum();
    added + 1
}

/// `report=stacks&format=json`: the stack set with its totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StacksReport {
    pub unit: String,
    pub total: i64,
    pub trimmed_nodes: u64,
    pub trimmed_value: i64,
    pub frames: Vec<shared::flame::Frame>,
    pub stacks: Vec<shared::flame::Stack>,
}

/// Streams the stacks as Arrow IPC: batches are encoded on a blocking thread and sent
/// as they are written, so the answer starts before the last batch is encoded.
fn stream_stacks(stacks: StackSet, meta: StacksMeta, order: Option<TreeOrder>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let writer = ChunkSender {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        let (order, prefix) = order.unwrap_or_else(|| shared::flame::tree_order(&stacks));
        let rows = ipc::STACK_ROWS_PER_BATCH;
        match ipc::write_stacks_ordered(writer, &stacks, (&order, &prefix), &meta, rows) {
            Ok(mut writer) => writer.send(),
            Err(err) => tracing::error!(%err, "encoding the stacks stream failed"),
        }
    });
    // Fused: a compressing body polls once more after the end.
    let body =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
        }));
    (
        [(header::CONTENT_TYPE, ipc::CONTENT_TYPE)],
        Body::from_stream(body),
    )
        .into_response()
}

/// Bytes per chunk of a streamed answer.
const CHUNK_BYTES: usize = 64 << 10;

/// A `Write` that hands full chunks to an async body.
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl ChunkSender {
    fn send(&mut self) {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
            // The client may have gone away; there is nobody left to tell.
            let _ = self.tx.blocking_send(Bytes::from(chunk));
        }
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.tx.is_closed() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Default node budget of a flame graph answer.
pub(crate) const DEFAULT_MAX_NODES: usize = 8192;

/// The top table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopReport {
    pub unit: String,
    /// Sum of all values of the selection.
    pub total: i64,
    pub rows: Vec<TopReportRow>,
}

/// One function of the top table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopReportRow {
    pub function: String,
    pub file: String,
    pub flat: i64,
    pub cum: i64,
}

fn top_report(stacks: &StackSet, unit: &str, limit: usize) -> TopReport {
    let rows = top(stacks)
        .into_iter()
        .take(limit)
        .map(
            |TopRow {
                 function,
                 file,
                 flat,
                 cum,
                 ..
             }| TopReportRow {
                function,
                file,
                flat,
                cum,
            },
        )
        .collect();
    TopReport {
        unit: unit.to_owned(),
        total: stacks.total(),
        rows,
    }
}

/// A flame graph as a JSON tree: the documented shape of `report=flamegraph`. The answer
/// itself is written from the tree arena without recursion (a tree can be thousands of
/// frames deep), see `flame_json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlamegraphReport {
    pub unit: String,
    pub total: i64,
    /// Nodes and value folded into "other" nodes to stay within `max_nodes`.
    pub trimmed_nodes: usize,
    pub trimmed_value: i64,
    pub root: FlameNode,
}

/// A node of the JSON flame graph.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlameNode {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub binary: String,
    #[serde(rename = "self")]
    pub self_value: i64,
    pub total: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub baseline: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<FlameNode>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_nodes_counts_the_tree_from_its_order() {
        let frames = ["main", "a", "b", "main", "b", "x", "gc"]
            .map(shared::flame::Frame::named)
            .to_vec();
        // Root first: main;a, main;b (main again under another frame id), main;b;x, gc, gc.
        let stack = |frames: Vec<u32>| shared::flame::Stack {
            frames,
            value: 1,
            baseline: 0,
        };
        let stacks = StackSet {
            frames,
            stacks: vec![
                stack(vec![1, 0]),
                stack(vec![4, 3]),
                stack(vec![5, 2, 0]),
                stack(vec![6]),
                stack(vec![6]),
            ],
        };
        let (order, prefix) = shared::flame::tree_order(&stacks);
        let tree = FlameTree::build(&stacks, TreeOptions::default());
        assert_eq!(tree.len(), 6);
        assert_eq!(tree_nodes(&stacks, &order, &prefix), tree.len());
        let meta = StacksMeta::default();
        let (_, kept, order) = trim_stacks(stacks.clone(), meta.clone(), 6);
        assert_eq!((kept.trimmed_nodes, order.is_some()), (0, true));
        let (_, trimmed, order) = trim_stacks(stacks, meta, 5);
        assert_eq!((trimmed.trimmed_nodes > 0, order.is_none()), (true, true));
    }

    #[test]
    fn buckets_never_overflow() {
        let shape = RangeShape {
            start: i64::MIN,
            step: i64::MAX,
            delta: true,
            scale_by_period: false,
        };
        assert_eq!(shape.bucket_start(i64::MIN), i64::MIN);
        assert_eq!(shape.bucket_start(i64::MAX), i64::MAX - 1);
        let shape = RangeShape {
            start: 1000,
            step: 60,
            ..shape
        };
        assert_eq!(shape.bucket_start(1059), 1000);
        assert_eq!(shape.bucket_start(1060), 1060);
        assert_eq!(
            shape.bucket_start(999),
            940,
            "before the start: floor, not truncation"
        );
        assert_eq!(default_step(i64::MIN, i64::MAX), i64::MAX / 100);
        assert_eq!(default_step(0, 10), 1000);
    }

    #[test]
    fn a_bucket_sums_the_rates_of_its_series() {
        let mut bucket = Bucket::default();
        // Two series using one core each over 10 s, one over two profiles of 5 s.
        bucket.per_series.insert(1, (10e9, 10_000_000_000));
        bucket.per_series.insert(2, (10e9, 10_000_000_000));
        let point = bucket.point(0, true, 60_000);
        assert_eq!(point.value_per_second, Some(2e9));
        assert_eq!(bucket.point(0, false, 60_000).value_per_second, None);
        // Without a duration, the step is the time.
        let mut bucket = Bucket::default();
        bucket.per_series.insert(1, (60e9, 0));
        assert_eq!(bucket.point(0, true, 60_000).value_per_second, Some(1e9));
    }
}
