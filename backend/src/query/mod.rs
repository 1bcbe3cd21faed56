//! Reading profiles back. A [`Selection`] (profile type, label selector, time range) picks
//! series from the metadata index and Parquet parts from the catalog; DataFusion scans
//! those parts (pruned by row-group statistics) unioned with the in-memory head, and
//! aggregates by stack or by (series, timestamp). Stack ids are then resolved to frames in
//! bulk, once per distinct location and function — never per row.

pub mod default_type;
mod pprof;

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

pub use pprof::{ExportInfo, export as export_pprof};

use datafusion::{
    arrow::array::{Array, AsArray, RecordBatch},
    arrow::datatypes::Int64Type,
    error::DataFusionError,
    execution::runtime_env::RuntimeEnvBuilder,
    functions_aggregate::expr_fn::{max, sum},
    prelude::{
        DataFrame, Expr, ParquetReadOptions, SessionConfig, SessionContext, col, in_list, lit,
    },
};
use shared::{
    flame::{Frame, Stack, StackSet},
    labels::{Labels, Selector},
    query::ProfileType,
};

use crate::store::{Metadata, Store, StoreError, table::col as c};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unknown profile type {0:?}")]
    UnknownProfileType(String),
    #[error("query engine: {0}")]
    Engine(DataFusionError),
    /// The query's working memory went past `--query-memory`.
    #[error("{0}")]
    MemoryLimit(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(detail) => QueryError::MemoryLimit(detail.clone()),
            _ => QueryError::Engine(err),
        }
    }
}

/// `--query-memory`'s default: the query engine's memory pool.
pub const DEFAULT_QUERY_MEMORY: usize = 512 << 20;

static QUERY_MEMORY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Sets the query engine's memory pool (`--query-memory`); only before the first query
/// (later calls change nothing). Returns whether it was set.
pub fn set_memory_limit(bytes: usize) -> bool {
    QUERY_MEMORY.set(bytes).is_ok()
}

/// What to read: series of one profile type matching a selector, in `[start, end]` (unix ms).
#[derive(Debug, Clone)]
pub struct Selection {
    pub profile_type: ProfileType,
    pub selector: Selector,
    pub start: i64,
    pub end: i64,
}

/// A stack and its summed value (and the baseline's, for diffs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackValue {
    pub stack: u64,
    pub value: i64,
    pub baseline: i64,
    /// With `group_by`: 1 + the index of the stack's group in [`Merged::groups`]; else 0.
    pub group: u32,
}

/// A merge's stacks and, with `group_by`, the names of the groups they fall in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Sorted by (group, stack).
    pub stacks: Vec<StackValue>,
    /// Group names such as `job="api", instance="a:1"`, one per distinct label-value set.
    pub groups: Vec<String>,
}

/// One profile of one series: its timestamp and the sum of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfilePoint {
    pub series: u64,
    pub timestamp: i64,
    pub total: i64,
    pub duration: i64,
    pub period: i64,
}

/// Bytes of Parquet footers (and page indexes) kept between queries.
pub const METADATA_CACHE_BYTES: usize = 32 << 20;

/// The query engine's context, built once: plans run on as many partitions as there are
/// cores, and Parquet metadata read by one query is cached (LRU, [`METADATA_CACHE_BYTES`])
/// for the next (part files are immutable and never reuse a name). Nothing is registered
/// in it: each query reads its own list of part files.
static CONTEXT: LazyLock<SessionContext> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = *QUERY_MEMORY.get_or_init(|| DEFAULT_QUERY_MEMORY);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory, 1.0)
        .with_metadata_cache_limit(METADATA_CACHE_BYTES)
        .build_arc()
        .expect("a runtime without spilling or pools builds");
    SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(cores), runtime)
});

fn context() -> &'static SessionContext {
    &CONTEXT
}

/// Lets queries read remote blocks through `store`, under the URL `bucket://<name>/`
/// (returned; `name` is a host name such as `cinder`).
pub fn register_bucket(
    name: &str,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<String, QueryError> {
    let base = format!("bucket://{name}/");
    let url = url::Url::parse(&base)
        .map_err(|e| QueryError::Engine(DataFusionError::Configuration(e.to_string())))?;
    context().register_object_store(&url, store);
    Ok(base)
}

tokio::task_local! {
    /// Set when a query of the current request left out blocks it could not reach.
    static PARTIAL: std::cell::Cell<bool>;
}

/// Runs `work` (a request) and says whether a query in it answered without some remote
/// blocks (the bucket did not answer).
pub async fn tracking_partial<F: std::future::Future>(work: F) -> (F::Output, bool) {
    PARTIAL
        .scope(std::cell::Cell::new(false), async {
            let out = work.await;
            (out, PARTIAL.with(std::cell::Cell::get))
        })
        .await
}

fn mark_partial() {
    let _ = PARTIAL.try_with(|p| p.set(true));
}

/// Which blocks a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Local blocks, the head and, while the bucket answers, remote blocks.
    All,
    /// Local blocks and the head only (the bucket failed this query).
    LocalOnly,
}

/// Runs `query` over every block; when it fails while remote blocks are in play, runs it
/// again over the local ones and marks the answer partial.
async fn with_fallback<T, F, Fut>(store: &Store, query: F) -> Result<T, QueryError>
where
    F: Fn(Reach) -> Fut,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    match query(Reach::All).await {
        Err(QueryError::Engine(err)) if !store.remote_blocks().is_empty() => {
            tracing::warn!(%err, "a query failed reading the bucket; answering from local blocks only");
            mark_partial();
            query(Reach::LocalOnly).await
        }
        other => other,
    }
}

/// Rows of the selection (series, stack, timestamp, value, duration, period), or `None`
/// when nothing can match.
async fn scan(
    ctx: &SessionContext,
    store: &Store,
    sel: &Selection,
    reach: Reach,
) -> Result<Option<DataFrame>, QueryError> {
    let type_id = sel.profile_type.id();
    if !store.meta.profile_types().contains(&type_id) {
        return Err(QueryError::UnknownProfileType(type_id));
    }
    // Taken first: every series with rows in the snapshot is then known to the index.
    let snapshot = store.snapshot(&type_id, sel.start, sel.end);
    let series = store.meta.select_series(&type_id, &sel.selector);
    if series.is_empty() {
        return Ok(None);
    }
    // Predicates that cannot remove a row are left out: each costs a pass over every row
    // and makes the scan decode its column. The series list goes when the selector keeps
    // every series of the type (series are never removed, so the later, equally long list
    // of all is the same set), the time range for parts lying wholly inside it.
    let every_series = series.len()
        == store
            .meta
            .select_series(&type_id, &Selector::default())
            .len();
    let series = (!every_series).then_some(series.as_slice());
    let columns = [
        c::SERIES,
        c::STACK,
        c::TIMESTAMP,
        c::VALUE,
        c::DURATION,
        c::PERIOD,
    ];
    let local: Vec<(String, (i64, i64))> = snapshot
        .parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .zip(snapshot.part_bounds.iter().copied())
        .collect();
    let mut groups = vec![local];
    if !snapshot.remote.is_empty() {
        if reach == Reach::All && store.bucket_reachable() {
            groups.push(snapshot.remote);
        } else {
            mark_partial();
        }
    }
    let mut frames = Vec::new();
    // One read per object store (a listing reads all its paths from its first path's
    // store), and per whether the time range must be checked row by row.
    for group in groups {
        let (inside, straddling): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|(_, (min_ts, max_ts))| *min_ts >= sel.start && *max_ts <= sel.end);
        for (parts, range) in [(inside, None), (straddling, Some((sel.start, sel.end)))] {
            if parts.is_empty() {
                continue;
            }
            let paths: Vec<String> = parts.into_iter().map(|(path, _)| path).collect();
            // Each part holds one profile type: no row is compared by type.
            let parts = ctx
                .read_parquet(paths, ParquetReadOptions::default())
                .await?;
            let parts = match row_filter(series, range) {
                Some(keep) => parts.filter(keep)?,
                None => parts,
            };
            frames.push(parts.select_columns(&columns)?);
        }
    }
    if !snapshot.batches.is_empty() {
        let batches = ctx.read_batches(snapshot.batches)?;
        let batches = match row_filter(series, Some((sel.start, sel.end))) {
            Some(keep) => batches.filter(keep)?,
            None => batches,
        };
        frames.push(batches.select_columns(&columns)?);
    }
    let mut frames = frames.into_iter();
    let Some(first) = frames.next() else {
        return Ok(None);
    };
    Ok(Some(frames.try_fold(first, |acc, df| acc.union(df))?))
}

/// Rows of the listed series (all when `None`) in `[start, end]` (any time when `None`).
fn row_filter(series: Option<&[u64]>, range: Option<(i64, i64)>) -> Option<Expr> {
    let in_range = range.map(|(start, end)| col(c::TIMESTAMP).between(lit(start), lit(end)));
    let in_series = series.map(|series| {
        let ids: Vec<Expr> = series.iter().map(|s| lit(*s as i64)).collect();
        in_list(col(c::SERIES), ids, false)
    });
    match (in_range, in_series) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    }
}

/// The unique stacks of the selection with their summed values.
#[tracing::instrument(skip_all, fields(profile_type = %sel.profile_type))]
pub async fn merge(store: &Store, sel: &Selection) -> Result<Vec<StackValue>, QueryError> {
    Ok(merge_by(store, sel, &[]).await?.stacks)
}

/// The unique stacks of the selection with their summed values, per group of series
/// sharing the values of the `group_by` labels (one group of all when empty).
#[tracing::instrument(skip_all, fields(profile_type = %sel.profile_type, ?group_by))]
pub async fn merge_by(
    store: &Store,
    sel: &Selection,
    group_by: &[String],
) -> Result<Merged, QueryError> {
    with_fallback(store, |reach| merge_over(store, sel, group_by, reach)).await
}

async fn merge_over(
    store: &Store,
    sel: &Selection,
    group_by: &[String],
    reach: Reach,
) -> Result<Merged, QueryError> {
    let ctx = context();
    let Some(rows) = scan(ctx, store, sel, reach).await? else {
        return Ok(Merged::default());
    };
    let mut keys = vec![col(c::STACK)];
    if !group_by.is_empty() {
        keys.push(col(c::SERIES));
    }
    // SELECT stack_id[, series_id], sum(value) AS v FROM rows GROUP BY stack_id[, series_id]
    let batches = rows
        .aggregate(keys, vec![sum(col(c::VALUE)).alias("v")])?
        .collect()
        .await?;
    if group_by.is_empty() {
        return Ok(Merged {
            stacks: stack_sums(&batches),
            groups: Vec::new(),
        });
    }
    let mut groups = Groups::new(store, group_by);
    let mut sums: HashMap<(u32, u64), i64> = HashMap::new();
    for batch in &batches {
        let stacks = batch.column(0).as_primitive::<Int64Type>();
        let values = batch
            .column_by_name("v")
            .map(|v| v.as_primitive::<Int64Type>());
        let series = batch.column(1).as_primitive::<Int64Type>();
        let Some(values) = values else { continue };
        for i in 0..batch.num_rows() {
            if values.is_null(i) || values.value(i) == 0 {
                continue;
            }
            let group = groups.of(series.value(i) as u64);
            *sums.entry((group, stacks.value(i) as u64)).or_default() += values.value(i);
        }
    }
    let mut stacks: Vec<StackValue> = sums
        .into_iter()
        .filter(|&(_, value)| value != 0)
        .map(|((group, stack), value)| StackValue {
            stack,
            value,
            baseline: 0,
            group,
        })
        .collect();
    stacks.sort_unstable_by_key(|s| (s.group, s.stack));
    Ok(Merged {
        stacks,
        groups: groups.names,
    })
}

/// Stacks and their non-zero sums from batches DataFusion aggregated by stack alone
/// (each stack once), sorted by stack.
fn stack_sums(batches: &[RecordBatch]) -> Vec<StackValue> {
    let mut out = Vec::new();
    for batch in batches {
        let stacks = batch.column(0).as_primitive::<Int64Type>();
        let Some(values) = batch
            .column_by_name("v")
            .map(|v| v.as_primitive::<Int64Type>())
        else {
            continue;
        };
        out.extend((0..batch.num_rows()).filter_map(|i| {
            let value = if values.is_null(i) {
                0
            } else {
                values.value(i)
            };
            (value != 0).then(|| StackValue {
                stack: stacks.value(i) as u64,
                value,
                baseline: 0,
                group: 0,
            })
        }));
    }
    out.sort_unstable_by_key(|s| s.stack);
    out
}

/// Series → group, memoized: the group name is the `group_by` labels' values.
struct Groups<'a> {
    store: &'a Store,
    by: &'a [String],
    of_series: HashMap<u64, u32>,
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl<'a> Groups<'a> {
    fn new(store: &'a Store, by: &'a [String]) -> Self {
        Groups {
            store,
            by,
            of_series: HashMap::new(),
            ids: HashMap::new(),
            names: Vec::new(),
        }
    }

    /// 1 + the index of the series' group name.
    fn of(&mut self, series: u64) -> u32 {
        if let Some(&g) = self.of_series.get(&series) {
            return g;
        }
        let labels = self.store.meta.series_labels(series);
        let name = group_name(self.by, labels.as_deref());
        let next = self.names.len() as u32 + 1;
        let g = *self.ids.entry(name.clone()).or_insert(next);
        if g == next {
            self.names.push(name);
        }
        self.of_series.insert(series, g);
        g
    }
}

/// `job="api", instance="a:1"`: the values of `by` in `labels` ("" when missing).
pub fn group_name(by: &[String], labels: Option<&Labels>) -> String {
    by.iter()
        .map(|name| {
            let value = labels.and_then(|l| l.get(name)).unwrap_or_default();
            format!("{name}={value:?}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The series of the selection with samples in its time range.
pub async fn series_in(store: &Store, sel: &Selection) -> Result<Vec<u64>, QueryError> {
    with_fallback(store, |reach| series_over(store, sel, reach)).await
}

async fn series_over(store: &Store, sel: &Selection, reach: Reach) -> Result<Vec<u64>, QueryError> {
    let ctx = context();
    let rows = match scan(ctx, store, sel, reach).await {
        Ok(Some(rows)) => rows,
        // A type that has no samples has no series either.
        Ok(None) | Err(QueryError::UnknownProfileType(_)) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let batches = rows
        .aggregate(vec![col(c::SERIES)], vec![])?
        .collect()
        .await?;
    let mut ids: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            let series = b.column(0).as_primitive::<Int64Type>();
            (0..b.num_rows()).map(move |i| series.value(i) as u64)
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One point per (series, profile timestamp): the profile's total.
pub async fn profile_points(
    store: &Store,
    sel: &Selection,
) -> Result<Vec<ProfilePoint>, QueryError> {
    with_fallback(store, |reach| points_over(store, sel, reach)).await
}

async fn points_over(
    store: &Store,
    sel: &Selection,
    reach: Reach,
) -> Result<Vec<ProfilePoint>, QueryError> {
    let ctx = context();
    let Some(rows) = scan(ctx, store, sel, reach).await? else {
        return Ok(Vec::new());
    };
    let aggregated = rows.aggregate(
        vec![col(c::SERIES), col(c::TIMESTAMP)],
        vec![
            sum(col(c::VALUE)).alias("total"),
            max(col(c::DURATION)).alias("d"),
            max(col(c::PERIOD)).alias("p"),
        ],
    )?;
    let batches: Vec<RecordBatch> = aggregated.collect().await?;
    let mut points = Vec::new();
    for b in &batches {
        let series = b.column(0).as_primitive::<Int64Type>();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let total = b.column(2).as_primitive::<Int64Type>();
        let duration = b.column(3).as_primitive::<Int64Type>();
        let period = b.column(4).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            points.push(ProfilePoint {
                series: series.value(i) as u64,
                timestamp: ts.value(i),
                total: total.value(i),
                duration: duration.value(i),
                period: period.value(i),
            });
        }
    }
    points.sort_unstable_by_key(|p| (p.series, p.timestamp));
    Ok(points)
}

/// Resolves stack ids to frames, in bulk: each location, function and mapping is read
/// from the metadata store once per query. A stack of a group (see [`merge_by`]) gets a
/// synthetic outermost frame named after the group, so flame graphs split by group.
pub fn resolve(
    meta: &Metadata,
    stacks: &[StackValue],
    groups: &[String],
) -> Result<StackSet, QueryError> {
    let mut resolver = Resolver {
        meta,
        frames: Vec::new(),
        frame_ids: HashMap::new(),
        locations: HashMap::new(),
        mappings: HashMap::new(),
    };
    let mut out = Vec::with_capacity(stacks.len());
    for s in stacks {
        let locations = meta.stack(s.stack)?.unwrap_or_default();
        let mut frames = Vec::with_capacity(locations.len() * 2);
        for loc in locations {
            frames.extend_from_slice(resolver.location(loc)?);
        }
        if let Some(name) = s.group.checked_sub(1).and_then(|g| groups.get(g as usize)) {
            frames.push(resolver.intern(Frame::named(name.clone())));
        }
        out.push(Stack {
            frames,
            value: s.value,
            baseline: s.baseline,
        });
    }
    Ok(StackSet {
        frames: resolver.frames,
        stacks: out,
    })
}

struct Resolver<'a> {
    meta: &'a Metadata,
    frames: Vec<Frame>,
    frame_ids: HashMap<Frame, u32>,
    locations: HashMap<u64, Arc<[u32]>>,
    mappings: HashMap<u64, (String, String)>,
}

impl Resolver<'_> {
    /// The frames of a location (its lines, innermost first; or its address).
    fn location(&mut self, id: u64) -> Result<&[u32], QueryError> {
        if !self.locations.contains_key(&id) {
            let frames = self.load_location(id)?;
            self.locations.insert(id, frames);
        }
        Ok(&self.locations[&id])
    }

    fn load_location(&mut self, id: u64) -> Result<Arc<[u32]>, QueryError> {
        let Some(loc) = self.meta.location(id)? else {
            return Ok(Arc::from(Vec::new()));
        };
        let (binary, build_id) = self.mapping(loc.mapping)?;
        let mut ids = Vec::with_capacity(loc.lines.len().max(1));
        if loc.lines.is_empty() {
            let frame = Frame {
                address: loc.address,
                binary: binary.clone(),
                build_id: build_id.clone(),
                ..Frame::default()
            };
            ids.push(self.intern(frame));
        }
        for (function, line) in &loc.lines {
            let f = self.meta.function(*function)?.unwrap_or_default();
            let frame = Frame {
                function: f.name,
                system_name: f.system_name,
                file: f.filename,
                line: *line,
                binary: binary.clone(),
                build_id: build_id.clone(),
                address: 0,
            };
            ids.push(self.intern(frame));
        }
        Ok(Arc::from(ids))
    }

    fn mapping(&mut self, id: u64) -> Result<(String, String), QueryError> {
        if id == 0 {
            return Ok((String::new(), String::new()));
        }
        if let Some(m) = self.mappings.get(&id) {
            return Ok(m.clone());
        }
        let m = self.meta.mapping(id)?.unwrap_or_default();
        let binary = m.file.rsplit('/').next().unwrap_or_default().to_owned();
        let entry = (binary, m.build_id);
        self.mappings.insert(id, entry.clone());
        Ok(entry)
    }

    fn intern(&mut self, frame: Frame) -> u32 {
        if let Some(&id) = self.frame_ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_ids.insert(frame, id);
        id
    }
}

/// Labels of a series, or empty if unknown.
pub fn series_labels(meta: &Metadata, series: u64) -> Labels {
    meta.series_labels(series)
        .map(|l| (*l).clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Columns, StoreOptions, WriteBatch};

    const TYPE: &str = "cpu:samples:count:cpu:nanoseconds:delta";

    fn write(store: &Store, job: &str, ts: i64, stacks: &[(u64, i64)]) {
        let mut b = WriteBatch::default();
        let labels: Labels = [("__name__", "cpu"), ("job", job)].into_iter().collect();
        let series = b.meta.series(&store.meta, &labels);
        b.meta.type_series(&store.meta, TYPE, series);
        let mut cols = Columns::default();
        for &(stack, value) in stacks {
            b.meta.stack(&store.meta, stack, &[]);
            cols.push(series, stack, ts, value, 10_000_000_000, 10_000_000);
        }
        // A second sample type in the same write, as real profiles have.
        let other = "cpu:cpu:nanoseconds:cpu:nanoseconds:delta";
        b.meta.type_series(&store.meta, other, series);
        let mut scaled = cols.clone();
        scaled.value.iter_mut().for_each(|v| *v *= 1000);
        b.rows.insert(other.to_owned(), scaled);
        b.rows.insert(TYPE.to_owned(), cols);
        store.write(b).unwrap();
    }

    fn selection(selector: &str, start: i64, end: i64) -> Selection {
        Selection {
            profile_type: TYPE.parse().unwrap(),
            selector: shared::query::parse_matchers(selector).unwrap(),
            start,
            end,
        }
    }

    #[tokio::test]
    async fn merge_sums_head_and_parquet_and_respects_selector_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        write(&store, "api", 1_000, &[(1, 10), (2, 5)]);
        write(&store, "db", 1_000, &[(1, 100)]);
        store.flush().unwrap();
        write(&store, "api", 2_000, &[(1, 1), (3, 7)]);
        let all = merge(&store, &selection("{}", 0, 10_000)).await.unwrap();
        let as_pairs: Vec<(u64, i64)> = all.iter().map(|s| (s.stack, s.value)).collect();
        assert_eq!(as_pairs, vec![(1, 111), (2, 5), (3, 7)]);
        let api = merge(&store, &selection(r#"{job="api"}"#, 0, 10_000))
            .await
            .unwrap();
        assert_eq!(api.iter().map(|s| s.value).sum::<i64>(), 23);
        let single = merge(&store, &selection(r#"{job="api"}"#, 1_000, 1_000))
            .await
            .unwrap();
        assert_eq!(
            single.iter().map(|s| s.value).sum::<i64>(),
            15,
            "only the flushed profile"
        );
        let points = profile_points(&store, &selection("{}", 0, 10_000))
            .await
            .unwrap();
        assert_eq!(points.len(), 3);
        let cache = context()
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        assert_eq!(cache.cache_limit(), METADATA_CACHE_BYTES);
        assert!(!cache.is_empty(), "footers stay cached between queries");
    }

    #[tokio::test]
    async fn single_profiles_are_found_after_replay_and_flush() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            for i in 0..61 {
                // Ids above i64::MAX, as real hashes are half of the time.
                write(
                    &store,
                    "crash",
                    1_700_000_000_000 + i * 1000,
                    &[(u64::MAX - i as u64, 3), (1 << 63, 2)],
                );
            }
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.flush().unwrap();
        for i in 0..61 {
            let t = 1_700_000_000_000 + i * 1000;
            let single = merge(&store, &selection(r#"{job="crash"}"#, t, t))
                .await
                .unwrap();
            assert_eq!(
                single.iter().map(|s| s.value).sum::<i64>(),
                5,
                "profile {i}"
            );
        }
    }
}
