//! From a pprof body to stored rows: read (gzip or raw, size-limited), validate, and
//! normalize as Parca does — one logical profile per sample type, named by the `__name__`
//! label, each non-zero sample value a row (series, stack, value, timestamp, duration,
//! period; a delta profile without any is one zero row with an empty stack) — then hand
//! the rows and any new metadata to the store in one durable write.
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

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use proto::{Index, Profile, Sample};
use serde::Serialize;
use shared::{
    labels::{Labels, NAME_LABEL, is_valid_label_name, sanitize_label_name},
    query::ProfileType,
};
use xxhash_rust::xxh3::Xxh3;

use crate::admission::{Admission, Limits, Refused};
use crate::store::{
    Columns, Store, StoreError, WriteBatch,
    meta::{FunctionMeta, LocationMeta, MappingMeta},
};

/// Default cap on the uncompressed size of one profile.
pub const DEFAULT_MAX_UNCOMPRESSED: usize = 64 << 20;

/// Most frames a stored stack keeps: deeper stacks keep the frames nearest the leaf and
/// get one [`TRUNCATED_FRAME`] at the root instead of the rest.
pub const MAX_STACK_FRAMES: usize = 4096;

/// Function name of the frame standing for the outer frames of a truncated stack.
pub const TRUNCATED_FRAME: &str = "[truncated]";

/// Why a profile was refused. Nothing is stored when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Read(#[from] proto::ReadError),
    #[error("{0}")]
    Framing(#[from] proto::CensusError),
    #[error("invalid profile: {0}")]
    Invalid(#[from] proto::ValidationError),
    #[error("missing the __name__ label (the profile's name, e.g. process_cpu)")]
    MissingName,
    #[error("invalid label name {name:?}: {reason}")]
    BadLabel { name: String, reason: String },
    /// The profile's time is outside what the store accepts (Prometheus' out-of-bounds
    /// rule): more than an hour ahead, or older than the retention.
    #[error(
        "time_nanos {time_ms} ms is outside the allowed window [{oldest_ms}, {newest_ms}] (unix ms: not older than the retention, at most 1h in the future)"
    )]
    OutOfBounds {
        time_ms: i64,
        oldest_ms: i64,
        newest_ms: i64,
    },
    /// A series is over a label limit (count, name or value length).
    #[error("{detail}")]
    LabelLimit {
        /// The label at fault, or `labels` for the count.
        field: String,
        /// What is over which limit.
        detail: String,
    },
    /// Storing the profile would take a profile type past its series limit.
    #[error(
        "profile type {profile_type} would have {series} series; the limit is {limit} (--max-series-per-type)"
    )]
    TooManySeries {
        profile_type: String,
        series: usize,
        limit: usize,
    },
    /// Over a per-profile cap or the budget (see [`crate::admission`]).
    #[error("{0}")]
    Refused(#[from] Refused),
    #[error("storing the profile failed: {0}")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// A short name for `cinder_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Read(proto::ReadError::TooLarge { .. }) => "body_too_large",
            IngestError::Read(_) | IngestError::Framing(_) | IngestError::Invalid(_) => {
                "invalid_profile"
            }
            IngestError::MissingName | IngestError::BadLabel { .. } => "invalid_label",
            IngestError::OutOfBounds { .. } => "out_of_bounds",
            IngestError::LabelLimit { .. } => "label_limit",
            IngestError::TooManySeries { .. } => "series_limit",
            IngestError::Refused(Refused::ProfileTooLarge(_)) => "profile_too_large",
            IngestError::Refused(Refused::Busy { .. }) => "overloaded",
            IngestError::Store(_) => "store",
        }
    }
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
    /// Per-profile caps and cardinality limits.
    pub limits: Arc<Limits>,
}

impl IngestOptions {
    /// Defaults with the current time as receive time.
    pub fn now() -> Self {
        IngestOptions {
            max_uncompressed: DEFAULT_MAX_UNCOMPRESSED,
            received_ms: crate::store::now_ms(),
            delta: None,
            limits: Arc::default(),
        }
    }
}

/// What one ingest stored, per profile type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IngestSummary {
    pub profile_types: Vec<TypeSummary>,
    /// pprof sample labels left off rows because a profile had more distinct values of
    /// them than [`Limits::max_sample_label_values`] (their values are kept).
    #[serde(skip)]
    pub dropped_sample_labels: u64,
}

/// Rows and their sum stored for one profile type.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TypeSummary {
    pub profile_type: String,
    pub samples: u64,
    pub total: i64,
}

/// Reads, validates, normalizes and stores one pprof body (within the per-profile caps of
/// `options.limits`, without a memory budget: see [`ingest_admitted`]).
pub fn ingest(
    store: &Store,
    body: &[u8],
    labels: &Labels,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let item = PushItem::new(bytes::Bytes::copy_from_slice(body), labels.clone());
    ingest_admitted(store, &[item], options, None)
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

/// [`ingest_admitted`] without a shared memory budget.
pub fn ingest_all(
    store: &Store,
    items: &[PushItem],
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    ingest_admitted(store, items, options, None)
}

/// Stores several profiles whole or not at all, within `admission`'s decoded-bytes
/// budget (when given):
///
/// 1. every profile is checked first — labels, size, framing and the per-profile caps
///    (from a [`proto::census`] for pprof bodies) — so one bad profile stores none;
/// 2. budget for their estimated decoded size is reserved, waiting at most
///    [`Limits::queue_wait`] (call this on a blocking thread of a tokio runtime);
/// 3. the profiles are decoded, validated and normalized one at a time into one batch,
///    which is committed in a single store write (one WAL record).
pub fn ingest_admitted(
    store: &Store,
    items: &[PushItem],
    options: &IngestOptions,
    admission: Option<&Admission>,
) -> Result<IngestSummary, IngestError> {
    let mut cost = 0usize;
    // Keep the inflated bytes of a lone profile rather than inflating it twice.
    let mut kept = None;
    for item in items {
        check_series_labels(&item.labels)?;
        check_label_limits(&item.labels, &options.limits)?;
        match &item.payload {
            Payload::Encoded(body) => {
                let raw = proto::inflate(body, options.max_uncompressed)?;
                let census = proto::census(&raw)?;
                options.limits.check_census(&census)?;
                cost = cost.saturating_add(census.decoded_bytes());
                if items.len() == 1 {
                    kept = Some(raw);
                }
            }
            Payload::Decoded(profile) => {
                let census = census_of(profile);
                options.limits.check_census(&census)?;
                cost = cost.saturating_add(census.decoded_bytes());
                profile.index()?;
            }
        }
    }
    let _reservation = admission
        .map(|a| reserve_blocking(a, cost, options.limits.queue_wait))
        .transpose()?;
    let mut batch = WriteBatch::default();
    let mut summary = IngestSummary::default();
    for item in items {
        let decoded;
        let profile = match &item.payload {
            Payload::Encoded(body) => {
                let raw = match kept.take() {
                    Some(raw) => raw,
                    None => proto::inflate(body, options.max_uncompressed)?,
                };
                decoded = proto::decode(&raw)?;
                &decoded
            }
            Payload::Decoded(profile) => profile.as_ref(),
        };
        let mut options = options.clone();
        options.delta = item.delta.or(options.delta);
        let one = normalize_into(&mut batch, store, profile, &item.labels, &options)?;
        summary.profile_types.extend(one.profile_types);
        summary.dropped_sample_labels += one.dropped_sample_labels;
    }
    check_series_limit(store, &batch, &options.limits)?;
    store.write(batch)?;
    Ok(summary)
}

/// The census of a profile decoded from another format (its encoded size stands in for
/// the message's bytes).
fn census_of(profile: &Profile) -> proto::Census {
    proto::Census {
        bytes: prost::Message::encoded_len(profile),
        samples: profile.sample.len(),
        locations: profile.location.len(),
        functions: profile.function.len(),
        mappings: profile.mapping.len(),
        strings: profile.string_table.len(),
    }
}

/// Waits for budget from a blocking thread (or takes it at once outside a runtime).
fn reserve_blocking(
    admission: &Admission,
    bytes: usize,
    wait: std::time::Duration,
) -> Result<crate::admission::Reservation, Refused> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(admission.reserve(bytes, wait)),
        Err(_) => admission.try_reserve(bytes),
    }
}

/// Validates, normalizes and stores a decoded profile.
#[tracing::instrument(skip_all, fields(name = labels.get(NAME_LABEL), samples = profile.sample.len()))]
pub fn ingest_profile(
    store: &Store,
    profile: &Profile,
    labels: &Labels,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let mut batch = WriteBatch::default();
    let summary = normalize_into(&mut batch, store, profile, labels, options)?;
    check_series_limit(store, &batch, &options.limits)?;
    store.write(batch)?;
    Ok(summary)
}

/// The time (unix ms) of a profile's rows: `time_nanos`, or the receive time without it.
fn profile_time(profile: &Profile, options: &IngestOptions) -> i64 {
    if profile.time_nanos > 0 {
        profile.time_nanos / 1_000_000
    } else {
        options.received_ms
    }
}

/// Refuses a profile dated outside the store's window ([`Store::time_bounds`]).
pub fn check_time(
    store: &Store,
    profile: &Profile,
    options: &IngestOptions,
) -> Result<(), IngestError> {
    let time_ms = profile_time(profile, options);
    let (oldest_ms, newest_ms) = store.time_bounds(crate::store::now_ms());
    if time_ms < oldest_ms || time_ms > newest_ms {
        return Err(IngestError::OutOfBounds {
            time_ms,
            oldest_ms,
            newest_ms,
        });
    }
    Ok(())
}

/// Validates a decoded profile and adds its rows and new metadata to `batch`.
fn normalize_into(
    batch: &mut WriteBatch,
    store: &Store,
    profile: &Profile,
    labels: &Labels,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    check_series_labels(labels)?;
    check_label_limits(labels, &options.limits)?;
    let index = profile.index()?;
    check_time(store, profile, options)?;
    Normalizer::new(store, &index, labels, options, batch).run()
}

/// Refuses a batch that would take a profile type past [`Limits::max_series_per_type`].
fn check_series_limit(
    store: &Store,
    batch: &WriteBatch,
    limits: &Limits,
) -> Result<(), IngestError> {
    for (profile_type, new) in batch.meta.new_type_series() {
        let series = store.meta.type_series_count(&profile_type) + new;
        if series > limits.max_series_per_type {
            return Err(IngestError::TooManySeries {
                profile_type,
                series,
                limit: limits.max_series_per_type,
            });
        }
    }
    Ok(())
}

/// Refuses series labels over the count or length limits, naming the limit.
pub fn check_label_limits(labels: &Labels, limits: &Limits) -> Result<(), IngestError> {
    if labels.len() > limits.max_labels_per_series {
        return Err(IngestError::LabelLimit {
            field: "labels".into(),
            detail: format!(
                "the series has {} labels; the limit is {} (--max-labels-per-series)",
                labels.len(),
                limits.max_labels_per_series
            ),
        });
    }
    for (name, value) in labels.iter() {
        for (what, len, limit, flag) in [
            (
                "name",
                name.len(),
                limits.max_label_name_len,
                "--max-label-name-length",
            ),
            (
                "value",
                value.len(),
                limits.max_label_value_len,
                "--max-label-value-length",
            ),
        ] {
            if len > limit {
                return Err(IngestError::LabelLimit {
                    field: name.chars().take(64).collect(),
                    detail: format!(
                        "the label {what} of {:?} is {len} bytes long; the limit is {limit} ({flag})",
                        name.chars().take(64).collect::<String>()
                    ),
                });
            }
        }
    }
    Ok(())
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
    limits: &'a Limits,
    batch: &'a mut WriteBatch,
    locations: IdMap,
    /// Frames per pprof location (its lines, at least one).
    frame_counts: IdMap,
    /// The most frames of any location.
    max_lines: usize,
    /// The `[truncated]` location, once a stack needed it.
    truncated: Option<u64>,
    types: Vec<String>,
    timestamp: i64,
    delta: bool,
    duration: i64,
    period: i64,
    base_series: u64,
    label_series: HashMap<Vec<(i64, i64)>, u64>,
    type_series: HashSet<(usize, u64)>,
    /// Sample-label keys with more distinct values than the limit: left off every row.
    dropped_keys: HashSet<i64>,
    /// Samples that lost a label to `dropped_keys`.
    dropped_samples: u64,
    stack_buf: Vec<u64>,
}

impl<'a> Normalizer<'a> {
    fn new(
        store: &'a Store,
        index: &'a Index<'a>,
        labels: &'a Labels,
        options: &'a IngestOptions,
        batch: &'a mut WriteBatch,
    ) -> Self {
        let profile = index.profile();
        let delta = options.delta.unwrap_or(profile.duration_nanos != 0);
        let functions = intern_functions(store, index, batch);
        let mappings = intern_mappings(store, index, batch);
        let locations = intern_locations(store, index, &functions, &mappings, batch);
        let (frame_counts, max_lines) = frame_counts(index);
        let types = profile_types(index, labels.get(NAME_LABEL).unwrap_or_default(), delta);
        let base_series = batch.meta.series(&store.meta, labels);
        let timestamp = profile_time(profile, options);
        Normalizer {
            store,
            index,
            labels,
            limits: &options.limits,
            batch,
            locations,
            frame_counts,
            max_lines,
            truncated: None,
            types,
            timestamp,
            delta,
            duration: profile.duration_nanos,
            period: profile.period,
            base_series,
            label_series: HashMap::new(),
            type_series: HashSet::new(),
            dropped_keys: crowded_label_keys(profile, options.limits.max_sample_label_values),
            dropped_samples: 0,
            stack_buf: Vec::with_capacity(64),
        }
    }

    fn run(mut self) -> Result<IngestSummary, IngestError> {
        let mut columns: Vec<Columns> = vec![Columns::default(); self.types.len()];
        for sample in &self.index.profile().sample {
            if sample.value.iter().all(|v| *v == 0) {
                continue;
            }
            let stack = self.stack_of(sample);
            let series = self.series_of(sample)?;
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
        self.zero_rows_for_empty_types(&mut columns);
        for &(i, series) in &self.type_series {
            self.batch
                .meta
                .type_series(&self.store.meta, &self.types[i], series);
        }
        let mut summary = IngestSummary {
            dropped_sample_labels: self.dropped_samples,
            ..IngestSummary::default()
        };
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
        Ok(summary)
    }

    /// A delta profile (CPU over an interval) that recorded nothing still says something:
    /// zero over its duration. Each of its types without a row gets one zero-valued row
    /// with an empty stack, so the type and its zero line appear.
    fn zero_rows_for_empty_types(&mut self, columns: &mut [Columns]) {
        if !self.delta || columns.is_empty() || columns.iter().any(|c| !c.is_empty()) {
            return;
        }
        let stack = self.stack_of(&Sample::default());
        for (i, cols) in columns.iter_mut().enumerate() {
            cols.push(
                self.base_series,
                stack,
                self.timestamp,
                0,
                self.duration,
                self.period,
            );
            self.type_series.insert((i, self.base_series));
        }
    }

    /// The stack id of a sample; stages the stack if it is new. No allocation per frame.
    /// Stacks over [`MAX_STACK_FRAMES`] frames keep the frames nearest the leaf and end in
    /// the [`TRUNCATED_FRAME`] location.
    fn stack_of(&mut self, sample: &Sample) -> u64 {
        let kept = self.kept_locations(&sample.location_id);
        let truncated = (kept < sample.location_id.len()).then(|| self.truncated_location());
        let mut hasher = Xxh3::new();
        for &loc in &sample.location_id[..kept] {
            hasher.update(&self.locations.get(loc).to_le_bytes());
        }
        if let Some(t) = truncated {
            hasher.update(&t.to_le_bytes());
        }
        let id = hasher.digest();
        if !self
            .store
            .meta
            .is_known(crate::store::meta::Kind::Stack, id)
        {
            self.stack_buf.clear();
            self.stack_buf.extend(
                sample.location_id[..kept]
                    .iter()
                    .map(|&l| self.locations.get(l)),
            );
            self.stack_buf.extend(truncated);
            self.batch.meta.stack(&self.store.meta, id, &self.stack_buf);
        }
        id
    }

    /// How many locations of a stack (leaf first) to keep: all when the stack has at most
    /// [`MAX_STACK_FRAMES`] frames, else those that fit with room for the truncation frame.
    fn kept_locations(&self, stack: &[u64]) -> usize {
        if stack.len().saturating_mul(self.max_lines) <= MAX_STACK_FRAMES {
            return stack.len();
        }
        let (mut frames, mut fits) = (0usize, 0usize);
        for (i, &loc) in stack.iter().enumerate() {
            frames += self.frame_counts.get(loc).max(1) as usize;
            if frames < MAX_STACK_FRAMES {
                fits = i + 1;
            } else if frames > MAX_STACK_FRAMES {
                return fits;
            }
        }
        stack.len()
    }

    /// The id of the `[truncated]` location, staged on first use.
    fn truncated_location(&mut self) -> u64 {
        if let Some(id) = self.truncated {
            return id;
        }
        let function = FunctionMeta {
            name: TRUNCATED_FRAME.to_owned(),
            system_name: String::new(),
            filename: String::new(),
            start_line: 0,
        };
        let function = self.batch.meta.function(&self.store.meta, &function);
        let location = LocationMeta {
            mapping: 0,
            address: 0,
            lines: vec![(function, 0)],
        };
        let id = self.batch.meta.location(&self.store.meta, &location);
        self.truncated = Some(id);
        id
    }

    /// The series of a sample: the profile's labels plus the sample's string labels.
    /// Keys of [`Self::dropped_keys`] are left off (and counted).
    fn series_of(&mut self, sample: &Sample) -> Result<u64, IngestError> {
        let key: Vec<(i64, i64)> = sample
            .label
            .iter()
            .filter(|l| l.str != 0)
            .map(|l| (l.key, l.str))
            .collect();
        let all = key.len();
        let key: Vec<(i64, i64)> = if self.dropped_keys.is_empty() {
            key
        } else {
            key.into_iter()
                .filter(|(k, _)| !self.dropped_keys.contains(k))
                .collect()
        };
        if key.len() < all {
            self.dropped_samples += 1;
        }
        if key.is_empty() {
            return Ok(self.base_series);
        }
        if let Some(&id) = self.label_series.get(&key) {
            return Ok(id);
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
        check_label_limits(&labels, self.limits)?;
        let id = self.batch.meta.series(&self.store.meta, &labels);
        self.label_series.insert(key, id);
        Ok(id)
    }
}

/// String-label keys of `profile`'s samples with more than `max` distinct values.
fn crowded_label_keys(profile: &Profile, max: usize) -> HashSet<i64> {
    let mut values: HashMap<i64, HashSet<i64>> = HashMap::new();
    let mut crowded = HashSet::new();
    for label in profile.sample.iter().flat_map(|s| &s.label) {
        if label.str == 0 || crowded.contains(&label.key) {
            continue;
        }
        let seen = values.entry(label.key).or_default();
        seen.insert(label.str);
        if seen.len() > max {
            crowded.insert(label.key);
            values.remove(&label.key);
        }
    }
    crowded
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

/// Frames per pprof location (its lines, at most [`MAX_STACK_FRAMES`], at least one) and
/// the largest of them.
fn frame_counts(index: &Index<'_>) -> (IdMap, usize) {
    let pairs: Vec<(u64, u64)> = index
        .profile()
        .location
        .iter()
        .map(|l| (l.id, l.line.len().clamp(1, MAX_STACK_FRAMES) as u64))
        .collect();
    let max = pairs.iter().map(|&(_, n)| n as usize).max().unwrap_or(1);
    (IdMap::build(pairs.into_iter()), max)
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
                .take(MAX_STACK_FRAMES)
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

#[cfg(test)]
mod tests {
    use proto::{Function, Line, Location, ValueType};

    use super::*;
    use crate::store::StoreOptions;

    /// A CPU profile (two sample types) with no samples, as an idle process records.
    fn empty_profile(duration_nanos: i64) -> Profile {
        let strings = ["", "samples", "count", "cpu", "nanoseconds"];
        Profile {
            sample_type: vec![ValueType { ty: 1, unit: 2 }, ValueType { ty: 3, unit: 4 }],
            string_table: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
            period_type: Some(ValueType { ty: 3, unit: 4 }),
            period: 10_000_000,
            // Now (the receive time), within the store's time bounds.
            time_nanos: 0,
            duration_nanos,
            ..Profile::default()
        }
    }

    #[test]
    fn an_empty_delta_profile_is_one_zero_row_per_type_and_an_empty_snapshot_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let labels = Labels::from_iter([(NAME_LABEL.to_owned(), "process_cpu".to_owned())]);
        let options = IngestOptions::now();

        let cpu = ingest_profile(&store, &empty_profile(10_000_000_000), &labels, &options);
        let types = cpu.unwrap().profile_types;
        assert_eq!(types.len(), 2, "{types:?}");
        assert!(
            types.iter().all(|t| t.samples == 1 && t.total == 0),
            "{types:?}"
        );
        assert!(
            store
                .meta
                .profile_types()
                .contains(&"process_cpu:samples:count:cpu:nanoseconds:delta".to_owned())
        );

        let snapshot = ingest_profile(&store, &empty_profile(0), &labels, &options).unwrap();
        assert!(snapshot.profile_types.is_empty(), "{snapshot:?}");
    }

    /// One sample whose stack is `depth` locations deep (leaf first, `f0` the leaf), the
    /// leaf location holding `leaf_lines` inlined lines.
    fn deep_profile(depth: usize, leaf_lines: usize) -> Profile {
        let mut string_table: Vec<Vec<u8>> =
            vec![b"".to_vec(), b"samples".to_vec(), b"count".to_vec()];
        let mut function = Vec::new();
        let mut location = Vec::new();
        for i in 0..depth as u64 {
            string_table.push(format!("f{i}").into_bytes());
            function.push(Function {
                id: i + 1,
                name: string_table.len() as i64 - 1,
                ..Default::default()
            });
            let lines = if i == 0 { leaf_lines } else { 1 };
            location.push(Location {
                id: i + 1,
                line: (0..lines)
                    .map(|l| Line {
                        function_id: i + 1,
                        line: l as i64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        Profile {
            sample_type: vec![ValueType { ty: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: (1..=depth as u64).collect(),
                value: vec![5],
                ..Default::default()
            }],
            location,
            function,
            string_table,
            // Now, within the store's time bounds.
            time_nanos: 0,
            ..Default::default()
        }
    }

    /// Ingests `profile` and reads its one stack back, as function names leaf first.
    async fn stored_stack(profile: &Profile) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let labels: Labels = [("__name__", "cpu")].into_iter().collect();
        let summary = ingest_profile(&store, profile, &labels, &IngestOptions::now()).unwrap();
        assert_eq!(summary.profile_types[0].total, 5);
        let sel = crate::query::Selection {
            profile_type: summary.profile_types[0].profile_type.parse().unwrap(),
            selector: Default::default(),
            start: 0,
            end: i64::MAX,
        };
        let merged = crate::query::merge(&store, &sel).await.unwrap();
        let stacks = crate::query::resolve(&store.meta, &merged, &[]).unwrap();
        assert_eq!(stacks.stacks.len(), 1);
        stacks.stacks[0]
            .frames
            .iter()
            .map(|&f| stacks.frames[f as usize].function.clone())
            .collect()
    }

    #[tokio::test]
    async fn deep_stacks_keep_the_frames_nearest_the_leaf_and_a_truncated_root() {
        let frames = stored_stack(&deep_profile(100_000, 1)).await;
        assert_eq!(frames.len(), MAX_STACK_FRAMES);
        assert_eq!(frames[0], "f0");
        assert_eq!(
            frames[MAX_STACK_FRAMES - 2],
            format!("f{}", MAX_STACK_FRAMES - 2)
        );
        assert_eq!(frames[MAX_STACK_FRAMES - 1], TRUNCATED_FRAME);
    }

    #[tokio::test]
    async fn inlined_lines_count_as_frames() {
        // The leaf has 10 lines: 10 + 4085 locations + the truncation frame = 4096.
        let frames = stored_stack(&deep_profile(5000, 10)).await;
        assert_eq!(frames.len(), MAX_STACK_FRAMES);
        assert_eq!(frames[..10], vec!["f0".to_owned(); 10][..]);
        assert_eq!(frames[MAX_STACK_FRAMES - 2], "f4085");
        assert_eq!(frames[MAX_STACK_FRAMES - 1], TRUNCATED_FRAME);
    }

    #[tokio::test]
    async fn a_request_with_one_invalid_profile_stores_none_of_it() {
        use proto::Message as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let labels: Labels = [("__name__", "cpu")].into_iter().collect();
        let good = bytes::Bytes::from(deep_profile(3, 1).encode_to_vec());
        let mut bad = deep_profile(3, 1);
        bad.sample[0].location_id.push(99); // no such location: fails validation
        let items = [
            PushItem::new(good.clone(), labels.clone()),
            PushItem::new(bytes::Bytes::from(bad.encode_to_vec()), labels.clone()),
        ];
        let err = ingest_all(&store, &items, &IngestOptions::now()).unwrap_err();
        assert!(matches!(err, IngestError::Invalid(_)), "{err}");
        assert!(store.meta.profile_types().is_empty(), "nothing stored");
        assert_eq!(store.sizes().head_rows, 0);
        // Two good ones: both stored, in one write.
        let items = [
            PushItem::new(good.clone(), labels.clone()),
            PushItem::new(good, labels),
        ];
        let summary = ingest_all(&store, &items, &IngestOptions::now()).unwrap();
        assert_eq!(summary.profile_types.len(), 2);
        assert_eq!(store.sizes().head_rows, 2);
    }

    #[tokio::test]
    async fn a_stack_at_the_cap_is_kept_whole() {
        let frames = stored_stack(&deep_profile(MAX_STACK_FRAMES, 1)).await;
        assert_eq!(frames.len(), MAX_STACK_FRAMES);
        assert_eq!(
            frames[MAX_STACK_FRAMES - 1],
            format!("f{}", MAX_STACK_FRAMES - 1)
        );
        let frames = stored_stack(&deep_profile(MAX_STACK_FRAMES + 1, 1)).await;
        assert_eq!(frames[MAX_STACK_FRAMES - 1], TRUNCATED_FRAME);
    }
}
