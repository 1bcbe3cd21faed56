//! Self-contained blocks: a directory per flushed or compacted part, named by a ULID,
//! holding the part's rows (`samples.parquet`) and every symbol those rows use as Parquet
//! tables (`series`, `stacks`, `locations`, `functions`, `mappings`), then `meta.json`,
//! written last. A block can be read without this node's sled (see
//! `docs/block-format.md`); the meta files are the store's catalog.
//!
//! Writing: the directory is created, the samples and symbol tables are written and
//! synced, then `meta.json` (with each file's size and CRC-32) goes through a temporary
//! name, sync, rename and directory sync. A directory without `meta.json` is unfinished and
//! deleted at open.

use std::{
    collections::HashSet,
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, MapBuilder, RecordBatch,
        StringArray, StringBuilder,
    },
    datatypes::{DataType, Field, Int64Type, Schema, SchemaRef},
};
use parquet::{
    arrow::{ArrowWriter, ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder},
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};
use serde::{Deserialize, Serialize};
use shared::labels::Labels;

use super::{
    StoreError,
    io::{Io, WriteFailure},
    meta::{FunctionMeta, LocationMeta, MappingMeta, MetaBatch, Metadata},
    part::{PartMeta, PartStats, PartWriter, Window},
};

/// Version of the block layout written into `meta.json`.
pub const BLOCK_VERSION: u32 = 1;
/// The file a block's rows are in.
pub const SAMPLES_FILE: &str = "samples.parquet";
/// The block's catalog entry, written last.
pub const META_FILE: &str = "meta.json";
/// The symbol tables, in the order they are written.
pub const SYMBOL_FILES: [&str; 5] = [
    "series.parquet",
    "stacks.parquet",
    "locations.parquet",
    "functions.parquet",
    "mappings.parquet",
];
const META_TMP: &str = "meta.json.tmp";
/// Ids resolved (and rows written) per batch of a symbol table.
const SYMBOL_BATCH: usize = 4096;

/// One file of a block, as `meta.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    /// File name inside the block directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE, as zlib and S3's `x-amz-checksum-crc32`) of the whole file.
    pub crc32: u32,
}

/// The contents of a block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// The block's id, also its directory name.
    pub ulid: String,
    /// [`BLOCK_VERSION`].
    pub version: u32,
    /// The one profile type of its rows.
    pub profile_type: String,
    /// Start (unix ms) of the aligned window all its rows fall in.
    pub window_start: i64,
    /// Length (ms) of that window; the compaction level's window length.
    pub window_len: i64,
    /// Smallest and largest row timestamp (unix ms).
    pub min_time: i64,
    pub max_time: i64,
    /// Rows in `samples.parquet`.
    pub rows: u64,
    /// Compaction level: 0 for a flushed head, else the index of `window_len` among levels.
    pub level: u32,
    /// ULIDs of the blocks compacted into this one, transitively (empty for a flush).
    pub sources: Vec<String>,
    /// The last write-ahead-log segment whose rows this block (or an earlier one) holds.
    pub wal_upto: u64,
    /// The flat part file of an earlier format this block was converted from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<String>,
    /// Every other file of the block.
    pub files: Vec<BlockFile>,
}

impl BlockMeta {
    /// The catalog entry the store keeps in memory for this block.
    pub fn part(&self) -> PartMeta {
        PartMeta {
            file: self.ulid.clone(),
            profile_type: self.profile_type.clone(),
            window: Window {
                start: self.window_start,
                len: self.window_len,
            },
            min_ts: self.min_time,
            max_ts: self.max_time,
            rows: self.rows,
            bytes: self.files.iter().map(|f| f.size).sum(),
            wal_upto: self.wal_upto,
        }
    }
}

/// A finished block on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block directory.
    pub dir: PathBuf,
    /// Its `meta.json`.
    pub meta: BlockMeta,
}

impl Block {
    /// Reads a block directory's `meta.json`; `Ok(None)` when it has none (unfinished).
    pub fn open(dir: &Path) -> Result<Option<Block>, StoreError> {
        let bytes = match fs::read(dir.join(META_FILE)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let meta: BlockMeta = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", dir.join(META_FILE).display())))?;
        if meta.version != BLOCK_VERSION {
            return Err(StoreError::Corrupt(format!(
                "{}: block version {} (this build reads {BLOCK_VERSION})",
                dir.display(),
                meta.version
            )));
        }
        Ok(Some(Block {
            dir: dir.to_path_buf(),
            meta,
        }))
    }

    /// Every file of the block, `meta.json` last (the order an uploader copies them in).
    pub fn files(&self) -> Vec<PathBuf> {
        self.meta
            .files
            .iter()
            .map(|f| self.dir.join(&f.name))
            .chain(std::iter::once(self.dir.join(META_FILE)))
            .collect()
    }

    /// The rows' file.
    pub fn samples(&self) -> PathBuf {
        self.dir.join(SAMPLES_FILE)
    }

    /// Checks that every listed file exists with its recorded size (and, when `checksums`,
    /// its CRC-32).
    pub fn verify(&self, checksums: bool) -> Result<(), StoreError> {
        for file in &self.meta.files {
            let path = self.dir.join(&file.name);
            let size = fs::metadata(&path)?.len();
            let bad = size != file.size || (checksums && crc32_of(&path)? != file.crc32);
            if bad {
                return Err(StoreError::Corrupt(format!(
                    "{} does not match its meta.json",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

fn crc32_of(path: &Path) -> Result<u32, StoreError> {
    let mut file = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// A new block's id: a ULID of now with random bits.
pub fn new_ulid() -> String {
    let random = (u128::from(super::rand_u64()) << 64) | u128::from(super::rand_u64());
    ulid::Ulid::from_parts(super::now_ms().max(0) as u64, random).to_string()
}

/// What a finished block records besides its rows.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub level: u32,
    pub sources: Vec<String>,
    pub wal_upto: u64,
    pub converted_from: Option<String>,
}

/// Writes one block: rows (sorted, one type and window) through [`BlockWriter::write`],
/// then symbols resolved from sled and `meta.json` by [`BlockWriter::finish`].
pub struct BlockWriter {
    dir: PathBuf,
    ulid: String,
    io: Io,
    profile_type: String,
    window: Window,
    samples: PartWriter,
    series: HashSet<u64>,
    stacks: HashSet<u64>,
}

impl BlockWriter {
    /// Creates `<blocks>/<ULID>/` and its samples file.
    pub fn create(
        blocks: &Path,
        io: &Io,
        profile_type: &str,
        window: Window,
    ) -> Result<BlockWriter, StoreError> {
        let ulid = new_ulid();
        let dir = blocks.join(&ulid);
        fs::create_dir(&dir)?;
        let samples = match PartWriter::create(&dir.join(SAMPLES_FILE), io, profile_type, window) {
            Ok(w) => w,
            Err(err) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(err);
            }
        };
        Ok(BlockWriter {
            dir,
            ulid,
            io: io.clone(),
            profile_type: profile_type.to_owned(),
            window,
            samples,
            series: HashSet::new(),
            stacks: HashSet::new(),
        })
    }

    /// The directory being written (deleted by the caller if the block fails).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends rows that sort after every row written so far.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        let ids = |c: usize| batch.column(c).as_primitive::<Int64Type>().values().clone();
        self.series.extend(ids(0).iter().map(|&v| v as u64));
        self.stacks.extend(ids(1).iter().map(|&v| v as u64));
        self.samples.write(batch)
    }

    /// Writes the symbol tables (resolved from `meta`) and then `meta.json`.
    pub fn finish(self, meta: &Metadata, lineage: Lineage) -> Result<Block, StoreError> {
        let written = self
            .samples
            .finish()
            .and_then(|stats| {
                write_symbols(&self.dir, &self.io, meta, self.series, self.stacks)?;
                Ok(stats)
            })
            .and_then(|stats| {
                write_meta(
                    &self.dir,
                    &self.io,
                    self.ulid,
                    &self.profile_type,
                    self.window,
                    stats,
                    lineage,
                )
            });
        written.inspect_err(|_| {
            let _ = fs::remove_dir_all(&self.dir);
        })
    }
}

impl super::part::RowSink for BlockWriter {
    fn write_rows(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        self.write(batch)
    }
}

fn write_meta(
    dir: &Path,
    io: &Io,
    ulid: String,
    profile_type: &str,
    window: Window,
    stats: PartStats,
    lineage: Lineage,
) -> Result<Block, StoreError> {
    let files = std::iter::once(SAMPLES_FILE)
        .chain(SYMBOL_FILES)
        .map(|name| {
            let path = dir.join(name);
            Ok(BlockFile {
                name: name.to_owned(),
                size: fs::metadata(&path)?.len(),
                crc32: crc32_of(&path)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let meta = BlockMeta {
        ulid,
        version: BLOCK_VERSION,
        profile_type: profile_type.to_owned(),
        window_start: window.start,
        window_len: window.len,
        min_time: stats.min_ts,
        max_time: stats.max_ts,
        rows: stats.rows,
        level: lineage.level,
        sources: lineage.sources,
        wal_upto: lineage.wal_upto,
        converted_from: lineage.converted_from,
        files,
    };
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| StoreError::Corrupt(format!("encoding meta.json: {e}")))?;
    let tmp = dir.join(META_TMP);
    let mut file = io.create(&tmp)?;
    io.write_all(&mut file, &json)?;
    io.sync_all(&file)?;
    io.rename(&tmp, &dir.join(META_FILE))?;
    io.sync_dir(dir)?;
    if let Some(parent) = dir.parent() {
        io.sync_dir(parent)?;
    }
    Ok(Block {
        dir: dir.to_path_buf(),
        meta,
    })
}

// ----- symbol tables -----

fn id_field(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn list_of_i64(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
        false,
    )
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

/// `series.parquet`: `series_id`, `labels` map<utf8, utf8> (sorted by name).
fn series_schema() -> SchemaRef {
    let labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone();
    Arc::new(Schema::new(vec![
        id_field("series_id"),
        Field::new("labels", labels, false),
    ]))
}

fn stacks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        id_field("stack_id"),
        list_of_i64("location_ids"),
    ]))
}

fn locations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        id_field("location_id"),
        id_field("mapping_id"),
        id_field("address"),
        list_of_i64("function_ids"),
        list_of_i64("lines"),
    ]))
}

fn functions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        id_field("function_id"),
        utf8("name"),
        utf8("system_name"),
        utf8("filename"),
        id_field("start_line"),
    ]))
}

fn mappings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        id_field("mapping_id"),
        utf8("file"),
        utf8("build_id"),
    ]))
}

/// Ids sorted as the tables store them (bit-cast to i64).
fn sorted(ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable_by_key(|&id| id as i64);
    ids.dedup();
    ids
}

/// A symbol rows use that sled does not have (a damaged metadata store): logged and left
/// out of the block, which is still written (its rows are never held back for it).
fn missing<T>(what: &str, id: u64) -> Option<T> {
    tracing::error!(
        id = format_args!("{id:016x}"),
        "a {what} used by rows is not in the metadata store; the block is written without it"
    );
    None
}

/// A symbol table being written.
struct TableWriter {
    writer: ArrowWriter<super::io::IoWriter>,
    schema: SchemaRef,
    io: Io,
    failure: WriteFailure,
}

impl TableWriter {
    fn create(path: &Path, io: &Io, schema: SchemaRef) -> Result<TableWriter, StoreError> {
        let file = io.writer(io.create(path)?);
        let failure = file.failure();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid zstd level"),
            ))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| super::part::io_cause(&failure, e))?;
        Ok(TableWriter {
            writer,
            schema,
            io: io.clone(),
            failure,
        })
    }

    fn write(&mut self, columns: Vec<ArrayRef>) -> Result<(), StoreError> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer
            .write(&batch)
            .map_err(|e| super::part::io_cause(&self.failure, e))
    }

    fn finish(self) -> Result<(), StoreError> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| super::part::io_cause(&self.failure, e))?
            .into_file();
        self.io.sync_all(&file)?;
        Ok(())
    }
}

fn ids_array(ids: &[u64]) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(ids.iter().map(|&v| v as i64)))
}

/// Writes the five symbol tables of the rows' `series` and `stacks`, resolving them (and
/// the locations, functions and mappings they reach) from `meta`, [`SYMBOL_BATCH`] ids at
/// a time.
fn write_symbols(
    dir: &Path,
    io: &Io,
    meta: &Metadata,
    series: HashSet<u64>,
    stacks: HashSet<u64>,
) -> Result<(), StoreError> {
    write_series(dir, io, meta, &sorted(series))?;
    let locations = write_stacks(dir, io, meta, &sorted(stacks))?;
    let (functions, mappings) = write_locations(dir, io, meta, &sorted(locations))?;
    write_functions(dir, io, meta, &sorted(functions))?;
    write_mappings(dir, io, meta, &sorted(mappings))
}

fn write_series(dir: &Path, io: &Io, meta: &Metadata, ids: &[u64]) -> Result<(), StoreError> {
    let mut out = TableWriter::create(&dir.join(SYMBOL_FILES[0]), io, series_schema())?;
    for chunk in ids.chunks(SYMBOL_BATCH) {
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut present = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(set) = meta.series_labels(id).or_else(|| missing("series", id)) else {
                continue;
            };
            present.push(id);
            for (name, value) in set.iter() {
                labels.keys().append_value(name);
                labels.values().append_value(value);
            }
            labels.append(true)?;
        }
        out.write(vec![ids_array(&present), Arc::new(labels.finish())])?;
    }
    out.finish()
}

fn write_stacks(
    dir: &Path,
    io: &Io,
    meta: &Metadata,
    ids: &[u64],
) -> Result<HashSet<u64>, StoreError> {
    let mut out = TableWriter::create(&dir.join(SYMBOL_FILES[1]), io, stacks_schema())?;
    let mut locations = HashSet::new();
    for chunk in ids.chunks(SYMBOL_BATCH) {
        let mut list = ListBuilder::new(Int64Builder::new());
        let mut present = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(stack) = meta.stack(id)?.or_else(|| missing("stack", id)) else {
                continue;
            };
            present.push(id);
            list.values().extend(stack.iter().map(|&l| Some(l as i64)));
            list.append(true);
            locations.extend(stack);
        }
        out.write(vec![ids_array(&present), Arc::new(list.finish())])?;
    }
    out.finish()?;
    Ok(locations)
}

fn write_locations(
    dir: &Path,
    io: &Io,
    meta: &Metadata,
    ids: &[u64],
) -> Result<(HashSet<u64>, HashSet<u64>), StoreError> {
    let mut out = TableWriter::create(&dir.join(SYMBOL_FILES[2]), io, locations_schema())?;
    let (mut functions, mut mappings) = (HashSet::new(), HashSet::new());
    for chunk in ids.chunks(SYMBOL_BATCH) {
        let (mut mapping, mut address) = (Int64Builder::new(), Int64Builder::new());
        let mut fns = ListBuilder::new(Int64Builder::new());
        let mut lines = ListBuilder::new(Int64Builder::new());
        let mut present = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(loc) = meta.location(id)?.or_else(|| missing("location", id)) else {
                continue;
            };
            present.push(id);
            mapping.append_value(loc.mapping as i64);
            address.append_value(loc.address as i64);
            for &(function, line) in &loc.lines {
                fns.values().append_value(function as i64);
                lines.values().append_value(line);
                functions.insert(function);
            }
            fns.append(true);
            lines.append(true);
            if loc.mapping != 0 {
                mappings.insert(loc.mapping);
            }
        }
        out.write(vec![
            ids_array(&present),
            Arc::new(mapping.finish()),
            Arc::new(address.finish()),
            Arc::new(fns.finish()),
            Arc::new(lines.finish()),
        ])?;
    }
    out.finish()?;
    Ok((functions, mappings))
}

fn write_functions(dir: &Path, io: &Io, meta: &Metadata, ids: &[u64]) -> Result<(), StoreError> {
    let mut out = TableWriter::create(&dir.join(SYMBOL_FILES[3]), io, functions_schema())?;
    for chunk in ids.chunks(SYMBOL_BATCH) {
        let mut cols: [StringBuilder; 3] = Default::default();
        let mut start = Int64Builder::new();
        let mut present = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(f) = meta.function(id)?.or_else(|| missing("function", id)) else {
                continue;
            };
            present.push(id);
            cols[0].append_value(&f.name);
            cols[1].append_value(&f.system_name);
            cols[2].append_value(&f.filename);
            start.append_value(f.start_line);
        }
        let [mut name, mut system, mut file] = cols;
        out.write(vec![
            ids_array(&present),
            Arc::new(name.finish()),
            Arc::new(system.finish()),
            Arc::new(file.finish()),
            Arc::new(start.finish()),
        ])?;
    }
    out.finish()
}

fn write_mappings(dir: &Path, io: &Io, meta: &Metadata, ids: &[u64]) -> Result<(), StoreError> {
    let mut out = TableWriter::create(&dir.join(SYMBOL_FILES[4]), io, mappings_schema())?;
    for chunk in ids.chunks(SYMBOL_BATCH) {
        let (mut file, mut build) = (StringBuilder::new(), StringBuilder::new());
        let mut present = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(m) = meta.mapping(id)?.or_else(|| missing("mapping", id)) else {
                continue;
            };
            present.push(id);
            file.append_value(&m.file);
            build.append_value(&m.build_id);
        }
        out.write(vec![
            ids_array(&present),
            Arc::new(file.finish()),
            Arc::new(build.finish()),
        ])?;
    }
    out.finish()
}

// ----- reading symbol tables -----

/// Reads a symbol table in batches, `columns` projected (all when `None`).
fn read_table(
    path: &Path,
    columns: Option<&[usize]>,
) -> Result<impl Iterator<Item = Result<RecordBatch, StoreError>>, StoreError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.with_batch_size(SYMBOL_BATCH);
    let builder = match columns {
        Some(cols) => {
            let mask = ProjectionMask::roots(builder.parquet_schema(), cols.iter().copied());
            builder.with_projection(mask)
        }
        None => builder,
    };
    Ok(builder.build()?.map(|b| b.map_err(StoreError::from)))
}

fn i64s(batch: &RecordBatch, c: usize) -> Result<&Int64Array, StoreError> {
    batch
        .column(c)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| StoreError::Corrupt("a symbol table column is not int64".into()))
}

fn strs(batch: &RecordBatch, c: usize) -> Result<&StringArray, StoreError> {
    batch
        .column(c)
        .as_string_opt::<i32>()
        .ok_or_else(|| StoreError::Corrupt("a symbol table column is not utf8".into()))
}

fn list_i64s(batch: &RecordBatch, c: usize, row: usize) -> Result<Vec<i64>, StoreError> {
    let list = batch
        .column(c)
        .as_list_opt::<i32>()
        .ok_or_else(|| StoreError::Corrupt("a symbol table column is not a list".into()))?;
    let values = list.value(row);
    let values = values
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| StoreError::Corrupt("a list of a symbol table is not int64".into()))?;
    Ok(values.values().to_vec())
}

/// The ids of one symbol table (its first column), for metadata GC.
pub fn table_ids(dir: &Path, table: usize, out: &mut HashSet<u64>) -> Result<(), StoreError> {
    for batch in read_table(&dir.join(SYMBOL_FILES[table]), Some(&[0]))? {
        out.extend(i64s(&batch?, 0)?.values().iter().map(|&v| v as u64));
    }
    Ok(())
}

/// Adds the ids of every symbol table of the block folder `dir` to `live` (metadata GC).
pub fn add_live_ids(dir: &Path, live: &mut super::meta::LiveIds) -> Result<(), StoreError> {
    table_ids(dir, 0, &mut live.series)?;
    table_ids(dir, 1, &mut live.stacks)?;
    table_ids(dir, 2, &mut live.locations)?;
    table_ids(dir, 3, &mut live.functions)?;
    table_ids(dir, 4, &mut live.mappings)
}

/// Writes a block's symbols into `meta` (series with their postings and profile type),
/// [`SYMBOL_BATCH`] rows at a time. Ids are recomputed from content and must match.
pub fn import_symbols(block: &Block, meta: &Metadata) -> Result<usize, StoreError> {
    let mut imported = 0;
    let apply = |batch: MetaBatch, imported: &mut usize| {
        *imported += batch.entries.len();
        meta.apply(&batch.entries)
    };
    for batch in read_table(&block.dir.join(SYMBOL_FILES[4]), None)? {
        let (batch, mut out) = (batch?, MetaBatch::default());
        let (file, build) = (strs(&batch, 1)?, strs(&batch, 2)?);
        for row in 0..batch.num_rows() {
            let m = MappingMeta {
                file: file.value(row).to_owned(),
                build_id: build.value(row).to_owned(),
            };
            check_id(out.mapping(meta, &m), i64s(&batch, 0)?.value(row))?;
        }
        apply(out, &mut imported)?;
    }
    for batch in read_table(&block.dir.join(SYMBOL_FILES[3]), None)? {
        let (batch, mut out) = (batch?, MetaBatch::default());
        for row in 0..batch.num_rows() {
            let f = FunctionMeta {
                name: strs(&batch, 1)?.value(row).to_owned(),
                system_name: strs(&batch, 2)?.value(row).to_owned(),
                filename: strs(&batch, 3)?.value(row).to_owned(),
                start_line: i64s(&batch, 4)?.value(row),
            };
            check_id(out.function(meta, &f), i64s(&batch, 0)?.value(row))?;
        }
        apply(out, &mut imported)?;
    }
    for batch in read_table(&block.dir.join(SYMBOL_FILES[2]), None)? {
        let (batch, mut out) = (batch?, MetaBatch::default());
        for row in 0..batch.num_rows() {
            let fns = list_i64s(&batch, 3, row)?;
            let lines = list_i64s(&batch, 4, row)?;
            let l = LocationMeta {
                mapping: i64s(&batch, 1)?.value(row) as u64,
                address: i64s(&batch, 2)?.value(row) as u64,
                lines: fns.iter().map(|&f| f as u64).zip(lines).collect(),
            };
            check_id(out.location(meta, &l), i64s(&batch, 0)?.value(row))?;
        }
        apply(out, &mut imported)?;
    }
    for batch in read_table(&block.dir.join(SYMBOL_FILES[1]), None)? {
        let (batch, mut out) = (batch?, MetaBatch::default());
        for row in 0..batch.num_rows() {
            let locs: Vec<u64> = list_i64s(&batch, 1, row)?
                .into_iter()
                .map(|v| v as u64)
                .collect();
            let id = i64s(&batch, 0)?.value(row) as u64;
            check_id(super::meta::stack_id(&locs), id as i64)?;
            out.stack(meta, id, &locs);
        }
        apply(out, &mut imported)?;
    }
    for batch in read_table(&block.dir.join(SYMBOL_FILES[0]), None)? {
        let (batch, mut out) = (batch?, MetaBatch::default());
        let maps = batch
            .column(1)
            .as_map_opt()
            .ok_or_else(|| StoreError::Corrupt("series labels are not a map".into()))?;
        for row in 0..batch.num_rows() {
            let entries = RecordBatch::from(maps.value(row));
            let (names, values) = (strs(&entries, 0)?, strs(&entries, 1)?);
            let mut labels = Labels::default();
            for i in 0..entries.num_rows() {
                labels.insert(names.value(i).to_owned(), values.value(i).to_owned());
            }
            let id = out.series(meta, &labels);
            check_id(id, i64s(&batch, 0)?.value(row))?;
            out.type_series(meta, &block.meta.profile_type, id);
        }
        apply(out, &mut imported)?;
    }
    Ok(imported)
}

fn check_id(computed: u64, stored: i64) -> Result<(), StoreError> {
    if computed as i64 == stored {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "a symbol's id {stored:016x} does not match its content ({computed:016x})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::{Columns, IntoBatch as _};

    #[test]
    fn ulids_are_unique_and_sort_by_time() {
        let a = new_ulid();
        let b = new_ulid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
        assert!(a[..10] <= b[..10], "the time prefix does not go back");
    }

    fn sample_meta(meta: &Metadata) -> (u64, u64) {
        let mut batch = MetaBatch::default();
        let mapping = batch.mapping(
            meta,
            &MappingMeta {
                file: "/bin/app".into(),
                build_id: "b1".into(),
            },
        );
        let f = batch.function(
            meta,
            &FunctionMeta {
                name: "main.work".into(),
                system_name: "main.work".into(),
                filename: "main.go".into(),
                start_line: 3,
            },
        );
        let loc = batch.location(
            meta,
            &LocationMeta {
                mapping,
                address: 0,
                lines: vec![(f, 7)],
            },
        );
        let stack = super::super::meta::stack_id(&[loc]);
        batch.stack(meta, stack, &[loc]);
        let mut labels = Labels::default();
        labels.insert("job".to_owned(), "api".to_owned());
        let series = batch.series(meta, &labels);
        batch.type_series(meta, "t", series);
        meta.apply(&batch.entries).unwrap();
        (series, stack)
    }

    #[test]
    fn a_block_carries_its_symbols_and_they_import_into_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta")).unwrap();
        let (series, stack) = sample_meta(&meta);
        let blocks = dir.path().join("blocks");
        fs::create_dir(&blocks).unwrap();
        let window = Window::of(0, 1000);
        let mut w = BlockWriter::create(&blocks, &Io::default(), "t", window).unwrap();
        let mut c = Columns::default();
        c.push(series, stack, 5, 10, 0, 1);
        w.write(&c.into_batch()).unwrap();
        let lineage = Lineage {
            wal_upto: 3,
            ..Lineage::default()
        };
        let block = w.finish(&meta, lineage).unwrap();
        assert_eq!(Block::open(&block.dir).unwrap(), Some(block.clone()));
        block.verify(true).unwrap();
        assert_eq!(
            block.files().last().unwrap().file_name().unwrap(),
            META_FILE
        );
        assert_eq!((block.meta.rows, block.meta.min_time), (1, 5));

        let fresh = Metadata::open(&dir.path().join("fresh")).unwrap();
        assert!(import_symbols(&block, &fresh).unwrap() > 0);
        assert_eq!(fresh.stack(stack).unwrap(), meta.stack(stack).unwrap());
        assert_eq!(fresh.series_labels(series), meta.series_labels(series));
        assert_eq!(fresh.profile_types(), vec!["t".to_owned()]);
        let loc = meta.stack(stack).unwrap().unwrap()[0];
        let l = fresh.location(loc).unwrap().unwrap();
        assert_eq!(Some(l.clone()), meta.location(loc).unwrap());
        assert_eq!(
            fresh.function(l.lines[0].0).unwrap(),
            meta.function(l.lines[0].0).unwrap()
        );
        assert!(fresh.mapping(l.mapping).unwrap().is_some());

        let mut ids = HashSet::new();
        table_ids(&block.dir, 1, &mut ids).unwrap();
        assert_eq!(ids, HashSet::from([stack]));
    }

    #[test]
    fn a_tampered_file_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta")).unwrap();
        let (series, stack) = sample_meta(&meta);
        let mut w =
            BlockWriter::create(dir.path(), &Io::default(), "t", Window::of(0, 10)).unwrap();
        let mut c = Columns::default();
        c.push(series, stack, 1, 1, 0, 1);
        w.write(&c.into_batch()).unwrap();
        let block = w.finish(&meta, Lineage::default()).unwrap();
        let path = block.dir.join(SYMBOL_FILES[3]);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        block.verify(false).unwrap();
        assert!(block.verify(true).is_err());
    }

    #[test]
    fn a_symbol_missing_from_sled_is_left_out_and_the_rows_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta")).unwrap();
        let blocks = dir.path().join("blocks");
        fs::create_dir(&blocks).unwrap();
        let mut w = BlockWriter::create(&blocks, &Io::default(), "t", Window::of(0, 10)).unwrap();
        let mut c = Columns::default();
        c.push(1, 2, 1, 1, 0, 1);
        w.write(&c.into_batch()).unwrap();
        let block = w.finish(&meta, Lineage::default()).unwrap();
        assert_eq!(block.meta.rows, 1);
        let mut stacks = HashSet::new();
        table_ids(&block.dir, 1, &mut stacks).unwrap();
        assert!(stacks.is_empty(), "the unknown stack is left out");
    }
}
