//! Metadata in sled: functions, mappings, locations and stacks (each stored once, keyed by
//! a hash of its content), series (label sets) with an inverted index, profile types, and
//! the small amount of state the sample table needs (its Parquet catalog, WAL progress).
//!
//! Series, postings and the profile-type → series sets are also kept in memory, so that
//! selector matching never reads sled. Writes arrive as [`MetaEntry`] lists that the WAL
//! carries too, so a crash before sled flushes loses nothing acknowledged.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use shared::{labels::Labels, labels::Selector};
use xxhash_rust::xxh3::Xxh3;

use super::{
    StoreError,
    codec::{Reader, Writer},
};

pub use codec::{MetaEntry, TreeId};

/// The sled trees Cinder keeps, by numeric id (used in WAL records), and their names.
const TREES: [(TreeId, &str); 11] = [
    (TreeId::Functions, "functions"),
    (TreeId::Mappings, "mappings"),
    (TreeId::Locations, "locations"),
    (TreeId::Stacks, "stacks"),
    (TreeId::Series, "series"),
    (TreeId::Postings, "postings"),
    (TreeId::Types, "profile_types"),
    (TreeId::TypeSeries, "type_series"),
    (TreeId::Catalog, "catalog"),
    (TreeId::State, "state"),
    (TreeId::Targets, "targets"),
];

/// A function: name as pprof reports it, the mangled name, and its source file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionMeta {
    pub name: String,
    pub system_name: String,
    pub filename: String,
    pub start_line: i64,
}

/// A mapping: the binary (or shared library) a location's address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappingMeta {
    pub file: String,
    pub build_id: String,
}

/// A location: a mapping, an address (kept only when there are no lines, i.e. the frame is
/// unsymbolized) and its lines, innermost (inlined callee) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocationMeta {
    pub mapping: u64,
    pub address: u64,
    pub lines: Vec<(u64, i64)>,
}

impl FunctionMeta {
    /// Content hash; the function's id.
    pub fn id(&self) -> u64 {
        hash_strs(
            &[&self.name, &self.system_name, &self.filename],
            self.start_line,
        )
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.name);
        w.str(&self.system_name);
        w.str(&self.filename);
        w.svarint(self.start_line);
        w.buf
    }

    fn decode(bytes: &[u8]) -> Option<FunctionMeta> {
        let mut r = Reader::new(bytes);
        Some(FunctionMeta {
            name: r.str()?.to_owned(),
            system_name: r.str()?.to_owned(),
            filename: r.str()?.to_owned(),
            start_line: r.svarint()?,
        })
    }
}

impl MappingMeta {
    /// Content hash; the mapping's id (never 0, which means "no mapping").
    pub fn id(&self) -> u64 {
        hash_strs(&[&self.file, &self.build_id], 0).max(1)
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.file);
        w.str(&self.build_id);
        w.buf
    }

    fn decode(bytes: &[u8]) -> Option<MappingMeta> {
        let mut r = Reader::new(bytes);
        Some(MappingMeta {
            file: r.str()?.to_owned(),
            build_id: r.str()?.to_owned(),
        })
    }
}

impl LocationMeta {
    /// Content hash; the location's id.
    pub fn id(&self) -> u64 {
        let mut h = Xxh3::new();
        h.update(&self.mapping.to_le_bytes());
        h.update(&self.address.to_le_bytes());
        for (function, line) in &self.lines {
            h.update(&function.to_le_bytes());
            h.update(&line.to_le_bytes());
        }
        h.digest()
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.mapping);
        w.varint(self.address);
        w.varint(self.lines.len() as u64);
        for (function, line) in &self.lines {
            w.u64(*function);
            w.svarint(*line);
        }
        w.buf
    }

    fn decode(bytes: &[u8]) -> Option<LocationMeta> {
        let mut r = Reader::new(bytes);
        let mapping = r.u64()?;
        let address = r.varint()?;
        let n = r.varint()?;
        let mut lines = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            lines.push((r.u64()?, r.svarint()?));
        }
        Some(LocationMeta {
            mapping,
            address,
            lines,
        })
    }
}

/// The id of a stack: a hash of its location ids, leaf first.
pub fn stack_id(locations: &[u64]) -> u64 {
    let mut h = Xxh3::new();
    for id in locations {
        h.update(&id.to_le_bytes());
    }
    h.digest()
}

fn encode_stack(locations: &[u64]) -> Vec<u8> {
    let mut w = Writer::default();
    w.varint(locations.len() as u64);
    for id in locations {
        w.u64(*id);
    }
    w.buf
}

fn decode_stack(bytes: &[u8]) -> Option<Vec<u64>> {
    let mut r = Reader::new(bytes);
    let n = r.varint()?;
    (0..n).map(|_| r.u64()).collect()
}

/// The id of a series: a hash of its sorted label pairs.
pub fn series_id(labels: &Labels) -> u64 {
    let mut h = Xxh3::new();
    for (name, value) in labels.iter() {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xfe]);
    }
    h.digest()
}

fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut w = Writer::default();
    w.varint(labels.len() as u64);
    for (name, value) in labels.iter() {
        w.str(name);
        w.str(value);
    }
    w.buf
}

fn decode_labels(bytes: &[u8]) -> Option<Labels> {
    let mut r = Reader::new(bytes);
    let n = r.varint()?;
    let mut labels = Labels::default();
    for _ in 0..n {
        let name = r.str()?.to_owned();
        labels.insert(name, r.str()?.to_owned());
    }
    Some(labels)
}

fn hash_strs(parts: &[&str], extra: i64) -> u64 {
    let mut h = Xxh3::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(&extra.to_le_bytes());
    h.digest()
}

fn id_key(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn posting_key(name: &str, value: &str, series: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + value.len() + 10);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key.extend_from_slice(&series.to_be_bytes());
    key
}

fn type_series_key(profile_type: &str, series: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(profile_type.len() + 9);
    key.extend_from_slice(profile_type.as_bytes());
    key.push(0);
    key.extend_from_slice(&series.to_be_bytes());
    key
}

/// Which content-addressed kind an id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Function,
    Mapping,
    Location,
    Stack,
}

impl Kind {
    fn tree(self) -> TreeId {
        match self {
            Kind::Function => TreeId::Functions,
            Kind::Mapping => TreeId::Mappings,
            Kind::Location => TreeId::Locations,
            Kind::Stack => TreeId::Stacks,
        }
    }
}

/// In-memory view of series and their index (rebuilt from sled at open).
#[derive(Debug, Default)]
struct SeriesIndex {
    labels: HashMap<u64, Arc<Labels>>,
    /// label name → value → series ids.
    postings: HashMap<String, HashMap<String, HashSet<u64>>>,
    /// profile type id → series ids that have samples of it.
    by_type: HashMap<String, HashSet<u64>>,
}

impl SeriesIndex {
    fn add_series(&mut self, id: u64, labels: Labels) {
        for (name, value) in labels.iter() {
            let values = self.postings.entry(name.to_owned()).or_default();
            values.entry(value.to_owned()).or_default().insert(id);
        }
        self.labels.insert(id, Arc::new(labels));
    }
}

/// The metadata store.
pub struct Metadata {
    db: sled::Db,
    trees: HashMap<TreeId, sled::Tree>,
    known: Mutex<HashSet<(Kind, u64)>>,
    index: RwLock<SeriesIndex>,
    /// Bumped by every metadata GC (see [`MetaBatch::is_stale`]).
    epoch: std::sync::atomic::AtomicU64,
}

/// Ids still in use, by kind (metadata GC keeps these and removes the rest).
#[derive(Debug, Default)]
pub struct LiveIds {
    pub series: HashSet<u64>,
    pub stacks: HashSet<u64>,
    pub locations: HashSet<u64>,
    pub functions: HashSet<u64>,
    pub mappings: HashSet<u64>,
}

/// sled's page cache. Its default (1 GiB) let a week of metadata grow the process by
/// hundreds of MiB; lookups on the ingest path hit the in-memory `known` set instead, and
/// queries resolve each location once, so a small cache costs little.
const SLED_CACHE_BYTES: u64 = 64 << 20;

/// Opens sled, waiting up to [`LOCK_WAIT`] for its file lock: a store that was just closed
/// (a restart in the same process, or a previous process still exiting) can hold it for
/// a moment while sled's background flusher winds down.
fn open_sled(path: &std::path::Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(SLED_CACHE_BYTES)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// How long [`open_sled`] waits for another holder of the lock to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Metadata {
    /// Opens the sled database at `path` and loads series and types into memory.
    pub fn open(path: &std::path::Path) -> Result<Metadata, StoreError> {
        let db = open_sled(path)?;
        let mut trees = HashMap::new();
        for (id, name) in TREES {
            trees.insert(id, db.open_tree(name)?);
        }
        let meta = Metadata {
            db,
            trees,
            known: Mutex::default(),
            index: RwLock::default(),
            epoch: Default::default(),
        };
        meta.load_index()?;
        Ok(meta)
    }

    fn load_index(&self) -> Result<(), StoreError> {
        let mut index = SeriesIndex::default();
        for item in self.tree(TreeId::Series).iter() {
            let (key, value) = item?;
            let id =
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| corrupt("series key"))?);
            index.add_series(
                id,
                decode_labels(&value).ok_or_else(|| corrupt("series labels"))?,
            );
        }
        for item in self.tree(TreeId::TypeSeries).iter() {
            let (key, _) = item?;
            let (profile_type, series) =
                split_type_series(&key).ok_or_else(|| corrupt("type_series key"))?;
            index
                .by_type
                .entry(profile_type)
                .or_default()
                .insert(series);
        }
        *self.index.write().expect("index lock") = index;
        Ok(())
    }

    pub(crate) fn tree(&self, id: TreeId) -> &sled::Tree {
        &self.trees[&id]
    }

    /// Whether a function/mapping/location/stack with this id is stored already.
    pub fn is_known(&self, kind: Kind, id: u64) -> bool {
        if self.known.lock().expect("known lock").contains(&(kind, id)) {
            return true;
        }
        let stored = self
            .tree(kind.tree())
            .contains_key(id.to_be_bytes())
            .unwrap_or(false);
        if stored {
            self.known.lock().expect("known lock").insert((kind, id));
        }
        stored
    }

    /// Whether this series is stored already.
    pub fn has_series(&self, id: u64) -> bool {
        self.index
            .read()
            .expect("index lock")
            .labels
            .contains_key(&id)
    }

    /// How many series have samples of this profile type.
    pub fn type_series_count(&self, profile_type: &str) -> usize {
        let index = self.index.read().expect("index lock");
        index.by_type.get(profile_type).map_or(0, HashSet::len)
    }

    /// Whether samples of this profile type were stored for this series already.
    pub fn has_type_series(&self, profile_type: &str, series: u64) -> bool {
        let index = self.index.read().expect("index lock");
        index
            .by_type
            .get(profile_type)
            .is_some_and(|s| s.contains(&series))
    }

    /// Writes entries to sled and the in-memory index. Idempotent (entries are content
    /// addressed), which is what makes WAL replay safe.
    pub fn apply(&self, entries: &[MetaEntry]) -> Result<(), StoreError> {
        let mut batches: HashMap<TreeId, sled::Batch> = HashMap::new();
        for entry in entries {
            batches
                .entry(entry.tree)
                .or_default()
                .insert(entry.key.as_slice(), entry.value.as_slice());
        }
        for (tree, batch) in batches {
            self.tree(tree).apply_batch(batch)?;
        }
        self.remember(entries)
    }

    fn remember(&self, entries: &[MetaEntry]) -> Result<(), StoreError> {
        let mut known = self.known.lock().expect("known lock");
        let mut index = self.index.write().expect("index lock");
        for entry in entries {
            let id = || {
                entry
                    .key
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| corrupt("id key"))
            };
            match entry.tree {
                TreeId::Functions => _ = known.insert((Kind::Function, id()?)),
                TreeId::Mappings => _ = known.insert((Kind::Mapping, id()?)),
                TreeId::Locations => _ = known.insert((Kind::Location, id()?)),
                TreeId::Stacks => _ = known.insert((Kind::Stack, id()?)),
                TreeId::Series => {
                    let labels =
                        decode_labels(&entry.value).ok_or_else(|| corrupt("series labels"))?;
                    index.add_series(id()?, labels);
                }
                TreeId::TypeSeries => {
                    let (profile_type, series) =
                        split_type_series(&entry.key).ok_or_else(|| corrupt("type_series"))?;
                    index
                        .by_type
                        .entry(profile_type)
                        .or_default()
                        .insert(series);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable (sled otherwise flushes every 500 ms).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    // ----- reads for queries -----

    /// All profile types that have ever had samples.
    pub fn profile_types(&self) -> Vec<String> {
        let index = self.index.read().expect("index lock");
        let mut types: Vec<String> = index.by_type.keys().cloned().collect();
        types.sort();
        types
    }

    /// Series of a profile type whose labels match the selector.
    pub fn select_series(&self, profile_type: &str, selector: &Selector) -> Vec<u64> {
        let index = self.index.read().expect("index lock");
        let Some(candidates) = index.by_type.get(profile_type) else {
            return Vec::new();
        };
        let narrowed = narrow_by_equality(&index, selector, candidates);
        let mut ids: Vec<u64> = narrowed
            .into_iter()
            .filter(|id| {
                index
                    .labels
                    .get(id)
                    .is_some_and(|labels| selector.matches(labels))
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The labels of a series.
    pub fn series_labels(&self, id: u64) -> Option<Arc<Labels>> {
        self.index
            .read()
            .expect("index lock")
            .labels
            .get(&id)
            .cloned()
    }

    /// Label names used by the given series.
    pub fn label_names(&self, series: &[u64]) -> Vec<String> {
        let index = self.index.read().expect("index lock");
        let names: BTreeSet<&str> = series
            .iter()
            .filter_map(|id| index.labels.get(id))
            .flat_map(|l| l.iter().map(|(n, _)| n))
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// Values of one label among the given series.
    pub fn label_values(&self, name: &str, series: &[u64]) -> Vec<String> {
        let index = self.index.read().expect("index lock");
        let values: BTreeSet<&str> = series
            .iter()
            .filter_map(|id| index.labels.get(id)?.get(name))
            .collect();
        values.into_iter().map(str::to_owned).collect()
    }

    /// A stack's location ids, leaf first.
    pub fn stack(&self, id: u64) -> Result<Option<Vec<u64>>, StoreError> {
        self.read(TreeId::Stacks, id, decode_stack)
    }

    /// A location.
    pub fn location(&self, id: u64) -> Result<Option<LocationMeta>, StoreError> {
        self.read(TreeId::Locations, id, LocationMeta::decode)
    }

    /// A function.
    pub fn function(&self, id: u64) -> Result<Option<FunctionMeta>, StoreError> {
        self.read(TreeId::Functions, id, FunctionMeta::decode)
    }

    /// A mapping.
    pub fn mapping(&self, id: u64) -> Result<Option<MappingMeta>, StoreError> {
        self.read(TreeId::Mappings, id, MappingMeta::decode)
    }

    // ----- metadata GC -----

    /// Adds to `live` the given series and stacks of rows (the head), with the locations,
    /// functions and mappings their stacks reach (read from sled).
    pub fn add_reachable(
        &self,
        series: impl IntoIterator<Item = u64>,
        stacks: impl IntoIterator<Item = u64>,
        live: &mut LiveIds,
    ) -> Result<(), StoreError> {
        live.series.extend(series);
        for stack in stacks {
            if !live.stacks.insert(stack) {
                continue;
            }
            for location in self.stack(stack)?.unwrap_or_default() {
                if !live.locations.insert(location) {
                    continue;
                }
                if let Some(loc) = self.location(location)? {
                    live.functions.extend(loc.lines.iter().map(|(f, _)| *f));
                    if loc.mapping != 0 {
                        live.mappings.insert(loc.mapping);
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes from sled and memory every series (with its postings and type links),
    /// stack, location, function and mapping not in `live`, and profile types left without
    /// series. Bumps the GC epoch, so writes prepared before it are checked again.
    pub fn collect_garbage(&self, live: &LiveIds) -> Result<usize, StoreError> {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut removed = 0;
        for (tree, ids) in [
            (TreeId::Functions, &live.functions),
            (TreeId::Mappings, &live.mappings),
            (TreeId::Locations, &live.locations),
            (TreeId::Stacks, &live.stacks),
            (TreeId::Series, &live.series),
        ] {
            removed += self.remove_where(tree, |key| {
                key.try_into()
                    .map(u64::from_be_bytes)
                    .is_ok_and(|id| !ids.contains(&id))
            })?;
        }
        let dead_series = |key: &[u8]| {
            key.len() >= 8
                && !live.series.contains(&u64::from_be_bytes(
                    key[key.len() - 8..].try_into().expect("8 bytes"),
                ))
        };
        removed += self.remove_where(TreeId::Postings, dead_series)?;
        removed += self.remove_where(TreeId::TypeSeries, dead_series)?;
        let mut index = self.index.write().expect("index lock");
        index.labels.retain(|id, _| live.series.contains(id));
        for values in index.postings.values_mut() {
            for ids in values.values_mut() {
                ids.retain(|id| live.series.contains(id));
            }
            values.retain(|_, ids| !ids.is_empty());
        }
        index.postings.retain(|_, values| !values.is_empty());
        for ids in index.by_type.values_mut() {
            ids.retain(|id| live.series.contains(id));
        }
        index.by_type.retain(|_, ids| !ids.is_empty());
        removed += self.remove_where(TreeId::Types, |key| {
            std::str::from_utf8(key).is_ok_and(|t| !index.by_type.contains_key(t))
        })?;
        drop(index);
        self.known
            .lock()
            .expect("known lock")
            .retain(|(kind, id)| match kind {
                Kind::Function => live.functions.contains(id),
                Kind::Mapping => live.mappings.contains(id),
                Kind::Location => live.locations.contains(id),
                Kind::Stack => live.stacks.contains(id),
            });
        Ok(removed)
    }

    fn remove_where(
        &self,
        tree: TreeId,
        dead: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, StoreError> {
        let tree = self.tree(tree);
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in tree.iter().keys() {
            let key = key?;
            if dead(&key) {
                batch.remove(key);
                n += 1;
            }
        }
        tree.apply_batch(batch)?;
        Ok(n)
    }

    /// The GC epoch: changes whenever [`Metadata::collect_garbage`] runs.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Entries per kind (sled trees; series also in memory), for `/metrics`.
    pub fn counts(&self) -> [(&'static str, usize); 7] {
        let n = |t: TreeId| self.tree(t).len();
        // One lock at a time, each released before the next: `remember` takes `known`
        // then `index`, so holding `index` while waiting for `known` would deadlock.
        let series = self.index.read().expect("index lock").labels.len();
        let known = self.known.lock().expect("known lock").len();
        [
            ("series", series),
            ("postings", n(TreeId::Postings)),
            ("stacks", n(TreeId::Stacks)),
            ("locations", n(TreeId::Locations)),
            ("functions", n(TreeId::Functions)),
            ("mappings", n(TreeId::Mappings)),
            ("known", known),
        ]
    }

    // ----- scrape targets created through the API -----

    /// Stores (or replaces) the record of an API-created scrape target, durably: the
    /// targets tree is flushed before this returns, since the WAL does not carry it.
    pub fn put_target(&self, id: &str, record: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(TreeId::Targets);
        tree.insert(id.as_bytes(), record)?;
        tree.flush()?;
        Ok(())
    }

    /// Deletes a target record; whether it existed.
    pub fn delete_target(&self, id: &str) -> Result<bool, StoreError> {
        let tree = self.tree(TreeId::Targets);
        let existed = tree.remove(id.as_bytes())?.is_some();
        tree.flush()?;
        Ok(existed)
    }

    /// Every stored target record as (id, record), ordered by id.
    pub fn targets(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree(TreeId::Targets)
            .iter()
            .map(|item| {
                let (key, value) = item?;
                let id = String::from_utf8(key.to_vec()).map_err(|_| corrupt("target id"))?;
                Ok((id, value.to_vec()))
            })
            .collect()
    }

    fn read<T>(
        &self,
        tree: TreeId,
        id: u64,
        decode: fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.tree(tree).get(id.to_be_bytes())? {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .ok_or_else(|| corrupt("metadata value")),
            None => Ok(None),
        }
    }
}

/// Uses the postings of `name="value"` matchers to cut the candidate set before the
/// per-series check.
fn narrow_by_equality(
    index: &SeriesIndex,
    selector: &Selector,
    candidates: &HashSet<u64>,
) -> Vec<u64> {
    let mut best: Option<&HashSet<u64>> = None;
    for m in &selector.matchers {
        if m.op() != shared::labels::MatchOp::Eq || m.value().is_empty() {
            continue;
        }
        let posting = index.postings.get(m.name()).and_then(|v| v.get(m.value()));
        match posting {
            None => return Vec::new(),
            Some(p) if best.is_none_or(|b| p.len() < b.len()) => best = Some(p),
            Some(_) => {}
        }
    }
    match best {
        Some(posting) => posting
            .iter()
            .filter(|id| candidates.contains(id))
            .copied()
            .collect(),
        None => candidates.iter().copied().collect(),
    }
}

fn split_type_series(key: &[u8]) -> Option<(String, u64)> {
    let (head, id) = key.split_at_checked(key.len().checked_sub(8)?)?;
    let profile_type = head.strip_suffix(&[0])?;
    Some((
        String::from_utf8(profile_type.to_vec()).ok()?,
        u64::from_be_bytes(id.try_into().ok()?),
    ))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("undecodable {what} in the metadata store"))
}

/// Builds the metadata entries a write needs: only what is not stored yet.
#[derive(Debug, Default)]
pub struct MetaBatch {
    pub(crate) entries: Vec<MetaEntry>,
    staged: HashSet<(TreeId, u64)>,
    /// The GC epoch when the batch first asked what is stored.
    epoch: Option<u64>,
}

impl MetaBatch {
    fn seen(&mut self, meta: &Metadata) {
        self.epoch.get_or_insert_with(|| meta.epoch());
    }

    /// Whether a metadata GC ran since this batch checked what is stored: ids it left out
    /// as stored may be gone.
    pub fn is_stale(&self, meta: &Metadata) -> bool {
        self.epoch.is_some_and(|e| e != meta.epoch())
    }

    fn stage(&mut self, tree: TreeId, id: u64, value: impl FnOnce() -> Vec<u8>) {
        if self.staged.insert((tree, id)) {
            self.entries.push(MetaEntry {
                tree,
                key: id_key(id),
                value: value(),
            });
        }
    }

    /// Adds a function unless stored; returns its id.
    pub fn function(&mut self, meta: &Metadata, f: &FunctionMeta) -> u64 {
        self.seen(meta);
        let id = f.id();
        if !meta.is_known(Kind::Function, id) {
            self.stage(TreeId::Functions, id, || f.encode());
        }
        id
    }

    /// Adds a mapping unless stored; returns its id.
    pub fn mapping(&mut self, meta: &Metadata, m: &MappingMeta) -> u64 {
        self.seen(meta);
        let id = m.id();
        if !meta.is_known(Kind::Mapping, id) {
            self.stage(TreeId::Mappings, id, || m.encode());
        }
        id
    }

    /// Adds a location unless stored; returns its id.
    pub fn location(&mut self, meta: &Metadata, l: &LocationMeta) -> u64 {
        self.seen(meta);
        let id = l.id();
        if !meta.is_known(Kind::Location, id) {
            self.stage(TreeId::Locations, id, || l.encode());
        }
        id
    }

    /// Adds a stack (by its precomputed id) unless stored.
    pub fn stack(&mut self, meta: &Metadata, id: u64, locations: &[u64]) {
        self.seen(meta);
        if !self.staged.contains(&(TreeId::Stacks, id)) && !meta.is_known(Kind::Stack, id) {
            self.stage(TreeId::Stacks, id, || encode_stack(locations));
        }
    }

    /// Adds a series and its postings unless stored; returns its id.
    pub fn series(&mut self, meta: &Metadata, labels: &Labels) -> u64 {
        self.seen(meta);
        let id = series_id(labels);
        if meta.has_series(id) || self.staged.contains(&(TreeId::Series, id)) {
            return id;
        }
        self.stage(TreeId::Series, id, || encode_labels(labels));
        for (name, value) in labels.iter() {
            let key = posting_key(name, value, id);
            self.entries.push(MetaEntry {
                tree: TreeId::Postings,
                key,
                value: Vec::new(),
            });
        }
        id
    }

    /// Whether every id the batch's rows (`series`, `stacks`) and staged entries refer to is
    /// stored or staged; checked for a stale batch ([`MetaBatch::is_stale`]).
    pub fn is_whole(&self, meta: &Metadata, series: &HashSet<u64>, stacks: &HashSet<u64>) -> bool {
        let has = |tree: TreeId, kind: Option<Kind>, id: u64| {
            self.staged.contains(&(tree, id))
                || match kind {
                    Some(kind) => meta.is_known(kind, id),
                    None => meta.has_series(id),
                }
        };
        let rows_ok = series.iter().all(|&id| has(TreeId::Series, None, id))
            && stacks
                .iter()
                .all(|&id| has(TreeId::Stacks, Some(Kind::Stack), id));
        rows_ok
            && self.entries.iter().all(|e| match e.tree {
                TreeId::Stacks => decode_stack(&e.value).is_some_and(|locs| {
                    locs.iter()
                        .all(|&l| has(TreeId::Locations, Some(Kind::Location), l))
                }),
                TreeId::Locations => LocationMeta::decode(&e.value).is_some_and(|l| {
                    (l.mapping == 0 || has(TreeId::Mappings, Some(Kind::Mapping), l.mapping))
                        && l.lines
                            .iter()
                            .all(|&(f, _)| has(TreeId::Functions, Some(Kind::Function), f))
                }),
                _ => true,
            })
    }

    /// New (profile type, series count) pairs this batch records, for series limits.
    pub fn new_type_series(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for entry in self.entries.iter().filter(|e| e.tree == TreeId::TypeSeries) {
            if let Some((profile_type, _)) = split_type_series(&entry.key) {
                *counts.entry(profile_type).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }

    /// Records that `series` has samples of `profile_type`.
    pub fn type_series(&mut self, meta: &Metadata, profile_type: &str, series: u64) {
        self.seen(meta);
        let key = type_series_key(profile_type, series);
        let marker = xxhash_rust::xxh3::xxh3_64(&key);
        if meta.has_type_series(profile_type, series)
            || !self.staged.insert((TreeId::TypeSeries, marker))
        {
            return;
        }
        self.entries.push(MetaEntry {
            tree: TreeId::Types,
            key: profile_type.as_bytes().to_vec(),
            value: Vec::new(),
        });
        self.entries.push(MetaEntry {
            tree: TreeId::TypeSeries,
            key,
            value: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_entries_while_writes_land_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::sync::Arc::new(Metadata::open(dir.path()).unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        let writer = {
            let (meta, done) = (meta.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..1000u64 {
                    let mut batch = MetaBatch::default();
                    let f = FunctionMeta {
                        name: format!("f{i}"),
                        system_name: String::new(),
                        filename: String::new(),
                        start_line: 0,
                    };
                    batch.function(&meta, &f);
                    batch.series(&meta, &labels(&[("i", &i.to_string())]));
                    meta.apply(&batch.entries).unwrap();
                }
                done.send(()).unwrap();
            })
        };
        let reader = {
            let meta = meta.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    std::hint::black_box(meta.counts());
                }
                done.send(()).unwrap();
            })
        };
        for _ in 0..2 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a metrics read and a write deadlocked");
        }
        writer.join().unwrap();
        reader.join().unwrap();
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut l = Labels::default();
        for (n, v) in pairs {
            l.insert(n.to_string(), v.to_string());
        }
        l
    }

    #[test]
    fn entities_round_trip_through_their_encoding() {
        let f = FunctionMeta {
            name: "main.work".into(),
            system_name: "main.work".into(),
            filename: "/src/main.go".into(),
            start_line: 12,
        };
        assert_eq!(FunctionMeta::decode(&f.encode()), Some(f.clone()));
        let l = LocationMeta {
            mapping: 7,
            address: 0,
            lines: vec![(f.id(), 14), (3, -1)],
        };
        assert_eq!(LocationMeta::decode(&l.encode()), Some(l));
        let m = MappingMeta {
            file: "/bin/app".into(),
            build_id: "abc".into(),
        };
        assert_eq!(MappingMeta::decode(&m.encode()), Some(m));
        assert_eq!(decode_stack(&encode_stack(&[1, 2, 3])), Some(vec![1, 2, 3]));
        let ls = labels(&[("__name__", "cpu"), ("job", "api")]);
        assert_eq!(decode_labels(&encode_labels(&ls)), Some(ls));
    }

    #[test]
    fn ids_depend_on_content_only() {
        let a = FunctionMeta {
            name: "a".into(),
            ..Default::default()
        };
        let b = FunctionMeta {
            name: "b".into(),
            ..Default::default()
        };
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), b.id());
        // Field boundaries matter: ("ab","") and ("a","b") differ.
        let x = FunctionMeta {
            name: "ab".into(),
            ..Default::default()
        };
        let y = FunctionMeta {
            name: "a".into(),
            system_name: "b".into(),
            ..Default::default()
        };
        assert_ne!(x.id(), y.id());
        assert_ne!(stack_id(&[1, 2]), stack_id(&[2, 1]));
    }

    #[test]
    fn series_are_indexed_and_selected_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let api = labels(&[
            ("__name__", "cpu"),
            ("job", "api"),
            ("instance", "10.0.0.1:80"),
        ]);
        let db = labels(&[
            ("__name__", "cpu"),
            ("job", "db"),
            ("instance", "10.0.0.2:80"),
        ]);
        let ty = "cpu:samples:count:cpu:nanoseconds:delta";
        {
            let meta = Metadata::open(dir.path()).unwrap();
            let mut batch = MetaBatch::default();
            let a = batch.series(&meta, &api);
            let b = batch.series(&meta, &db);
            batch.type_series(&meta, ty, a);
            batch.type_series(&meta, ty, b);
            meta.apply(&batch.entries).unwrap();
            meta.flush().unwrap();
        }
        let meta = Metadata::open(dir.path()).unwrap();
        assert_eq!(meta.profile_types(), vec![ty.to_string()]);
        let all = shared::query::parse_matchers("{}").unwrap();
        assert_eq!(meta.select_series(ty, &all).len(), 2);
        let only_api = shared::query::parse_matchers(r#"{job="api"}"#).unwrap();
        assert_eq!(meta.select_series(ty, &only_api), vec![series_id(&api)]);
        let by_regex = shared::query::parse_matchers(r#"{instance=~"10\\.0\\.0\\.2:.*"}"#).unwrap();
        assert_eq!(meta.select_series(ty, &by_regex), vec![series_id(&db)]);
        let none = shared::query::parse_matchers(r#"{job="nope"}"#).unwrap();
        assert!(meta.select_series(ty, &none).is_empty());
        let ids = meta.select_series(ty, &all);
        assert_eq!(meta.label_values("job", &ids), vec!["api", "db"]);
        assert_eq!(meta.label_names(&ids), vec!["__name__", "instance", "job"]);
    }

    #[test]
    fn a_batch_stages_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(dir.path()).unwrap();
        let f = FunctionMeta {
            name: "f".into(),
            ..Default::default()
        };
        let mut first = MetaBatch::default();
        first.function(&meta, &f);
        first.function(&meta, &f);
        assert_eq!(first.entries.len(), 1);
        meta.apply(&first.entries).unwrap();
        let mut second = MetaBatch::default();
        second.function(&meta, &f);
        assert!(second.entries.is_empty());
        assert_eq!(meta.function(f.id()).unwrap(), Some(f));
    }
}
