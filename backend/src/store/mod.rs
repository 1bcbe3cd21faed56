//! The profile store. Samples live in a columnar table ([`table`]): an in-memory Arrow head
//! made durable by a write-ahead log ([`wal`]) and flushed into immutable, self-contained
//! blocks ([`block`]): one directory per profile type and aligned time window
//! (`--block-window`) with the sorted Parquet rows ([`part`]), the symbols they use and a
//! `meta.json` written last. The meta files are the catalog. Metadata (series and their
//! postings, stacks, locations, functions, mappings) is indexed in sled ([`meta`]), which
//! is rebuilt from the blocks' symbol tables when it lacks them. [`compactor`] decides
//! which blocks to merge (only within a window, then whole windows into larger levels) and
//! which to delete for retention (whole windows that ended before `now − retention`).
//!
//! A write is acknowledged once its WAL record — which carries both its rows and any
//! metadata it introduces — is synced; a failed append is rolled back. A failed flush keeps
//! its frozen head visible and its WAL segments on disk, and is retried. A flush's blocks
//! count once the flushed mark (a file written atomically) covers their WAL segment; a
//! compacted block supersedes the inputs its `meta.json` names as `sources`. On open, crash
//! leftovers are cleaned (unfinished, superseded or unflushed blocks) and the WAL after the
//! mark is replayed. All file operations go through [`io::Io`], where tests inject faults.

pub mod block;
pub mod bucket;
pub mod cache;
mod codec;
pub mod compactor;
pub mod follow;
pub mod io;
pub mod meta;
pub mod part;
pub mod remote;
pub mod table;
pub mod wal;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use std::collections::HashMap;

use arrow::array::RecordBatch;
use block::{Block, BlockWriter, Lineage};

use compactor::{Plan, Policy};
use io::Io;
pub use meta::{MetaBatch, Metadata};
use meta::{MetaEntry, TreeId};
pub use part::{PartMeta, Window};
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
    #[error("metadata this write relied on was garbage-collected while it was prepared; retry it")]
    Collected,
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
            StoreError::Io(_)
                | StoreError::Sled(sled::Error::Io(_))
                | StoreError::Parquet(_)
                | StoreError::Collected
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
        ::codec::record::encode(&self.meta.entries, &self.rows)
    }

    fn decode(bytes: &[u8]) -> Option<(Vec<MetaEntry>, RowsByType)> {
        ::codec::record::decode(bytes)
    }

    /// Rows in this batch.
    pub fn row_count(&self) -> usize {
        self.rows.values().map(Columns::len).sum()
    }
}

/// The folder of the blocks inside the data dir.
pub const BLOCKS_DIR: &str = "blocks";
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
    /// The blocks of `parts`, by ULID.
    blocks: HashMap<String, Block>,
    frozen: Vec<Frozen>,
    /// Blocks read from the bucket ([`remote`]).
    remote: Vec<remote::RemoteBlock>,
}

/// Called with each block once it is durable and catalogued (see [`Store::set_block_hook`]).
pub type BlockHook = Arc<dyn Fn(&Block) + Send + Sync>;

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
    /// Remote blocks' `samples.parquet` (object URLs) that may hold rows of the type in the
    /// range, with their (min, max) timestamps.
    pub remote: Vec<(String, (i64, i64))>,
}

/// Sizes for benchmarks and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSizes {
    pub parquet_bytes: u64,
    pub sled_bytes: u64,
    pub wal_bytes: u64,
    pub parts: usize,
    pub head_rows: usize,
    /// Metadata entries by kind ([`Metadata::counts`]).
    pub meta_entries: [(&'static str, usize); 7],
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
    /// Told about every new durable block (the object-storage uploader).
    block_hook: Mutex<Option<BlockHook>>,
    /// Whether metadata GC should run (after retention deleted blocks, and once at open).
    gc_due: std::sync::atomic::AtomicBool,
    /// Whether the last read of the bucket failed: queries then skip remote blocks.
    bucket_down: std::sync::atomic::AtomicBool,
}

/// How long after a failed flush writers leave the retry to periodic maintenance.
const FLUSH_RETRY: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if needed) the store in `dir`: cleans crash leftovers, imports the
    /// symbols of blocks sled does not know (all of them when sled is new), replays the
    /// WAL and converts parts of earlier formats into blocks.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        fs::create_dir_all(dir.join(BLOCKS_DIR))?;
        let meta = Metadata::open(&dir.join("meta"))?;
        let mark = read_mark_file(dir)?.max(read_flushed_upto(&meta)?);
        let blocks = load_blocks(&dir.join(BLOCKS_DIR), mark)?;
        import_missing_symbols(&meta, &blocks)?;
        let legacy = load_legacy_catalog(&meta, &dir.join("parts"))?;
        let mut head = Head::default();
        let replayed = wal::replay(&dir.join("wal"), mark, |payload| {
            let (entries, rows) = WriteBatch::decode(payload)
                .ok_or_else(|| std::io::Error::other("undecodable write-ahead-log record"))?;
            meta.apply(&entries).map_err(std::io::Error::other)?;
            head.append(&rows);
            Ok(())
        })?;
        let wal = Wal::open_with(&dir.join("wal"), options.io.clone())?;
        tracing::info!(
            blocks = blocks.len(),
            replayed_records = replayed,
            head_rows = head.rows(),
            "store opened"
        );
        let head_started = (head.rows() > 0).then(Instant::now);
        let mut view = View::default();
        for block in blocks {
            view.parts.push(block.meta.part());
            view.blocks.insert(block.meta.ulid.clone(), block);
        }
        view.parts.sort_by_key(|p| (p.window, p.min_ts));
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
            view: RwLock::new(view),
            maintenance: Mutex::new(()),
            trash: Mutex::default(),
            flush_failed_at: Mutex::default(),
            block_hook: Mutex::default(),
            gc_due: true.into(),
            bucket_down: false.into(),
        };
        // Converted blocks carry the parts' WAL marks, which must not exceed the file's.
        store.write_flushed_mark(mark)?;
        for old in &legacy {
            store.convert_legacy_part(old)?;
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
        if batch.meta.is_stale(&self.meta) && !self.is_whole(&batch) {
            return Err(StoreError::Collected);
        }
        w.wal.append(&payload)?;
        self.meta.apply(&batch.meta.entries)?;
        w.head.append(&batch.rows);
        w.head_started.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Whether a batch prepared before a metadata GC still refers only to stored ids.
    fn is_whole(&self, batch: &WriteBatch) -> bool {
        let mut series = std::collections::HashSet::new();
        let mut stacks = std::collections::HashSet::new();
        for columns in batch.rows.values() {
            series.extend(columns.series.iter().copied());
            stacks.extend(columns.stack.iter().copied());
        }
        batch.meta.is_whole(&self.meta, &series, &stacks)
    }

    /// Metadata GC: removes from sled and memory every series, posting, stack, location,
    /// function and mapping that no catalogued block's symbol tables and no row of the
    /// head (or of a frozen head, i.e. the WAL) use. Writes are held while it removes.
    pub fn collect_metadata(&self) -> Result<usize, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        self.io.check(io::Op::Remove)?;
        let removed = self.collect_metadata_locked();
        // Stays due after a failure (nothing was removed, or a later run finishes it).
        self.gc_due
            .store(removed.is_err(), std::sync::atomic::Ordering::SeqCst);
        removed
    }

    fn collect_metadata_locked(&self) -> Result<usize, StoreError> {
        let mut live = meta::LiveIds::default();
        let remote = self.remote_blocks().into_iter().map(|r| r.symbols);
        for dir in self.blocks().into_iter().map(|b| b.dir).chain(remote) {
            block::add_live_ids(&dir, &mut live)?;
        }
        let mut w = self.writable.lock().expect("writable lock");
        let (mut series, mut stacks) = (Vec::new(), Vec::new());
        let view = self.view.read().expect("view lock");
        let frozen = view
            .frozen
            .iter()
            .flat_map(|f| f.head.types.values().flatten());
        let types: Vec<String> = w.head.type_ranges().into_iter().map(|(t, ..)| t).collect();
        let head: Vec<RecordBatch> = types.iter().flat_map(|t| w.head.batches(t)).collect();
        for batch in head.iter().chain(frozen) {
            let ids = |c: usize| {
                batch
                    .column(c)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map(|a| a.values().iter().map(|&v| v as u64).collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            series.extend(ids(0));
            stacks.extend(ids(1));
        }
        drop(view);
        self.meta.add_reachable(series, stacks, &mut live)?;
        let removed = self.meta.collect_garbage(&live)?;
        drop(w);
        if removed > 0 {
            tracing::info!(removed, "collected unused metadata");
        }
        Ok(removed)
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

    /// Writes one frozen head into blocks (one per type and window), then raises the
    /// flushed mark past its WAL segments; on failure its blocks are deleted and it stays
    /// frozen.
    fn flush_frozen(&self, frozen: &Frozen) -> Result<Vec<PartMeta>, StoreError> {
        let mut blocks = Vec::new();
        let written = self
            .write_head_blocks(frozen, &mut blocks)
            .and_then(|()| self.write_flushed_mark(frozen.wal_upto));
        if let Err(err) = written {
            self.discard(&blocks);
            return Err(err);
        }
        self.catalogue_flushed(&blocks, frozen);
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
        let rows: u64 = blocks.iter().map(|b| b.meta.rows).sum();
        tracing::info!(blocks = blocks.len(), rows, "flushed head into blocks");
        self.announce(&blocks);
        Ok(blocks.iter().map(|b| b.meta.part()).collect())
    }

    fn write_head_blocks(&self, frozen: &Frozen, out: &mut Vec<Block>) -> Result<(), StoreError> {
        let len = self.policy.block_window();
        for (profile_type, batches) in &frozen.head.types {
            for (window, batch) in part::split_by_window(batches, len)? {
                let lineage = Lineage {
                    wal_upto: frozen.wal_upto,
                    ..Lineage::default()
                };
                out.push(self.write_block(profile_type, window, lineage, |w| w.write(&batch))?);
            }
        }
        Ok(())
    }

    /// Writes a block (rows by `fill`, symbols from sled, `meta.json` last); not yet in
    /// the view.
    fn write_block(
        &self,
        profile_type: &str,
        window: Window,
        lineage: Lineage,
        fill: impl FnOnce(&mut BlockWriter) -> Result<(), StoreError>,
    ) -> Result<Block, StoreError> {
        let mut writer = BlockWriter::create(&self.blocks_dir(), &self.io, profile_type, window)?;
        if let Err(err) = fill(&mut writer) {
            let _ = fs::remove_dir_all(writer.dir());
            return Err(err);
        }
        writer.finish(&self.meta, lineage)
    }

    /// Deletes blocks that were written but never catalogued.
    fn discard(&self, blocks: &[Block]) {
        for block in blocks {
            let _ = fs::remove_dir_all(&block.dir);
        }
    }

    /// Records durably (temporary file, sync, rename, directory sync) that the WAL up to
    /// segment `seq` is in blocks; never lowers it.
    fn write_flushed_mark(&self, seq: u64) -> Result<(), StoreError> {
        if seq <= read_mark_file(&self.dir)? {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{FLUSHED_MARK}{TMP_SUFFIX}"));
        let mut file = self.io.create(&tmp)?;
        self.io.write_all(&mut file, seq.to_string().as_bytes())?;
        self.io.sync_all(&file)?;
        self.io.rename(&tmp, &self.dir.join(FLUSHED_MARK))?;
        self.io.sync_dir(&self.dir)?;
        Ok(())
    }

    /// Adds a flush's blocks to the view and drops its frozen head, in one step (so a
    /// query sees its rows once).
    fn catalogue_flushed(&self, added: &[Block], frozen: &Frozen) {
        let mut view = self.view.write().expect("view lock");
        view.frozen.retain(|f| !Arc::ptr_eq(&f.head, &frozen.head));
        self.catalogue_in(&mut view, added, &[]);
    }

    /// Adds blocks to the view (and notes in sled that their symbols are there), removing
    /// `retired`; their directories go to the trash.
    fn catalogue(&self, added: &[Block], retired: &[PartMeta]) {
        let mut view = self.view.write().expect("view lock");
        self.catalogue_in(&mut view, added, retired);
    }

    fn catalogue_in(&self, view: &mut View, added: &[Block], retired: &[PartMeta]) {
        for block in added {
            let _ = self
                .meta
                .tree(TreeId::State)
                .insert(imported_key(&block.meta.ulid), &[]);
        }
        for part in retired {
            let _ = self
                .meta
                .tree(TreeId::State)
                .remove(imported_key(&part.file));
        }
        view.parts
            .retain(|p| !retired.iter().any(|o| o.file == p.file));
        for part in retired {
            view.blocks.remove(&part.file);
        }
        for block in added {
            view.parts.push(block.meta.part());
            view.blocks.insert(block.meta.ulid.clone(), block.clone());
        }
        view.parts.sort_by_key(|p| (p.window, p.min_ts));
        let mut trash = self.trash.lock().expect("trash lock");
        trash.extend(
            retired
                .iter()
                .map(|p| (self.block_dir(&p.file), Instant::now())),
        );
    }

    /// Tells the block hook (if any) about blocks that just became durable and catalogued.
    fn announce(&self, blocks: &[Block]) {
        let hook = self.block_hook.lock().expect("hook lock").clone();
        for block in blocks {
            if let Some(hook) = &hook {
                hook(block);
            }
            if let Some(uploader) = &self.options.on_durable {
                uploader.announce(&block.dir);
            }
        }
    }

    /// Registers the function called (on the maintenance thread, so it must not block for
    /// long) with every block once it is durable and catalogued: after a flush, a
    /// compaction or a conversion. Blocks already there are listed by [`Store::blocks`].
    pub fn set_block_hook(&self, hook: BlockHook) {
        *self.block_hook.lock().expect("hook lock") = Some(hook);
    }

    /// The catalogued blocks.
    pub fn blocks(&self) -> Vec<Block> {
        let view = self.view.read().expect("view lock");
        view.parts
            .iter()
            .filter_map(|p| view.blocks.get(&p.file).cloned())
            .collect()
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

    /// One merge: the inputs' rows streamed into a new block whose `meta.json` names them
    /// as its sources (so once it is written they count as gone, also after a crash).
    fn merge(&self, plan: &Plan) -> Result<(), StoreError> {
        let paths: Vec<PathBuf> = plan
            .inputs
            .iter()
            .map(|p| self.block_dir(&p.file).join(block::SAMPLES_FILE))
            .collect();
        let lineage = {
            let view = self.view.read().expect("view lock");
            let mut sources = Vec::new();
            for input in &plan.inputs {
                if let Some(b) = view.blocks.get(&input.file) {
                    sources.extend(b.meta.sources.iter().cloned());
                }
                sources.push(input.file.clone());
            }
            sources.sort();
            sources.dedup();
            Lineage {
                level: self.level_of(plan.window.len),
                sources,
                wal_upto: plan.inputs.iter().map(|p| p.wal_upto).max().unwrap_or(0),
                converted_from: None,
            }
        };
        let block = self.write_block(&plan.profile_type, plan.window, lineage, |w| {
            part::merge_parts(&paths, w)
        })?;
        self.catalogue(std::slice::from_ref(&block), &plan.inputs);
        tracing::info!(merged = plan.inputs.len(), block = %block.meta.ulid, rows = block.meta.rows, window_len = plan.window.len, "compacted blocks");
        self.announce(std::slice::from_ref(&block));
        Ok(())
    }

    /// The compaction level of a window length (its index among the policy's levels).
    fn level_of(&self, len: i64) -> u32 {
        self.policy
            .levels
            .iter()
            .position(|&l| l == len)
            .unwrap_or(0) as u32
    }

    /// Deletes whole blocks whose window ended longer ago than the retention.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let expired = {
            let view = self.view.read().expect("view lock");
            compactor::expired(&view.parts, self.options.retention, now_ms())
        };
        if !expired.is_empty() {
            self.catalogue(&[], &expired);
            self.gc_due.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(blocks = expired.len(), "deleted blocks past retention");
        }
        Ok(expired.len())
    }

    /// Deletes retired block directories whose grace period is over (all of them when
    /// `all`): `meta.json` first, so a half-deleted directory counts as unfinished. One
    /// that cannot be deleted stays queued.
    fn empty_trash(&self, all: bool) -> Result<(), StoreError> {
        let mut trash = self.trash.lock().expect("trash lock");
        let mut first_err = None;
        trash.retain(|(dir, since)| {
            if !all && since.elapsed() < self.options.trash_grace {
                return true;
            }
            let removed = ignore_missing(self.io.remove_file(&dir.join(block::META_FILE)))
                .and_then(|()| ignore_missing(self.io.remove_dir_all(dir)));
            match removed {
                Ok(()) => {
                    if let Some(hook) = &self.options.on_durable {
                        hook.announce_gone(dir);
                    }
                    false
                }
                Err(err) => {
                    first_err.get_or_insert(err);
                    true
                }
            }
        });
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Rewrites a part of an earlier format (a flat file under `parts/` catalogued in sled)
    /// into blocks, with its symbols from sled. Blocks an interrupted conversion of the
    /// same part left are deleted first; the part's catalog entry goes last.
    fn convert_legacy_part(&self, old: &LegacyPart) -> Result<(), StoreError> {
        let path = self.dir.join("parts").join(&old.file);
        let leftovers: Vec<Block> = self
            .blocks()
            .into_iter()
            .filter(|b| b.meta.converted_from.as_deref() == Some(old.file.as_str()))
            .collect();
        if !leftovers.is_empty() {
            let gone: Vec<PartMeta> = leftovers.iter().map(|b| b.meta.part()).collect();
            self.catalogue(&[], &gone);
            self.empty_trash(true)?;
        }
        let mut blocks = Vec::new();
        let converted = (|| {
            let lineage = Lineage {
                wal_upto: old.wal_upto,
                converted_from: Some(old.file.clone()),
                ..Lineage::default()
            };
            match &old.part {
                Some(part) => blocks.push(self.write_block(
                    &part.profile_type,
                    part.window,
                    Lineage {
                        level: self.level_of(part.window.len),
                        ..lineage
                    },
                    |w| part::copy_part(&path, w),
                )?),
                None => self.convert_first_format(&path, &lineage, &mut blocks)?,
            }
            self.meta
                .tree(TreeId::Catalog)
                .remove(old.file.as_bytes())?;
            self.meta.flush()?;
            Ok::<_, StoreError>(())
        })();
        if let Err(err) = converted {
            self.discard(&blocks);
            return Err(err);
        }
        tracing::info!(file = %old.file, blocks = blocks.len(), "converted a part of an earlier format into blocks");
        self.catalogue(&blocks, &[]);
        let _ = fs::remove_file(&path);
        self.announce(&blocks);
        Ok(())
    }

    /// A part of the first format (every type in one file) split by type and window.
    fn convert_first_format(
        &self,
        path: &Path,
        lineage: &Lineage,
        out: &mut Vec<Block>,
    ) -> Result<(), StoreError> {
        let len = self.policy.block_window();
        for (profile_type, batches) in part::read_legacy_part(path)? {
            for (window, batch) in part::split_by_window(&batches, len)? {
                out.push(
                    self.write_block(&profile_type, window, lineage.clone(), |w| w.write(&batch))?,
                );
            }
        }
        Ok(())
    }

    fn blocks_dir(&self) -> PathBuf {
        self.dir.join(BLOCKS_DIR)
    }

    fn block_dir(&self, ulid: &str) -> PathBuf {
        self.blocks_dir().join(ulid)
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
            .map(|p| {
                (
                    self.block_dir(&p.file).join(block::SAMPLES_FILE),
                    (p.min_ts, p.max_ts),
                )
            })
            .unzip();
        let remote = view
            .remote
            .iter()
            .filter(|r| r.part().overlaps(profile_type, start, end))
            .map(|r| (r.url.clone(), (r.meta.min_time, r.meta.max_time)))
            .collect();
        Snapshot {
            parts,
            part_bounds,
            batches,
            remote,
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
        for remote in view
            .remote
            .iter()
            .filter(|r| r.meta.max_time >= start && r.meta.min_time <= end)
        {
            types.insert(remote.meta.profile_type.clone());
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
            meta_entries: self.meta.counts(),
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
        if self.gc_due.load(std::sync::atomic::Ordering::SeqCst) {
            step("metadata gc", self.collect_metadata().map(drop));
        }
        step("trash", self.empty_trash(false));
        first_err.map_or(Ok(()), Err)
    }
}

/// A part of an earlier format still catalogued in sled: its file under `parts/`, its
/// catalog entry when of the second format (one type and window; `None`: the first
/// format, all types in one file) and its WAL mark.
#[derive(Debug, Clone)]
struct LegacyPart {
    file: String,
    part: Option<PartMeta>,
    wal_upto: u64,
}

/// Reads the blocks under `blocks`, deleting what a crash left: stray files, directories
/// without `meta.json`, blocks a finished compaction superseded (named in another's
/// `sources`), and flushed blocks past the flushed mark (an interrupted flush, whose rows
/// the WAL still holds).
fn load_blocks(blocks: &Path, mark: u64) -> Result<Vec<Block>, StoreError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(blocks)? {
        let path = entry?.path();
        if !path.is_dir() {
            tracing::warn!(file = %path.display(), "removing a stray file among the blocks");
            fs::remove_file(&path)?;
            continue;
        }
        match Block::open(&path)? {
            Some(block) => {
                block.verify(false)?;
                found.push(block);
            }
            None => {
                tracing::warn!(dir = %path.display(), "removing an unfinished block");
                fs::remove_dir_all(&path)?;
            }
        }
    }
    let superseded: std::collections::HashSet<String> = found
        .iter()
        .flat_map(|b| b.meta.sources.iter().cloned())
        .collect();
    let (keep, drop): (Vec<Block>, Vec<Block>) = found.into_iter().partition(|b| {
        let unflushed =
            b.meta.sources.is_empty() && b.meta.converted_from.is_none() && b.meta.wal_upto > mark;
        !superseded.contains(&b.meta.ulid) && !unflushed
    });
    for block in drop {
        tracing::warn!(block = %block.meta.ulid, "removing a block superseded by a compaction or left by an interrupted flush");
        fs::remove_dir_all(&block.dir)?;
    }
    Ok(keep)
}

/// The sled key noting that a block's symbols are in sled.
fn imported_key(ulid: &str) -> Vec<u8> {
    [b"block\0".as_slice(), ulid.as_bytes()].concat()
}

/// Imports the symbol tables of blocks sled has no note of (a new or rebuilt sled).
fn import_missing_symbols(meta: &Metadata, blocks: &[Block]) -> Result<(), StoreError> {
    let mut imported = 0;
    for block in blocks {
        imported += usize::from(import_once(meta, block, true)?);
    }
    if imported > 0 {
        meta.flush()?;
        tracing::info!(
            blocks = imported,
            "imported block symbols into the metadata store"
        );
    }
    Ok(())
}

/// Imports a block's symbols into sled unless its note says they are there (checking its
/// files' CRC-32s first when `verify`), then writes the note; the caller flushes sled.
/// Whether it imported.
fn import_once(meta: &Metadata, block: &Block, verify: bool) -> Result<bool, StoreError> {
    let state = meta.tree(TreeId::State);
    if state.contains_key(imported_key(&block.meta.ulid))? {
        return Ok(false);
    }
    if verify {
        block.verify(true)?;
    }
    block::import_symbols(block, meta)?;
    state.insert(imported_key(&block.meta.ulid), &[])?;
    Ok(true)
}

/// Reads the sled catalog of earlier formats. Drops entries whose file is gone and deletes
/// files under `parts/` it does not list.
fn load_legacy_catalog(meta: &Metadata, parts_dir: &Path) -> Result<Vec<LegacyPart>, StoreError> {
    if !parts_dir.is_dir() {
        return Ok(Vec::new());
    }
    let catalog = meta.tree(TreeId::Catalog);
    let mut legacy = Vec::new();
    for item in catalog.iter() {
        let (key, value) = item?;
        if key.first() == Some(&0) {
            continue; // a marker such as FLUSHED_UPTO_KEY
        }
        let old = match PartMeta::decode(&value) {
            Some(part) => LegacyPart {
                file: part.file.clone(),
                wal_upto: part.wal_upto,
                part: Some(part),
            },
            None => match part::decode_legacy(&value) {
                Some((file, wal_upto)) => LegacyPart {
                    file,
                    part: None,
                    wal_upto,
                },
                None => return Err(StoreError::Corrupt("undecodable catalog entry".into())),
            },
        };
        if !parts_dir.join(&old.file).is_file() {
            tracing::error!(file = %old.file, "a catalogued part is missing; dropping it from the catalog");
            catalog.remove(&key)?;
            continue;
        }
        legacy.push(old);
    }
    for entry in fs::read_dir(parts_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !legacy.iter().any(|p| p.file == name) {
            tracing::warn!(file = %name, "removing a part file left by an interrupted flush or compaction");
            fs::remove_file(&path)?;
        }
    }
    Ok(legacy)
}

/// The file (in the data dir) holding the last WAL segment whose rows are in blocks.
const FLUSHED_MARK: &str = "flushed_upto";

fn read_mark_file(dir: &Path) -> Result<u64, StoreError> {
    match fs::read_to_string(dir.join(FLUSHED_MARK)) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{FLUSHED_MARK}: {text:?}"))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err.into()),
    }
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Where the second format kept the flushed mark (sled's catalog tree).
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
