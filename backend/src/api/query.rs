//! Read endpoints: profile types, labels, metrics over time (`query_range`) and profiles
//! (`query`: merge, single or diff; reported as a top table, a flame-graph tree, an Arrow
//! stream of stacks or gzipped pprof).

use std::collections::BTreeMap;

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
    ApiError, AppState, ErrorBody,
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
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `GET /api/v1/profile-types[?start&end]`.
#[utoipa::path(get, path = "/profile-types", tag = "query",
    params(
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now"),
    ),
    responses((status = 200, description = "profile types with data (in the range, when given)", body = Vec<shared::query::ProfileTypeJson>),
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
    Ok(Json(ids.iter().filter_map(|id| id.parse().ok()).collect()))
}

/// Series ids a `query` parameter selects (all series of all types when absent).
fn selected_series(store: &Store, p: &Params) -> Result<Vec<u64>, ApiError> {
    if p.get("query").is_none_or(|q| q.trim().is_empty()) {
        let all = shared::labels::Selector::default();
        let mut ids: Vec<u64> = store
            .meta
            .profile_types()
            .iter()
            .flat_map(|t| store.meta.select_series(t, &all))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        return Ok(ids);
    }
    let q = params::query(p, "query")?;
    Ok(store.meta.select_series(&q.profile_type.id(), &q.selector))
}

/// `GET /api/v1/labels?query&start&end`: label names.
#[utoipa::path(get, path = "/labels", tag = "query",
    params(
        ("query" = Option<String>, Query, description = "a query selecting series; all series when absent"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now"),
    ),
    responses((status = 200, description = "label names", body = Vec<String>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn labels(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<Vec<String>>, ApiError> {
    let store = state.store()?;
    params::range(&p, "")?;
    Ok(Json(store.meta.label_names(&selected_series(store, &p)?)))
}

/// `GET /api/v1/labels/{name}/values?query&start&end`.
#[utoipa::path(get, path = "/labels/{name}/values", tag = "query",
    params(
        ("name" = String, Path, description = "a label name"),
        ("query" = Option<String>, Query, description = "a query selecting series; all series when absent"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now"),
    ),
    responses((status = 200, description = "values of the label", body = Vec<String>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Json<Vec<String>>, ApiError> {
    let store = state.store()?;
    params::range(&p, "")?;
    Ok(Json(
        store.meta.label_values(&name, &selected_series(store, &p)?),
    ))
}

pub use shared::wire::{RangePoint, RangeResponse, RangeSeries};

/// `GET /api/v1/query_range?query&start&end&step&sum_by=a,b`.
#[utoipa::path(get, path = "/query_range", tag = "query",
    params(
        ("query" = String, Query, description = "e.g. `process_cpu:samples:count:cpu:nanoseconds:delta{job=\"api\"}`"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now"),
        ("step" = Option<String>, Query, description = "bucket width of delta types, e.g. `15s`"),
        ("sum_by" = Option<String>, Query, description = "comma-separated label names to sum series by"),
    ),
    responses((status = 200, body = RangeResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn query_range(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Json<RangeResponse>, ApiError> {
    let store = state.store()?;
    let q = params::query(&p, "query")?;
    let (start, end) = params::range(&p, "")?;
    let step = params::duration_ms(&p, "step")?.unwrap_or_else(|| default_step(start, end));
    if step <= 0 {
        return Err(ApiError::bad_field(
            "step",
            "invalid duration",
            "step must be positive",
        ));
    }
    let sum_by = params::list(&p, "sum_by");
    let sel = Selection {
        profile_type: q.profile_type.clone(),
        selector: q.selector,
        start,
        end,
    };
    let points = engine::profile_points(store, &sel).await?;
    let scale_by_period = q.profile_type.scales_by_period();
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Bucket>> = BTreeMap::new();
    for point in points {
        let labels = group_labels(&engine::series_labels(&store.meta, point.series), &sum_by);
        let t = if q.profile_type.delta {
            start + (point.timestamp - start) / step * step
        } else {
            point.timestamp
        };
        let bucket = groups.entry(labels).or_default().entry(t).or_default();
        bucket.value += point.total;
        bucket.duration_ns += point.duration;
        bucket.scaled += if scale_by_period && point.period > 0 {
            point.total as f64 * point.period as f64
        } else {
            point.total as f64
        };
    }
    let series = groups
        .into_iter()
        .map(|(labels, buckets)| RangeSeries {
            labels,
            points: buckets
                .into_iter()
                .map(|(t, b)| b.point(t, q.profile_type.delta, step))
                .collect(),
        })
        .collect();
    Ok(Json(RangeResponse { series }))
}

#[derive(Debug, Default)]
struct Bucket {
    value: i64,
    scaled: f64,
    duration_ns: i64,
}

impl Bucket {
    fn point(&self, t: i64, delta: bool, step_ms: i64) -> RangePoint {
        let per_second = delta.then(|| {
            let seconds = if self.duration_ns > 0 {
                self.duration_ns as f64 / 1e9
            } else {
                step_ms as f64 / 1e3
            };
            self.scaled / seconds
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
    ((end - start) / 200).max(1000)
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
    Ok(Side {
        query: q,
        merged,
        start,
        end,
    })
}

async fn read_request(store: &Store, p: &Params) -> Result<ProfileRequest, ApiError> {
    let mode = p.get("mode").map(String::as_str).unwrap_or("merge");
    let filter = StackFilter {
        keep_containing: params::list(p, "keep"),
        drop_containing: params::list(p, "drop"),
        hide_frames: params::list(p, "hide"),
    };
    let group_by = params::list(p, "group_by");
    for name in &group_by {
        if !shared::labels::is_valid_label_name(name) {
            return Err(ApiError::bad_field(
                "group_by",
                "invalid label name",
                format!("group_by={name:?} is not a label name"),
            ));
        }
    }
    match mode {
        "merge" | "single" => {
            let side = read_side(store, p, "", mode, &group_by).await?;
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
            let a = read_side(store, p, "_a", side_mode("_a"), &group_by).await?;
            let b = read_side(store, p, "_b", side_mode("_b"), &group_by).await?;
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
        ("query" = Option<String>, Query, description = "the selection (mode merge or single)"),
        ("mode" = Option<String>, Query, description = "merge (default), single or diff"),
        ("start" = Option<String>, Query, description = "unix ms or RFC 3339; default: end − 1h"),
        ("end" = Option<String>, Query, description = "unix ms or RFC 3339; default: now"),
        ("time" = Option<String>, Query, description = "mode=single: the profile's timestamp (a `t` of query_range)"),
        ("query_a" = Option<String>, Query, description = "mode=diff: side A (the baseline); also start_a, end_a or time_a"),
        ("query_b" = Option<String>, Query, description = "mode=diff: side B (the value); also start_b, end_b or time_b"),
        ("report" = Option<String>, Query, description = "stacks (default), flamegraph, top or pprof"),
        ("format" = Option<String>, Query, description = "arrow (default for stacks) or json"),
        ("limit" = Option<usize>, Query, description = "report=top: rows (default 100)"),
        ("max_nodes" = Option<usize>, Query, description = "fold the smallest subtrees beyond this many flame-tree nodes (default 8192 for flamegraph, 200000 for stacks)"),
        ("keep" = Option<String>, Query, description = "keep stacks with a frame containing one of these (comma-separated, case-insensitive)"),
        ("drop" = Option<String>, Query, description = "drop stacks with a frame containing one of these"),
        ("hide" = Option<String>, Query, description = "remove frames containing one of these"),
        ("group_by" = Option<String>, Query, description = "label names; adds an outermost frame per group"),
    ),
    responses(
        (status = 200, description = "report=stacks: an Arrow IPC stream (see the README), or StacksReport with format=json; report=top: TopReport; report=flamegraph: FlamegraphReport, or with format=arrow one row per node; report=pprof: gzipped pprof",
            content(
                (StacksReport = "application/json"),
                (Vec<u8> = "application/vnd.apache.arrow.stream"),
                (Vec<u8> = "application/octet-stream"),
            )),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let store = state.store()?;
    let report = p.get("report").map(String::as_str).unwrap_or("stacks");
    if !matches!(report, "top" | "flamegraph" | "stacks" | "pprof") {
        return Err(ApiError::bad_field(
            "report",
            "invalid report",
            format!("report={report:?}; expected stacks, flamegraph, top or pprof"),
        ));
    }
    let format = answer_format(&p, report)?;
    let limit = params::usize_param(&p, "limit")?;
    let max_nodes = params::usize_param(&p, "max_nodes")?;
    let request = read_request(store, &p).await?;
    let stacks = engine::resolve(&store.meta, &request.merged.stacks, &request.merged.groups)?;
    let stacks = if request.filter.is_empty() {
        stacks
    } else {
        request.filter.apply(&stacks)
    };
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
        ("top", _) => Ok(Json(top_report(&stacks, &unit, limit.unwrap_or(100))).into_response()),
        ("flamegraph", Format::Json) => Ok(Json(flamegraph_report(
            &stacks,
            &unit,
            max_nodes.unwrap_or(DEFAULT_MAX_NODES),
        ))
        .into_response()),
        ("flamegraph", Format::Arrow) => {
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
        ("stacks", format) => {
            let (stacks, meta) =
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
            Ok(stream_stacks(stacks, meta))
        }
        _ => {
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
fn answer_format(p: &Params, report: &str) -> Result<Format, ApiError> {
    match (p.get("format").map(String::as_str), report) {
        (None, "stacks") | (Some("arrow"), "stacks" | "flamegraph") => Ok(Format::Arrow),
        (None | Some("json"), _) => Ok(Format::Json),
        (Some("arrow"), "top" | "pprof") => Err(ApiError::bad_field(
            "format",
            "invalid format",
            format!("report={report} is only available as json"),
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

/// Folds the smallest subtrees into "other" when the stacks' flame tree would exceed
/// `max_nodes`; stacks are left as they are otherwise.
fn trim_stacks(stacks: StackSet, meta: StacksMeta, max_nodes: usize) -> (StackSet, StacksMeta) {
    let frames: usize = stacks.stacks.iter().map(|s| s.frames.len()).sum();
    if frames < max_nodes {
        return (stacks, meta);
    }
    let tree = FlameTree::build(&stacks, TreeOptions::default());
    if tree.len() <= max_nodes {
        return (stacks, meta);
    }
    let (tree, trimmed) = tree.trim(max_nodes.max(1));
    let meta = StacksMeta {
        trimmed_nodes: trimmed.nodes as u64,
        trimmed_value: trimmed.value,
        ..meta
    };
    (tree.to_stacks(), meta)
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
fn stream_stacks(stacks: StackSet, meta: StacksMeta) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let writer = ChunkSender {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        match ipc::write_stacks(writer, &stacks, &meta) {
            Ok(mut writer) => writer.send(),
            Err(err) => tracing::error!(%err, "encoding the stacks stream failed"),
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
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

/// A flame graph as a JSON tree.
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

fn flamegraph_report(stacks: &StackSet, unit: &str, max_nodes: usize) -> FlamegraphReport {
    let tree = FlameTree::build(stacks, TreeOptions::default());
    let (tree, trimmed) = tree.trim(max_nodes.max(1));
    FlamegraphReport {
        unit: unit.to_owned(),
        total: tree.total(),
        trimmed_nodes: trimmed.nodes,
        trimmed_value: trimmed.value,
        root: flame_node(&tree, shared::flame::ROOT),
    }
}

fn flame_node(tree: &FlameTree, id: u32) -> FlameNode {
    let node = tree.node(id);
    FlameNode {
        name: tree.name(id).into_owned(),
        binary: if tree.is_synthetic(id) {
            String::new()
        } else {
            tree.frame(id).binary.clone()
        },
        self_value: node.self_value,
        total: node.total,
        baseline: node.baseline_total,
        children: tree.children(id).map(|c| flame_node(tree, c)).collect(),
    }
}
