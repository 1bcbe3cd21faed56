//! The profile store. Metadata (functions, mappings, locations, stacks, series, profile
//! types, the Parquet catalog) lives in sled ([`meta`]); samples live in a columnar table
//! ([`table`]): an in-memory Arrow head made durable by a write-ahead log ([`wal`]) and
//! flushed into immutable, sorted Parquet parts.
//!
//! A write is acknowledged once its WAL record — which carries both its rows and any
//! metadata it introduces — is synced. On open, leftovers of a crash are cleaned (temporary
//! or uncatalogued Parquet files, a torn WAL tail) and the WAL after the last flushed
//! segment is replayed.

mod codec;
pub mod meta;
pub mod table;
pub mod wal;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arrow::array::RecordBatch;

pub use meta::{MetaBatch, Metadata};
use meta::{MetaEntry, TreeId};
pub use table::{Columns, PartMeta, RowsByType};
use table::{FrozenHead, Head};
use wal::Wal;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sled(#[from] sled::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

/// Tuning of the sample table.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Flush the head into Parquet once it holds this many rows.
    pub flush_rows: usize,
    /// ... or once its oldest row was written this long ago.
    pub flush_age: Duration,
    /// Delete parts whose newest sample is older than this; zero keeps everything.
    pub retention: Duration,
    /// Parts smaller than this are merged with their neighbours.
    pub compact_below_bytes: u64,
    /// ... once at least this many of them exist.
    pub compact_min_parts: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_rows: 1_000_000,
            flush_age: Duration::from_secs(10 * 60),
            retention: Duration::from_secs(15 * 86_400),
            compact_below_bytes: 32 << 20,
            compact_min_parts: 4,
        }
    }
}

/// One write: metadata it introduces and its rows by profile type.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub meta: MetaBatch,
    pub rows: RowsByType,
}

impl WriteBatch {
    fn encode(&self) -> Vec<u8> {
        let mut w = codec::Writer::default();
        w.u8(WAL_RECORD_VERSION);
        w.varint(self.meta.entries.len() as u64);
        for entry in &self.meta.entries {
            entry.encode(&mut w);
        }
        w.varint(self.rows.len() as u64);
        for (profile_type, columns) in &self.rows {
            w.str(profile_type);
            columns.encode(&mut w);
        }
        w.buf
    }

    fn decode(bytes: &[u8]) -> Option<(Vec<MetaEntry>, RowsByType)> {
        let mut r = codec::Reader::new(bytes);
        if r.u8()? != WAL_RECORD_VERSION {
            return None;
        }
        let n = r.varint()?;
        let entries = (0..n)
            .map(|_| MetaEntry::decode(&mut r))
            .collect::<Option<Vec<_>>>()?;
        let mut rows = RowsByType::new();
        for _ in 0..r.varint()? {
            let profile_type = r.str()?.to_owned();
            rows.insert(profile_type, Columns::decode(&mut r)?);
        }
        Some((entries, rows))
    }

    /// Rows in this batch.
    pub fn row_count(&self) -> usize {
        self.rows.values().map(Columns::len).sum()
    }
}

const WAL_RECORD_VERSION: u8 = 1;
const PART_SUFFIX: &str = ".parquet";
const TMP_SUFFIX: &str = ".tmp";

/// What the head and WAL hold, guarded together so a flush's rotation is atomic with writes.
struct Writable {
    wal: Wal,
    head: Head,
    head_started: Option<Instant>,
}

/// Parts and frozen heads visible to queries.
#[derive(Default)]
struct View {
    parts: Vec<PartMeta>,
    frozen: Vec<Arc<FrozenHead>>,
}

/// What a query reads for one profile type: Parquet parts plus in-memory batches.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Parts (absolute paths) that may hold rows of the type in the range.
    pub parts: Vec<PathBuf>,
    /// The (min, max) timestamps of each part of `parts`, over all its types.
    pub part_bounds: Vec<(i64, i64)>,
    /// Head and frozen-head batches of the type, [`table::HEAD_SCHEMA`].
    pub batches: Vec<RecordBatch>,
}

/// Sizes for benchmarks and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSizes {
    pub parquet_bytes: u64,
    pub sled_bytes: u64,
    pub wal_bytes: u64,
    pub parts: usize,
    pub head_rows: usize,
}

/// The opened store.
pub struct Store {
    dir: PathBuf,
    options: StoreOptions,
    /// Metadata (sled).
    pub meta: Metadata,
    writable: Mutex<Writable>,
    view: RwLock<View>,
    /// Serialises flushes and compactions.
    maintenance: Mutex<()>,
    /// Retired part files, deleted once no query can still be about to open them.
    trash: Mutex<Vec<(PathBuf, Instant)>>,
}

/// How long a retired part file stays on disk for queries that already planned with it.
const TRASH_GRACE: Duration = Duration::from_secs(60);

impl Store {
    /// Opens (creating if needed) the store in `dir`, cleaning crash leftovers and
    /// replaying the WAL.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        fs::create_dir_all(dir.join("parts"))?;
        let meta = Metadata::open(&dir.join("meta"))?;
        let parts = load_catalog(&meta, &dir.join("parts"))?;
        let flushed_upto = parts
            .iter()
            .map(|p| p.wal_upto)
            .max()
            .unwrap_or(0)
            .max(read_flushed_upto(&meta)?);
        let mut head = Head::default();
        let replayed = wal::replay(&dir.join("wal"), flushed_upto, |payload| {
            let (entries, rows) = WriteBatch::decode(payload)
                .ok_or_else(|| std::io::Error::other("undecodable write-ahead-log record"))?;
            meta.apply(&entries).map_err(std::io::Error::other)?;
            head.append(&rows);
            Ok(())
        })?;
        let wal = Wal::open(&dir.join("wal"))?;
        tracing::info!(
            parts = parts.len(),
            replayed_records = replayed,
            head_rows = head.rows(),
            "store opened"
        );
        let head_started = (head.rows() > 0).then(Instant::now);
        Ok(Store {
            dir: dir.to_path_buf(),
            options,
            meta,
            writable: Mutex::new(Writable {
                wal,
                head,
                head_started,
            }),
            view: RwLock::new(View {
                parts,
                frozen: Vec::new(),
            }),
            maintenance: Mutex::new(()),
            trash: Mutex::default(),
        })
    }

    /// Makes a write durable (WAL synced), then visible. Returns once acknowledged.
    pub fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.row_count() == 0 && batch.meta.entries.is_empty() {
            return Ok(());
        }
        let payload = batch.encode();
        let mut w = self.writable.lock().expect("writable lock");
        w.wal.append(&payload)?;
        self.meta.apply(&batch.meta.entries)?;
        w.head.append(&batch.rows);
        w.head_started.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Whether the head is due for a flush (by size or age).
    pub fn flush_due(&self) -> bool {
        let w = self.writable.lock().expect("writable lock");
        w.head.rows() >= self.options.flush_rows
            || w.head_started
                .is_some_and(|t| t.elapsed() >= self.options.flush_age)
    }

    /// Writes the head into a new Parquet part, then forgets the WAL segments it covers.
    pub fn flush(&self) -> Result<Option<PartMeta>, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        self.flush_locked()
    }

    /// Flushes if due and no other flush or compaction is running; never waits.
    pub fn flush_if_due(&self) -> Result<Option<PartMeta>, StoreError> {
        let Ok(_maintenance) = self.maintenance.try_lock() else {
            return Ok(None);
        };
        if !self.flush_due() {
            return Ok(None);
        }
        self.flush_locked()
    }

    fn flush_locked(&self) -> Result<Option<PartMeta>, StoreError> {
        let (frozen, wal_upto) = {
            let mut w = self.writable.lock().expect("writable lock");
            if w.head.rows() == 0 {
                return Ok(None);
            }
            let wal_upto = w.wal.rotate()?;
            let frozen = Arc::new(w.head.take());
            w.head_started = None;
            self.view
                .write()
                .expect("view lock")
                .frozen
                .push(frozen.clone());
            (frozen, wal_upto)
        };
        let part = self.write_part(&frozen.types, wal_upto)?;
        // Metadata the WAL carried must be durable before the WAL goes.
        self.meta.flush()?;
        {
            let mut view = self.view.write().expect("view lock");
            view.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
            view.parts.push(part.clone());
        }
        self.writable
            .lock()
            .expect("writable lock")
            .wal
            .remove_upto(wal_upto)?;
        tracing::info!(file = %part.file, rows = part.rows, bytes = part.bytes, "flushed head to parquet");
        Ok(Some(part))
    }

    /// Writes a part file (temp name, sync, rename, sync dir) and records it in the catalog.
    fn write_part(
        &self,
        data: &table::TypedBatches,
        wal_upto: u64,
    ) -> Result<PartMeta, StoreError> {
        let parts_dir = self.dir.join("parts");
        let name = format!("{:020}-{:016x}{PART_SUFFIX}", now_ms(), rand_u64());
        let tmp = parts_dir.join(format!("{name}{TMP_SUFFIX}"));
        let (rows, min_ts, max_ts, types) = table::write_part(&tmp, data)?;
        let final_path = parts_dir.join(&name);
        fs::rename(&tmp, &final_path)?;
        fs::File::open(&parts_dir)?.sync_all()?;
        let bytes = fs::metadata(&final_path)?.len();
        let part = PartMeta {
            file: name,
            min_ts,
            max_ts,
            rows,
            bytes,
            types,
            wal_upto,
        };
        let catalog = self.meta.tree(TreeId::Catalog);
        catalog.insert(part.file.as_bytes(), part.encode())?;
        write_flushed_upto(&self.meta, wal_upto)?;
        Ok(part)
    }

    /// Merges small parts into one (oldest first). Returns the new part, if any.
    pub fn compact(&self) -> Result<Option<PartMeta>, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let mut small: Vec<PartMeta> = {
            let view = self.view.read().expect("view lock");
            view.parts
                .iter()
                .filter(|p| p.bytes < self.options.compact_below_bytes)
                .cloned()
                .collect()
        };
        if small.len() < self.options.compact_min_parts.max(2) {
            return Ok(None);
        }
        small.sort_by_key(|p| p.min_ts);
        let mut merged = table::TypedBatches::new();
        for part in &small {
            for (t, batches) in table::read_part(&self.part_path(&part.file))? {
                merged.entry(t).or_default().extend(batches);
            }
        }
        let wal_upto = small.iter().map(|p| p.wal_upto).max().unwrap_or(0);
        let new_part = self.write_part(&merged, wal_upto)?;
        self.retire_parts(&small, Some(new_part.clone()))?;
        tracing::info!(merged = small.len(), file = %new_part.file, rows = new_part.rows, "compacted parts");
        Ok(Some(new_part))
    }

    /// Deletes whole parts whose newest sample is older than the retention.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        if self.options.retention.is_zero() {
            return Ok(0);
        }
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let cutoff = now_ms() - self.options.retention.as_millis() as i64;
        let expired: Vec<PartMeta> = {
            let view = self.view.read().expect("view lock");
            view.parts
                .iter()
                .filter(|p| p.max_ts < cutoff)
                .cloned()
                .collect()
        };
        if !expired.is_empty() {
            self.retire_parts(&expired, None)?;
            tracing::info!(parts = expired.len(), "deleted parts past retention");
        }
        Ok(expired.len())
    }

    /// Removes parts from catalog and view (adding `replacement`), then deletes their files.
    fn retire_parts(
        &self,
        old: &[PartMeta],
        replacement: Option<PartMeta>,
    ) -> Result<(), StoreError> {
        let catalog = self.meta.tree(TreeId::Catalog);
        let mut batch = sled::Batch::default();
        for part in old {
            batch.remove(part.file.as_bytes());
        }
        catalog.apply_batch(batch)?;
        self.meta.flush()?;
        {
            let mut view = self.view.write().expect("view lock");
            view.parts.retain(|p| !old.iter().any(|o| o.file == p.file));
            view.parts.extend(replacement);
        }
        let mut trash = self.trash.lock().expect("trash lock");
        trash.extend(
            old.iter()
                .map(|p| (self.part_path(&p.file), Instant::now())),
        );
        Ok(())
    }

    /// Deletes retired part files whose grace period is over (all of them when `all`).
    fn empty_trash(&self, all: bool) {
        let mut trash = self.trash.lock().expect("trash lock");
        trash.retain(|(path, since)| {
            let due = all || since.elapsed() >= TRASH_GRACE;
            if due {
                let _ = fs::remove_file(path);
            }
            !due
        });
    }

    fn part_path(&self, file: &str) -> PathBuf {
        self.dir.join("parts").join(file)
    }

    /// What a query over `profile_type` in `[start, end]` (unix ms) reads.
    pub fn snapshot(&self, profile_type: &str, start: i64, end: i64) -> Snapshot {
        let mut w = self.writable.lock().expect("writable lock");
        let mut batches = w.head.batches(profile_type);
        let view = self.view.read().expect("view lock");
        drop(w);
        for frozen in &view.frozen {
            batches.extend(
                frozen
                    .types
                    .get(profile_type)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        let (parts, part_bounds) = view
            .parts
            .iter()
            .filter(|p| p.overlaps(profile_type, start, end))
            .map(|p| (self.part_path(&p.file), (p.min_ts, p.max_ts)))
            .unzip();
        Snapshot {
            parts,
            part_bounds,
            batches,
        }
    }

    /// Profile types with samples in `[start, end]` (unix ms).
    pub fn profile_types_in(&self, start: i64, end: i64) -> Vec<String> {
        let mut types = std::collections::BTreeSet::new();
        {
            let mut w = self.writable.lock().expect("writable lock");
            for (t, lo, hi) in w.head.type_ranges() {
                if hi >= start && lo <= end {
                    types.insert(t);
                }
            }
        }
        let view = self.view.read().expect("view lock");
        for part in view
            .parts
            .iter()
            .filter(|p| p.max_ts >= start && p.min_ts <= end)
        {
            types.extend(part.types.iter().cloned());
        }
        for frozen in &view.frozen {
            types.extend(frozen.types.keys().cloned());
        }
        types.into_iter().collect()
    }

    /// Sizes of the store on disk and in memory.
    pub fn sizes(&self) -> StoreSizes {
        let (wal_bytes, head_rows) = {
            let w = self.writable.lock().expect("writable lock");
            (w.wal.size_on_disk(), w.head.rows())
        };
        let view = self.view.read().expect("view lock");
        StoreSizes {
            parquet_bytes: view.parts.iter().map(|p| p.bytes).sum(),
            sled_bytes: self.meta.size_on_disk(),
            wal_bytes,
            parts: view.parts.len(),
            head_rows,
        }
    }

    /// Runs flush (when due), compaction and retention; called periodically.
    pub fn maintain(&self) -> Result<(), StoreError> {
        if self.flush_due() {
            self.flush()?;
        }
        self.compact()?;
        self.enforce_retention()?;
        self.empty_trash(false);
        Ok(())
    }
}

/// Reads the catalog, deleting temp files and files the catalog does not list, and
/// dropping catalog entries whose file is gone.
fn load_catalog(meta: &Metadata, parts_dir: &Path) -> Result<Vec<PartMeta>, StoreError> {
    let catalog = meta.tree(TreeId::Catalog);
    let mut parts = Vec::new();
    for item in catalog.iter() {
        let (_, value) = item?;
        let part = PartMeta::decode(&value)
            .ok_or_else(|| StoreError::Corrupt("undecodable catalog entry".into()))?;
        if parts_dir.join(&part.file).is_file() {
            parts.push(part);
        } else {
            tracing::error!(file = %part.file, "a catalogued part is missing; dropping it from the catalog");
            catalog.remove(part.file.as_bytes())?;
        }
    }
    for entry in fs::read_dir(parts_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let listed = parts.iter().any(|p| p.file == name);
        if !listed {
            tracing::warn!(file = %name, "removing a part file left by an interrupted flush or compaction");
            fs::remove_file(&path)?;
        }
    }
    parts.sort_by_key(|p| p.min_ts);
    Ok(parts)
}

const FLUSHED_UPTO_KEY: &[u8] = b"wal_flushed_upto";

fn read_flushed_upto(meta: &Metadata) -> Result<u64, StoreError> {
    let value = meta.tree(TreeId::State).get(FLUSHED_UPTO_KEY)?;
    Ok(value
        .and_then(|v| v.as_ref().try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

fn write_flushed_upto(meta: &Metadata, seq: u64) -> Result<(), StoreError> {
    let state = meta.tree(TreeId::State);
    let current = read_flushed_upto(meta)?;
    if seq > current {
        state.insert(FLUSHED_UPTO_KEY, &seq.to_be_bytes())?;
    }
    Ok(())
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests;
