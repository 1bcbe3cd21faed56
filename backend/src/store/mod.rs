//! The profile store. Metadata (functions, mappings, locations, stacks, series, profile
//! types, the Parquet catalog) lives in sled ([`meta`]); samples live in a columnar table
//! ([`table`]): an in-memory Arrow head made durable by a write-ahead log ([`wal`]) and
//! flushed into immutable, sorted Parquet parts ([`part`]), one per profile type and
//! aligned time window (`--block-window`). [`compactor`] decides which parts to merge
//! (only within a window, then whole windows into larger levels) and which to delete for
//! retention (whole windows that ended before `now − retention`).
//!
//! A write is acknowledged once its WAL record — which carries both its rows and any
//! metadata it introduces — is synced; a failed append is rolled back. A failed flush keeps
//! its frozen head visible and its WAL segments on disk, and is retried. Every catalog
//! change (a flush's new parts with its WAL mark, a compaction's swap, a retention delete)
//! is one atomic sled batch. On open, leftovers of a crash are cleaned (temporary or
//! uncatalogued Parquet files) and the WAL after the last flushed segment is replayed.
//! All file operations go through [`io::Io`], where tests inject faults.

pub mod bucket;
mod codec;
pub mod compactor;
pub mod io;
pub mod meta;
pub mod part;
pub mod table;
pub mod wal;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arrow::array::RecordBatch;

use compactor::{Plan, Policy};
use io::Io;
pub use meta::{MetaBatch, Metadata};
use meta::{MetaEntry, TreeId};
pub use part::{PartMeta, Window};
use part::{PartStats, PartWriter};
pub use table::{Columns, RowsByType};
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

impl StoreError {
    /// Whether the error means the disk is full (the client may retry once it has room).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io(err) => io::is_disk_full(err),
            StoreError::Parquet(parquet::errors::ParquetError::External(err)) => err
                .downcast_ref::<std::io::Error>()
                .is_some_and(io::is_disk_full),
            StoreError::Sled(sled::Error::Io(err)) => io::is_disk_full(err),
            _ => false,
        }
    }

    /// Whether the error comes from the disk rather than from the data (503/507 material).
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Io(_) | StoreError::Sled(sled::Error::Io(_)) | StoreError::Parquet(_)
        )
    }
}

/// Tuning of the sample table.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Flush the head into Parquet once it holds this many rows.
    pub flush_rows: usize,
    /// ... or once its oldest row was written this long ago.
    pub flush_age: Duration,
    /// Delete parts whose window ended longer ago than this; zero keeps everything.
    pub retention: Duration,
    /// Length of the aligned time window of level-0 blocks (at most 10% of the retention).
    pub block_window: Duration,
    /// Parts of one type in an open block window that trigger their merge.
    pub compact_min_parts: usize,
    /// Largest total input (bytes) of one merge.
    pub compact_max_bytes: u64,
    /// How long a retired part file stays on disk for queries that already planned with it.
    pub trash_grace: Duration,
    /// File operations (tests inject faults here).
    pub io: Io,
    /// Told of every block once it is durable and catalogued (the bucket uploader).
    pub on_durable: Option<bucket::OnDurable>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_rows: 1_000_000,
            flush_age: Duration::from_secs(10 * 60),
            retention: Duration::from_secs(15 * 86_400),
            block_window: Duration::from_secs(2 * 3600),
            compact_min_parts: 4,
            compact_max_bytes: 1 << 30,
            trash_grace: Duration::from_secs(60),
            io: Io::default(),
            on_durable: None,
        }
    }
}

impl StoreOptions {
    /// The compaction policy these options describe.
    pub fn policy(&self) -> Policy {
        Policy::new(
            self.block_window,
            self.retention,
            self.compact_min_parts,
            self.compact_max_bytes,
            self.flush_age,
        )
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
/// How far in the future a profile may be dated.
pub const MAX_FUTURE: Duration = Duration::from_secs(3600);

/// What the head and WAL hold, guarded together so a flush's rotation is atomic with writes.
struct Writable {
    wal: Wal,
    head: Head,
    head_started: Option<Instant>,
}

/// A head taken out for flushing, with the last WAL segment holding its rows.
#[derive(Clone)]
struct Frozen {
    head: Arc<FrozenHead>,
    wal_upto: u64,
}

/// Parts and frozen heads visible to queries. Frozen heads stay until their parts are
/// catalogued, in order: a failed flush leaves its head here to be retried.
#[derive(Default)]
struct View {
    parts: Vec<PartMeta>,
    frozen: Vec<Frozen>,
}

/// What a query reads for one profile type: Parquet parts plus in-memory batches.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Parts (absolute paths) that may hold rows of the type in the range; each holds rows
    /// of this type only.
    pub parts: Vec<PathBuf>,
    /// The (min, max) timestamps of each part of `parts`.
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
    policy: Policy,
    io: Io,
    /// Metadata (sled).
    pub meta: Metadata,
    writable: Mutex<Writable>,
    view: RwLock<View>,
    /// Serialises flushes, compactions and retention.
    maintenance: Mutex<()>,
    /// Retired part files, deleted once no query can still be about to open them.
    trash: Mutex<Vec<(PathBuf, Instant)>>,
    /// When the last flush failed: writers do not retry it before [`FLUSH_RETRY`] passed.
    flush_failed_at: Mutex<Option<Instant>>,
}

/// How long after a failed flush writers leave the retry to periodic maintenance.
const FLUSH_RETRY: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if needed) the store in `dir`, cleaning crash leftovers, converting
    /// parts of the first format and replaying the WAL.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        fs::create_dir_all(dir.join("parts"))?;
        let meta = Metadata::open(&dir.join("meta"))?;
        let (parts, legacy) = load_catalog(&meta, &dir.join("parts"))?;
        let flushed_upto = parts
            .iter()
            .map(|p| p.wal_upto)
            .chain(legacy.iter().map(|(_, upto)| *upto))
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
        let wal = Wal::open_with(&dir.join("wal"), options.io.clone())?;
        tracing::info!(
            parts = parts.len(),
            replayed_records = replayed,
            head_rows = head.rows(),
            "store opened"
        );
        let head_started = (head.rows() > 0).then(Instant::now);
        let store = Store {
            dir: dir.to_path_buf(),
            policy: options.policy(),
            io: options.io.clone(),
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
            flush_failed_at: Mutex::default(),
        };
        for (file, wal_upto) in legacy {
            store.convert_legacy_part(&file, wal_upto)?;
        }
        Ok(store)
    }

    /// The compaction policy in force (levels, caps).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The timestamps (unix ms, inclusive) a profile may carry at `now`: at most
    /// [`MAX_FUTURE`] ahead, and not older than the retention (any past time when zero).
    pub fn time_bounds(&self, now: i64) -> (i64, i64) {
        let oldest = if self.options.retention.is_zero() {
            i64::MIN
        } else {
            now.saturating_sub(self.options.retention.as_millis() as i64)
        };
        (oldest, now.saturating_add(MAX_FUTURE.as_millis() as i64))
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

    /// Whether the head is due for a flush (by size or age), or a failed one for a retry.
    pub fn flush_due(&self) -> bool {
        let due = {
            let w = self.writable.lock().expect("writable lock");
            w.head.rows() >= self.options.flush_rows
                || w.head_started
                    .is_some_and(|t| t.elapsed() >= self.options.flush_age)
        };
        due || !self.view.read().expect("view lock").frozen.is_empty()
    }

    /// Writes the head (and any head a failed flush left) into Parquet parts, then forgets
    /// the WAL segments they cover. Returns the new parts.
    pub fn flush(&self) -> Result<Vec<PartMeta>, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        self.flush_locked()
    }

    /// Flushes if due and no other maintenance is running; never waits. After a failed
    /// flush it waits [`FLUSH_RETRY`] before trying again (writers call it on every write).
    pub fn flush_if_due(&self) -> Result<Vec<PartMeta>, StoreError> {
        let Ok(_maintenance) = self.maintenance.try_lock() else {
            return Ok(Vec::new());
        };
        let failed_recently = self
            .flush_failed_at
            .lock()
            .expect("flush failure lock")
            .is_some_and(|at| at.elapsed() < FLUSH_RETRY);
        if failed_recently || !self.flush_due() {
            return Ok(Vec::new());
        }
        self.flush_locked()
    }

    fn flush_locked(&self) -> Result<Vec<PartMeta>, StoreError> {
        let flushed = self.flush_pending();
        *self.flush_failed_at.lock().expect("flush failure lock") =
            flushed.is_err().then(Instant::now);
        flushed
    }

    fn flush_pending(&self) -> Result<Vec<PartMeta>, StoreError> {
        // A head that cannot be frozen (its WAL cannot rotate) stays the head; frozen heads
        // of earlier failed flushes are still retried.
        let frozen_now = self.freeze_head();
        let pending = self.view.read().expect("view lock").frozen.clone();
        let mut written = Vec::new();
        for frozen in &pending {
            written.extend(self.flush_frozen(frozen)?);
        }
        frozen_now?;
        Ok(written)
    }

    /// Moves the head into the view's frozen heads, rotating the WAL.
    fn freeze_head(&self) -> Result<(), StoreError> {
        let mut w = self.writable.lock().expect("writable lock");
        if w.head.rows() == 0 {
            return Ok(());
        }
        let wal_upto = w.wal.rotate()?;
        let head = Arc::new(w.head.take());
        w.head_started = None;
        self.view
            .write()
            .expect("view lock")
            .frozen
            .push(Frozen { head, wal_upto });
        Ok(())
    }

    /// Writes one frozen head into parts (one per type and window) and catalogues them
    /// with its WAL mark in one batch; on failure nothing is catalogued and it stays frozen.
    fn flush_frozen(&self, frozen: &Frozen) -> Result<Vec<PartMeta>, StoreError> {
        let mut parts = Vec::new();
        let written = self
            .write_head_parts(frozen, &mut parts)
            .and_then(|()| self.swap_catalog(&parts, &[], Some(frozen.wal_upto)));
        if let Err(err) = written {
            self.discard(&parts);
            return Err(err);
        }
        {
            let mut view = self.view.write().expect("view lock");
            view.frozen.retain(|f| !Arc::ptr_eq(&f.head, &frozen.head));
            view.parts.extend(parts.iter().cloned());
        }
        // Metadata the WAL carried must be durable before the WAL goes.
        self.meta.flush()?;
        let removed = self
            .writable
            .lock()
            .expect("writable lock")
            .wal
            .remove_upto(frozen.wal_upto);
        if let Err(err) = removed {
            tracing::warn!(%err, "could not delete flushed write-ahead-log segments; a later flush retries");
        }
        self.announce(&parts);
        let rows: u64 = parts.iter().map(|p| p.rows).sum();
        tracing::info!(parts = parts.len(), rows, "flushed head to parquet");
        Ok(parts)
    }

    fn write_head_parts(&self, frozen: &Frozen, out: &mut Vec<PartMeta>) -> Result<(), StoreError> {
        let len = self.policy.block_window();
        for (profile_type, batches) in &frozen.head.types {
            for (window, batch) in part::split_by_window(batches, len)? {
                out.push(
                    self.write_part(profile_type, window, frozen.wal_upto, |mut w| {
                        w.write(&batch)?;
                        w.finish()
                    })?,
                );
            }
        }
        Ok(())
    }

    /// Writes a part file (temp name, sync, rename, sync dir) with `fill`; not catalogued.
    fn write_part(
        &self,
        profile_type: &str,
        window: Window,
        wal_upto: u64,
        fill: impl FnOnce(PartWriter) -> Result<PartStats, StoreError>,
    ) -> Result<PartMeta, StoreError> {
        let parts_dir = self.dir.join("parts");
        let name = format!(
            "{:020}-{}-{:016x}{PART_SUFFIX}",
            window.start,
            window.len,
            rand_u64()
        );
        let tmp = parts_dir.join(format!("{name}{TMP_SUFFIX}"));
        let final_path = parts_dir.join(&name);
        let written = PartWriter::create(&tmp, &self.io, profile_type, window)
            .and_then(fill)
            .and_then(|stats| {
                self.io.rename(&tmp, &final_path)?;
                self.io.sync_dir(&parts_dir)?;
                Ok(stats)
            });
        let stats = match written {
            Ok(stats) => stats,
            Err(err) => {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(&final_path);
                return Err(err);
            }
        };
        Ok(PartMeta {
            file: name,
            profile_type: profile_type.to_owned(),
            window,
            min_ts: stats.min_ts,
            max_ts: stats.max_ts,
            rows: stats.rows,
            bytes: fs::metadata(&final_path)?.len(),
            wal_upto,
        })
    }

    /// Tells [`StoreOptions::on_durable`] of catalogued parts.
    fn announce(&self, parts: &[PartMeta]) {
        if let Some(hook) = &self.options.on_durable {
            for part in parts {
                hook.announce(&self.part_path(&part.file));
            }
        }
    }

    /// Deletes files of parts that were written but never catalogued.
    fn discard(&self, parts: &[PartMeta]) {
        for part in parts {
            let _ = fs::remove_file(self.part_path(&part.file));
        }
    }

    /// One atomic catalog change: `added` in, `removed` out, and the WAL mark raised.
    fn swap_catalog(
        &self,
        added: &[PartMeta],
        removed: &[PartMeta],
        wal_upto: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for part in added {
            batch.insert(part.file.as_bytes(), part.encode());
        }
        for part in removed {
            batch.remove(part.file.as_bytes());
        }
        if let Some(seq) = wal_upto.filter(|&s| s > read_flushed_upto(&self.meta).unwrap_or(0)) {
            batch.insert(FLUSHED_UPTO_KEY, &seq.to_be_bytes());
        }
        self.meta.tree(TreeId::Catalog).apply_batch(batch)?;
        Ok(())
    }

    /// Carries out the merges the compaction policy finds due. Returns how many ran; every
    /// merge runs even when another fails (the first error is returned).
    pub fn compact(&self) -> Result<usize, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let plans = {
            let view = self.view.read().expect("view lock");
            compactor::plan(&view.parts, &self.policy, now_ms())
        };
        let (mut done, mut first_err) = (0, None);
        for plan in plans {
            match self.merge(&plan) {
                Ok(()) => done += 1,
                Err(err) => {
                    tracing::error!(%err, profile_type = %plan.profile_type, window_start = plan.window.start, "compaction failed");
                    first_err.get_or_insert(err);
                }
            }
        }
        first_err.map_or(Ok(done), Err)
    }

    /// One merge: the inputs' rows streamed into a new part, swapped in atomically.
    fn merge(&self, plan: &Plan) -> Result<(), StoreError> {
        let paths: Vec<PathBuf> = plan
            .inputs
            .iter()
            .map(|p| self.part_path(&p.file))
            .collect();
        let wal_upto = plan.inputs.iter().map(|p| p.wal_upto).max().unwrap_or(0);
        let new_part = self.write_part(&plan.profile_type, plan.window, wal_upto, |w| {
            part::merge_parts(&paths, w)
        })?;
        if let Err(err) = self.retire_parts(&plan.inputs, Some(new_part.clone())) {
            self.discard(std::slice::from_ref(&new_part));
            return Err(err);
        }
        self.announce(std::slice::from_ref(&new_part));
        tracing::info!(merged = plan.inputs.len(), file = %new_part.file, rows = new_part.rows, window_len = plan.window.len, "compacted parts");
        Ok(())
    }

    /// Deletes whole parts whose window ended longer ago than the retention.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let expired = {
            let view = self.view.read().expect("view lock");
            compactor::expired(&view.parts, self.options.retention, now_ms())
        };
        if !expired.is_empty() {
            self.retire_parts(&expired, None)?;
            tracing::info!(parts = expired.len(), "deleted parts past retention");
        }
        Ok(expired.len())
    }

    /// Removes parts from catalog and view (adding `replacement`) in one catalog batch,
    /// then queues their files for deletion.
    fn retire_parts(
        &self,
        old: &[PartMeta],
        replacement: Option<PartMeta>,
    ) -> Result<(), StoreError> {
        let added: Vec<PartMeta> = replacement.into_iter().collect();
        self.swap_catalog(&added, old, None)?;
        {
            let mut view = self.view.write().expect("view lock");
            view.parts.retain(|p| !old.iter().any(|o| o.file == p.file));
            view.parts.extend(added);
        }
        // Queued even if the flush below fails: the trash flushes again before deleting.
        let mut trash = self.trash.lock().expect("trash lock");
        trash.extend(
            old.iter()
                .map(|p| (self.part_path(&p.file), Instant::now())),
        );
        drop(trash);
        self.meta.flush()?;
        Ok(())
    }

    /// Deletes retired part files whose grace period is over (all of them when `all`);
    /// a file that cannot be deleted stays queued. Nothing is deleted before the catalog
    /// change that retired it is durable.
    fn empty_trash(&self, all: bool) -> Result<(), StoreError> {
        let mut trash = self.trash.lock().expect("trash lock");
        if trash.is_empty() {
            return Ok(());
        }
        self.meta.flush()?;
        let mut first_err = None;
        trash.retain(|(path, since)| {
            if !all && since.elapsed() < self.options.trash_grace {
                return true;
            }
            match self.io.remove_file(path) {
                Ok(()) => false,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
                Err(err) => {
                    first_err.get_or_insert(err);
                    true
                }
            }
        });
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Rewrites a part of the first format (every type in one file) into parts of the
    /// current one, swapped in atomically.
    fn convert_legacy_part(&self, file: &str, wal_upto: u64) -> Result<(), StoreError> {
        let path = self.part_path(file);
        let mut parts = Vec::new();
        let len = self.policy.block_window();
        let converted = (|| {
            for (profile_type, batches) in part::read_legacy_part(&path)? {
                for (window, batch) in part::split_by_window(&batches, len)? {
                    parts.push(self.write_part(&profile_type, window, wal_upto, |mut w| {
                        w.write(&batch)?;
                        w.finish()
                    })?);
                }
            }
            let mut batch = sled::Batch::default();
            for p in &parts {
                batch.insert(p.file.as_bytes(), p.encode());
            }
            batch.remove(file.as_bytes());
            self.meta.tree(TreeId::Catalog).apply_batch(batch)?;
            self.meta.flush()?;
            Ok::<_, StoreError>(())
        })();
        if let Err(err) = converted {
            self.discard(&parts);
            return Err(err);
        }
        tracing::info!(
            file,
            parts = parts.len(),
            "converted a part of the first format"
        );
        self.view.write().expect("view lock").parts.extend(parts);
        let _ = fs::remove_file(&path);
        Ok(())
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
                    .head
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

    /// The catalogued parts (tests, tools).
    pub fn parts(&self) -> Vec<PartMeta> {
        self.view.read().expect("view lock").parts.clone()
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
            types.insert(part.profile_type.clone());
        }
        for frozen in &view.frozen {
            types.extend(frozen.head.types.keys().cloned());
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

    /// Runs retention, flush (when due), compaction and the trash, each on its own: a step
    /// that fails is logged and the others still run. Returns the first error.
    pub fn maintain(&self) -> Result<(), StoreError> {
        let mut first_err = None;
        let mut step = |name: &str, result: Result<(), StoreError>| {
            if let Err(err) = result {
                tracing::error!(step = name, %err, "store maintenance step failed");
                first_err.get_or_insert(err);
            }
        };
        step("retention", self.enforce_retention().map(drop));
        if self.flush_due() {
            step("flush", self.flush().map(drop));
        }
        step("compaction", self.compact().map(drop));
        step("trash", self.empty_trash(false));
        first_err.map_or(Ok(()), Err)
    }
}

/// Parts of the current format, and (file, wal_upto) of parts of the first format.
type Catalog = (Vec<PartMeta>, Vec<(String, u64)>);

/// Reads the catalog: parts of the current format, and (file, wal_upto) of parts of the
/// first format to convert. Deletes temp files and files the catalog does not list, and
/// drops catalog entries whose file is gone.
fn load_catalog(meta: &Metadata, parts_dir: &Path) -> Result<Catalog, StoreError> {
    let catalog = meta.tree(TreeId::Catalog);
    let (mut parts, mut legacy) = (Vec::new(), Vec::new());
    for item in catalog.iter() {
        let (key, value) = item?;
        if key.first() == Some(&0) {
            continue; // a marker such as FLUSHED_UPTO_KEY
        }
        let (file, entry) = match PartMeta::decode(&value) {
            Some(part) => (part.file.clone(), Some(part)),
            None => match part::decode_legacy(&value) {
                Some((file, upto)) => {
                    legacy.push((file.clone(), upto));
                    (file, None)
                }
                None => return Err(StoreError::Corrupt("undecodable catalog entry".into())),
            },
        };
        if !parts_dir.join(&file).is_file() {
            tracing::error!(file = %file, "a catalogued part is missing; dropping it from the catalog");
            catalog.remove(&key)?;
            legacy.retain(|(f, _)| *f != file);
            continue;
        }
        parts.extend(entry);
    }
    for entry in fs::read_dir(parts_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let listed = parts.iter().any(|p| p.file == name) || legacy.iter().any(|(f, _)| *f == name);
        if !listed {
            tracing::warn!(file = %name, "removing a part file left by an interrupted flush or compaction");
            fs::remove_file(&path)?;
        }
    }
    parts.sort_by_key(|p| (p.window, p.min_ts));
    Ok((parts, legacy))
}

/// The catalog key of the last WAL segment whose rows are in catalogued parts; it starts
/// with 0 so it is never a file name. Kept in the catalog tree so that a flush's parts and
/// its mark are one atomic batch.
const FLUSHED_UPTO_KEY: &[u8] = b"\0wal_flushed_upto";
/// Where the first format kept that mark.
const LEGACY_FLUSHED_UPTO_KEY: &[u8] = b"wal_flushed_upto";

fn read_flushed_upto(meta: &Metadata) -> Result<u64, StoreError> {
    let decode = |v: Option<sled::IVec>| {
        v.and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    };
    let current = decode(meta.tree(TreeId::Catalog).get(FLUSHED_UPTO_KEY)?);
    let legacy = decode(meta.tree(TreeId::State).get(LEGACY_FLUSHED_UPTO_KEY)?);
    Ok(current.max(legacy))
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
