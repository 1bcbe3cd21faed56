//! From a pprof body to stored rows: read (gzip or raw, size-limited), validate, and
//! normalize as Parca does — one logical profile per sample type, named by the `__name__`
//! label, each non-zero sample value a row (series, stack, value, timestamp, duration,
//! period) — then hand the rows and any new metadata to the store in one durable write.
//!
//! Labels: the series labels come from the caller (push parameters or the scraper). pprof
//! *string* labels on a sample become labels of its rows too (their names sanitized as
//! Prometheus does, e.g. `thread name` → `thread_name`); a sample label whose name clashes
//! with a series label is stored as `exported_<name>`. Numeric sample labels are dropped.
//!
//! Frames: a location's lines (innermost first) are its frames; an unsymbolized location
//! keeps its address and mapping so it shows as `0x…` in its binary. The address of a
//! symbolized location is not kept, so the same code deduplicates across processes.

pub mod otlp;
pub mod pyroscope;

use std::collections::{HashMap, HashSet};

use proto::{Index, Profile, Sample};
use serde::Serialize;
use shared::{
    labels::{Labels, NAME_LABEL, is_valid_label_name, sanitize_label_name},
    query::ProfileType,
};
use xxhash_rust::xxh3::Xxh3;

use crate::store::{
    Columns, Store, StoreError, WriteBatch,
    meta::{FunctionMeta, LocationMeta, MappingMeta},
};

/// Default cap on the uncompressed size of one profile.
pub const DEFAULT_MAX_UNCOMPRESSED: usize = 64 << 20;

/// Why a profile was refused. Nothing is stored when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Read(#[from] proto::ReadError),
    #[error("invalid profile: {0}")]
    Invalid(#[from] proto::ValidationError),
    #[error("missing the __name__ label (the profile's name, e.g. process_cpu)")]
    MissingName,
    #[error("invalid label name {name:?}: {reason}")]
    BadLabel { name: String, reason: String },
    #[error("storing the profile failed: {0}")]
    Store(#[from] StoreError),
}

/// How to treat one profile.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Cap on the uncompressed size.
    pub max_uncompressed: usize,
    /// Receive time (unix ms), used when the profile has no `time_nanos`.
    pub received_ms: i64,
    /// Force delta (true) or snapshot (false) instead of `duration_nanos != 0`; the scraper
    /// sets it for counters it turned into deltas.
    pub delta: Option<bool>,
}

impl IngestOptions {
    /// Defaults with the current time as receive time.
    pub fn now() -> Self {
        IngestOptions {
            max_uncompressed: DEFAULT_MAX_UNCOMPRESSED,
            received_ms: crate::store::now_ms(),
            delta: None,
        }
    }
}

/// What one ingest stored, per profile type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IngestSummary {
    pub profile_types: Vec<TypeSummary>,
}

/// Rows and their sum stored for one profile type.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TypeSummary {
    pub profile_type: String,
    pub samples: u64,
    pub total: i64,
}

/// Reads, validates, normalizes and stores one pprof body.
pub fn ingest(
    store: &Store,
    body: &[u8],
    labels: &Labels,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let profile = proto::read(body, options.max_uncompressed)?;
    ingest_profile(store, &profile, labels, options)
}

/// One profile of a push request: a pprof body, or a profile already decoded from another
/// format (folded text, speedscope, OTLP, a delta computed from a cumulative push).
#[derive(Debug, Clone)]
pub enum Payload {
    /// A pprof body, gzip or raw; read with the size limit of [`IngestOptions`].
    Encoded(bytes::Bytes),
    /// A decoded profile, validated like a read one before anything is stored.
    Decoded(Box<Profile>),
}

impl From<bytes::Bytes> for Payload {
    fn from(body: bytes::Bytes) -> Self {
        Payload::Encoded(body)
    }
}

impl From<Profile> for Payload {
    fn from(profile: Profile) -> Self {
        Payload::Decoded(Box::new(profile))
    }
}

/// One profile to store with its series labels; `delta` overrides
/// [`IngestOptions::delta`] for this profile.
#[derive(Debug, Clone)]
pub struct PushItem {
    /// The profile.
    pub payload: Payload,
    /// Its series labels (with `__name__`).
    pub labels: Labels,
    /// Delta (true) or snapshot (false); `None` keeps the options' choice.
    pub delta: Option<bool>,
}

impl PushItem {
    /// An item that keeps the options' delta choice.
    pub fn new(payload: impl Into<Payload>, labels: Labels) -> Self {
        PushItem {
            payload: payload.into(),
            labels,
            delta: None,
        }
    }
}

/// Stores several profiles all or nothing as far as the input goes: every body is read
/// and validated before the first is stored, so one broken profile stores none.
pub fn ingest_all(
    store: &Store,
    items: &[PushItem],
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let mut profiles = Vec::with_capacity(items.len());
    for item in items {
        check_series_labels(&item.labels)?;
        let profile = match &item.payload {
            Payload::Encoded(body) => {
                std::borrow::Cow::Owned(proto::read(body, options.max_uncompressed)?)
            }
            Payload::Decoded(profile) => std::borrow::Cow::Borrowed(profile.as_ref()),
        };
        profile.index()?;
        profiles.push(profile);
    }
    let mut summary = IngestSummary::default();
    for (profile, item) in profiles.iter().zip(items) {
        let mut options = options.clone();
        options.delta = item.delta.or(options.delta);
        let one = ingest_profile(store, profile, &item.labels, &options)?;
        summary.profile_types.extend(one.profile_types);
    }
    Ok(summary)
}

/// Validates, normalizes and stores a decoded profile.
#[tracing::instrument(skip_all, fields(name = labels.get(NAME_LABEL), samples = profile.sample.len()))]
pub fn ingest_profile(
    store: &Store,
    profile: &Profile,
    labels: &Labels,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    check_series_labels(labels)?;
    let index = profile.index()?;
    let (batch, summary) = Normalizer::new(store, &index, labels, options).run();
    store.write(batch)?;
    Ok(summary)
}

/// Series labels must hold a profile name and only valid label names.
pub fn check_series_labels(labels: &Labels) -> Result<(), IngestError> {
    if labels.get(NAME_LABEL).is_none_or(str::is_empty) {
        return Err(IngestError::MissingName);
    }
    for (name, _) in labels.iter() {
        if !is_valid_label_name(name) {
            return Err(IngestError::BadLabel {
                name: name.to_owned(),
                reason: "must match [a-zA-Z_][a-zA-Z0-9_]*".into(),
            });
        }
    }
    Ok(())
}

/// pprof ids → our content ids: a vector when the ids are dense (the usual case).
enum IdMap {
    Dense(Vec<u64>),
    Sparse(HashMap<u64, u64>),
}

impl IdMap {
    fn build(pairs: impl ExactSizeIterator<Item = (u64, u64)> + Clone) -> IdMap {
        let max = pairs.clone().map(|(k, _)| k).max().unwrap_or(0);
        if max <= 4 * pairs.len() as u64 + 1024 {
            let mut v = vec![0; max as usize + 1];
            for (k, id) in pairs {
                v[k as usize] = id;
            }
            IdMap::Dense(v)
        } else {
            IdMap::Sparse(pairs.collect())
        }
    }

    #[inline]
    fn get(&self, k: u64) -> u64 {
        match self {
            IdMap::Dense(v) => v.get(k as usize).copied().unwrap_or(0),
            IdMap::Sparse(m) => m.get(&k).copied().unwrap_or(0),
        }
    }
}

/// Turns one validated profile into a [`WriteBatch`].
struct Normalizer<'a> {
    store: &'a Store,
    index: &'a Index<'a>,
    labels: &'a Labels,
    batch: WriteBatch,
    locations: IdMap,
    types: Vec<String>,
    timestamp: i64,
    duration: i64,
    period: i64,
    base_series: u64,
    label_series: HashMap<Vec<(i64, i64)>, u64>,
    type_series: HashSet<(usize, u64)>,
    stack_buf: Vec<u64>,
}

impl<'a> Normalizer<'a> {
    fn new(
        store: &'a Store,
        index: &'a Index<'a>,
        labels: &'a Labels,
        options: &IngestOptions,
    ) -> Self {
        let profile = index.profile();
        let delta = options.delta.unwrap_or(profile.duration_nanos != 0);
        let mut batch = WriteBatch::default();
        let functions = intern_functions(store, index, &mut batch);
        let mappings = intern_mappings(store, index, &mut batch);
        let locations = intern_locations(store, index, &functions, &mappings, &mut batch);
        let types = profile_types(index, labels.get(NAME_LABEL).unwrap_or_default(), delta);
        let base_series = batch.meta.series(&store.meta, labels);
        let timestamp = if profile.time_nanos > 0 {
            profile.time_nanos / 1_000_000
        } else {
            options.received_ms
        };
        Normalizer {
            store,
            index,
            labels,
            batch,
            locations,
            types,
            timestamp,
            duration: profile.duration_nanos,
            period: profile.period,
            base_series,
            label_series: HashMap::new(),
            type_series: HashSet::new(),
            stack_buf: Vec::with_capacity(64),
        }
    }

    fn run(mut self) -> (WriteBatch, IngestSummary) {
        let mut columns: Vec<Columns> = vec![Columns::default(); self.types.len()];
        for sample in &self.index.profile().sample {
            if sample.value.iter().all(|v| *v == 0) {
                continue;
            }
            let stack = self.stack_of(sample);
            let series = self.series_of(sample);
            for (i, &value) in sample.value.iter().enumerate() {
                if value != 0 {
                    columns[i].push(
                        series,
                        stack,
                        self.timestamp,
                        value,
                        self.duration,
                        self.period,
                    );
                    self.type_series.insert((i, series));
                }
            }
        }
        for &(i, series) in &self.type_series {
            self.batch
                .meta
                .type_series(&self.store.meta, &self.types[i], series);
        }
        let mut summary = IngestSummary::default();
        for (profile_type, cols) in self.types.iter().zip(columns) {
            if cols.is_empty() {
                continue;
            }
            let total = cols.value.iter().sum();
            summary.profile_types.push(TypeSummary {
                profile_type: profile_type.clone(),
                samples: cols.len() as u64,
                total,
            });
            // Two sample types can map to the same id (e.g. empty strings): merge them.
            let slot = self.batch.rows.entry(profile_type.clone()).or_default();
            if slot.is_empty() {
                *slot = cols
            } else {
                slot.append(&cols)
            }
        }
        (self.batch, summary)
    }

    /// The stack id of a sample; stages the stack if it is new. No allocation per frame.
    fn stack_of(&mut self, sample: &Sample) -> u64 {
        let mut hasher = Xxh3::new();
        for &loc in &sample.location_id {
            hasher.update(&self.locations.get(loc).to_le_bytes());
        }
        let id = hasher.digest();
        if !self
            .store
            .meta
            .is_known(crate::store::meta::Kind::Stack, id)
        {
            self.stack_buf.clear();
            self.stack_buf
                .extend(sample.location_id.iter().map(|&l| self.locations.get(l)));
            self.batch.meta.stack(&self.store.meta, id, &self.stack_buf);
        }
        id
    }

    /// The series of a sample: the profile's labels plus the sample's string labels.
    fn series_of(&mut self, sample: &Sample) -> u64 {
        let key: Vec<(i64, i64)> = sample
            .label
            .iter()
            .filter(|l| l.str != 0)
            .map(|l| (l.key, l.str))
            .collect();
        if key.is_empty() {
            return self.base_series;
        }
        if let Some(&id) = self.label_series.get(&key) {
            return id;
        }
        let mut labels = self.labels.clone();
        for &(k, v) in &key {
            let Some(name) = sanitize_label_name(self.index.string(k)) else {
                continue;
            };
            let name = if self.labels.contains(&name) {
                format!("exported_{name}")
            } else {
                name
            };
            labels.insert(name, self.index.string(v));
        }
        let id = self.batch.meta.series(&self.store.meta, &labels);
        self.label_series.insert(key, id);
        id
    }
}

fn intern_functions(store: &Store, index: &Index<'_>, batch: &mut WriteBatch) -> IdMap {
    let profile = index.profile();
    let ids: Vec<(u64, u64)> = profile
        .function
        .iter()
        .map(|f| {
            let meta = FunctionMeta {
                name: index.string(f.name).to_owned(),
                system_name: index.string(f.system_name).to_owned(),
                filename: index.string(f.filename).to_owned(),
                start_line: f.start_line,
            };
            (f.id, batch.meta.function(&store.meta, &meta))
        })
        .collect();
    IdMap::build(ids.into_iter())
}

fn intern_mappings(store: &Store, index: &Index<'_>, batch: &mut WriteBatch) -> IdMap {
    let ids: Vec<(u64, u64)> = index
        .profile()
        .mapping
        .iter()
        .map(|m| {
            let meta = MappingMeta {
                file: index.string(m.filename).to_owned(),
                build_id: index.string(m.build_id).to_owned(),
            };
            (m.id, batch.meta.mapping(&store.meta, &meta))
        })
        .collect();
    IdMap::build(ids.into_iter())
}

fn intern_locations(
    store: &Store,
    index: &Index<'_>,
    functions: &IdMap,
    mappings: &IdMap,
    batch: &mut WriteBatch,
) -> IdMap {
    let ids: Vec<(u64, u64)> = index
        .profile()
        .location
        .iter()
        .map(|l| {
            let lines: Vec<(u64, i64)> = l
                .line
                .iter()
                .map(|line| (functions.get(line.function_id), line.line))
                .collect();
            let address = if lines.is_empty() { l.address } else { 0 };
            let meta = LocationMeta {
                mapping: mappings.get(l.mapping_id),
                address,
                lines,
            };
            (l.id, batch.meta.location(&store.meta, &meta))
        })
        .collect();
    IdMap::build(ids.into_iter())
}

/// The profile type id of each sample type.
fn profile_types(index: &Index<'_>, name: &str, delta: bool) -> Vec<String> {
    let profile = index.profile();
    let (period_type, period_unit) = profile
        .period_type
        .as_ref()
        .map(|p| (index.string(p.ty), index.string(p.unit)))
        .unwrap_or(("", ""));
    profile
        .sample_type
        .iter()
        .map(|st| {
            ProfileType::new(
                name,
                index.string(st.ty),
                index.string(st.unit),
                period_type,
                period_unit,
                delta,
            )
            .id()
        })
        .collect()
}
