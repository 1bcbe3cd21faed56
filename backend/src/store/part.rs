//! Immutable Parquet parts. A part holds the rows of **one profile type** whose timestamps
//! fall in **one aligned time window** ([`Window`]); the parts of one window form that
//! window's block. Rows are sorted by (series, timestamp, stack) — declared as the file's
//! `sorting_columns` — zstd-compressed, dictionary-encoded, with page statistics and the
//! page index, so a query opens only the files of its type and window and prunes inside
//! them by series and time without comparing type strings.
//!
//! Parts are written under a temporary name, synced, renamed into place and the directory
//! synced; the catalog entry ([`PartMeta`]) is written after that, so a crash leaves at worst
//! an uncatalogued file that the next open deletes. Compaction merges parts with a k-way
//! merge over their sorted rows in bounded batches ([`merge_parts`]).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fs::File,
    path::{Path, PathBuf},
};

use arrow::{
    array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray},
    compute::{SortColumn, concat_batches, filter_record_batch, interleave, lexsort_to_indices},
    datatypes::Int64Type,
};
use parquet::{
    arrow::{ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
    basic::{Compression, ZstdLevel},
    file::{
        metadata::{KeyValue, SortingColumn},
        properties::{EnabledStatistics, WriterProperties},
    },
};

use super::{
    StoreError,
    codec::Reader,
    io::{Io, IoWriter, WriteFailure},
    table::{HEAD_SCHEMA, TypedBatches},
};

/// Column positions in [`HEAD_SCHEMA`].
const SERIES: usize = 0;
const STACK: usize = 1;
const TIMESTAMP: usize = 2;

/// An aligned span of time `[start, start + len)` in unix ms; `start` is a multiple of `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub len: i64,
}

impl Window {
    /// The window of length `len` holding `ts`.
    pub fn of(ts: i64, len: i64) -> Window {
        Window {
            start: ts.div_euclid(len) * len,
            len,
        }
    }

    /// First millisecond after the window.
    pub fn end(&self) -> i64 {
        self.start.saturating_add(self.len)
    }

    /// Whether `other` lies inside this window.
    pub fn contains(&self, other: &Window) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }
}

/// What the catalog knows about one Parquet part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartMeta {
    /// File name inside the parts folder.
    pub file: String,
    /// The one profile type of its rows.
    pub profile_type: String,
    /// The window all its rows fall in; its length is the part's compaction level.
    pub window: Window,
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    pub bytes: u64,
    /// The last WAL segment whose rows this part (or an earlier one) holds.
    pub wal_upto: u64,
}

/// First byte of a catalog value of the current format (a legacy entry starts with the
/// length of its non-empty file name, never 0).
const FORMAT_MARKER: u8 = 0;
const FORMAT_VERSION: u8 = 2;

impl PartMeta {
    /// The sled catalog value of the second format (tests write such data dirs).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = super::codec::Writer::default();
        w.u8(FORMAT_MARKER);
        w.u8(FORMAT_VERSION);
        w.str(&self.file);
        w.str(&self.profile_type);
        w.svarint(self.window.start);
        w.svarint(self.window.len);
        w.svarint(self.min_ts);
        w.svarint(self.max_ts);
        w.varint(self.rows);
        w.varint(self.bytes);
        w.varint(self.wal_upto);
        w.buf
    }

    /// Decodes a catalog value of the current format (`None` for anything else).
    pub(crate) fn decode(bytes: &[u8]) -> Option<PartMeta> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_MARKER || r.u8()? != FORMAT_VERSION {
            return None;
        }
        let file = r.str()?.to_owned();
        let profile_type = r.str()?.to_owned();
        let window = Window {
            start: r.svarint()?,
            len: r.svarint()?,
        };
        Some(PartMeta {
            file,
            profile_type,
            window,
            min_ts: r.svarint()?,
            max_ts: r.svarint()?,
            rows: r.varint()?,
            bytes: r.varint()?,
            wal_upto: r.varint()?,
        })
    }

    /// Whether this part may hold rows of `profile_type` in `[start, end]`.
    pub fn overlaps(&self, profile_type: &str, start: i64, end: i64) -> bool {
        self.max_ts >= start && self.min_ts <= end && self.profile_type == profile_type
    }
}

/// A catalog entry of the first format (one file for every type): (file, wal_upto).
pub(crate) fn decode_legacy(bytes: &[u8]) -> Option<(String, u64)> {
    let mut r = Reader::new(bytes);
    let file = r.str()?.to_owned();
    let _bounds = (r.svarint()?, r.svarint()?, r.varint()?, r.varint()?);
    for _ in 0..r.varint()? {
        r.str()?;
    }
    Some((file, r.varint()?))
}

/// Rows per Parquet row group: small enough for statistics to prune by series and time.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per batch read from an input of a merge, and per batch it writes.
const MERGE_BATCH_ROWS: usize = 8 * 1024;

fn writer_properties(profile_type: &str, window: Window) -> WriterProperties {
    let sorted = [SERIES, TIMESTAMP, STACK].map(|i| SortingColumn {
        column_idx: i as i32,
        descending: false,
        nulls_first: false,
    });
    let kv = |k: &str, v: String| KeyValue::new(k.to_owned(), v);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorted.to_vec()))
        .set_key_value_metadata(Some(vec![
            kv("cinder.profile_type", profile_type.to_owned()),
            kv("cinder.window_start", window.start.to_string()),
            kv("cinder.window_len", window.len.to_string()),
        ]))
        .build()
}

/// Rows and time bounds of a written part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartStats {
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// Writes sorted batches of one type and window into a Parquet file.
pub struct PartWriter {
    writer: ArrowWriter<IoWriter>,
    stats: PartStats,
    io: Io,
    failure: WriteFailure,
}

impl PartWriter {
    /// Creates the file at `path` (a temporary name; see [`PartWriter::finish`]).
    pub fn create(
        path: &Path,
        io: &Io,
        profile_type: &str,
        window: Window,
    ) -> Result<PartWriter, StoreError> {
        let file = io.writer(io.create(path)?);
        let failure = file.failure();
        let props = writer_properties(profile_type, window);
        let writer = ArrowWriter::try_new(file, HEAD_SCHEMA.clone(), Some(props))
            .map_err(|e| io_cause(&failure, e))?;
        Ok(PartWriter {
            writer,
            stats: PartStats {
                rows: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
            },
            io: io.clone(),
            failure,
        })
    }

    /// Appends rows that sort after every row written so far.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ts = batch.column(TIMESTAMP).as_primitive::<Int64Type>();
        self.stats.min_ts = self
            .stats
            .min_ts
            .min(arrow::compute::min(ts).unwrap_or(i64::MAX));
        self.stats.max_ts = self
            .stats
            .max_ts
            .max(arrow::compute::max(ts).unwrap_or(i64::MIN));
        self.stats.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .map_err(|e| io_cause(&self.failure, e))
    }

    /// Writes the footer and syncs the file.
    pub fn finish(self) -> Result<PartStats, StoreError> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| io_cause(&self.failure, e))?
            .into_file();
        self.io.sync_all(&file)?;
        Ok(self.stats)
    }
}

/// Where sorted rows go: a part's file, or a block's samples and symbol ids.
pub trait RowSink {
    /// Appends rows that sort after every row written so far.
    fn write_rows(&mut self, batch: &RecordBatch) -> Result<(), StoreError>;
}

impl RowSink for PartWriter {
    fn write_rows(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        self.write(batch)
    }
}

/// The I/O error behind a Parquet error when the file's writes failed (so a full disk is
/// reported as one), else the Parquet error.
pub(crate) fn io_cause(failure: &WriteFailure, err: parquet::errors::ParquetError) -> StoreError {
    match failure.take() {
        Some(io) => StoreError::Io(io),
        None => StoreError::Parquet(err),
    }
}

/// Sorts rows by (series, timestamp, stack).
pub fn sort_rows(batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
    let keys = [SERIES, TIMESTAMP, STACK].map(|i| SortColumn {
        values: batch.column(i).clone(),
        options: None,
    });
    let indices = lexsort_to_indices(&keys, None)?;
    Ok(arrow::compute::take_record_batch(batch, &indices)?)
}

/// Splits head batches of one type into sorted batches per window of length `len`.
pub fn split_by_window(
    batches: &[RecordBatch],
    len: i64,
) -> Result<Vec<(Window, RecordBatch)>, StoreError> {
    let all = concat_batches(&HEAD_SCHEMA, batches)?;
    if all.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let sorted = sort_rows(&all)?;
    let ts = sorted.column(TIMESTAMP).as_primitive::<Int64Type>();
    let mut windows: Vec<Window> = ts.values().iter().map(|&t| Window::of(t, len)).collect();
    windows.sort_unstable();
    windows.dedup();
    if let [only] = windows[..] {
        return Ok(vec![(only, sorted)]);
    }
    windows
        .into_iter()
        .map(|w| {
            let mask: BooleanArray = ts
                .values()
                .iter()
                .map(|&t| Some(t >= w.start && t < w.end()))
                .collect();
            Ok((w, filter_record_batch(&sorted, &mask)?))
        })
        .collect()
}

/// Reads a whole part back (tests and tools; queries go through DataFusion).
pub fn read_part(path: &Path) -> Result<Vec<RecordBatch>, StoreError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Streams a sorted part of one type into `out`, [`MERGE_BATCH_ROWS`] rows at a time.
pub fn copy_part(path: &Path, out: &mut impl RowSink) -> Result<(), StoreError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(MERGE_BATCH_ROWS)
        .build()?;
    for batch in reader {
        out.write_rows(&batch?)?;
    }
    Ok(())
}

/// Reads a part of the first format (all types in one file, with a type column) as
/// per-type batches of [`HEAD_SCHEMA`].
pub fn read_legacy_part(path: &Path) -> Result<TypedBatches, StoreError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.build()?;
    let mut out = TypedBatches::new();
    for batch in reader {
        let batch = batch?;
        let types = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| StoreError::Corrupt("profile_type column".into()))?;
        let mut start = 0;
        while start < batch.num_rows() {
            let t = types.value(start);
            let mut end = start + 1;
            while end < batch.num_rows() && types.value(end) == t {
                end += 1;
            }
            let slice = batch.slice(start, end - start);
            let head = RecordBatch::try_new(HEAD_SCHEMA.clone(), slice.columns()[1..].to_vec())?;
            out.entry(t.to_owned()).or_default().push(head);
            start = end;
        }
    }
    Ok(out)
}

/// One input of a merge: its reader and the batch being consumed.
struct Cursor {
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    batch: RecordBatch,
    row: usize,
    /// Index of `batch` among the sources of the output batch being built.
    source: usize,
}

/// (series, timestamp, stack) of a row.
type SortKey = (i64, i64, i64);

impl Cursor {
    fn key(&self) -> SortKey {
        let col = |i: usize| {
            self.batch
                .column(i)
                .as_primitive::<Int64Type>()
                .value(self.row)
        };
        (col(SERIES), col(TIMESTAMP), col(STACK))
    }

    /// Moves to the next row, reading the next batch when needed; false at the end.
    fn advance(&mut self) -> Result<bool, StoreError> {
        self.row += 1;
        while self.row >= self.batch.num_rows() {
            match self.reader.next().transpose()? {
                Some(batch) => {
                    self.batch = batch;
                    self.row = 0;
                    self.source = usize::MAX;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

fn open_cursor(path: &PathBuf) -> Result<Option<Cursor>, StoreError> {
    let mut reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(MERGE_BATCH_ROWS)
        .build()?;
    while let Some(batch) = reader.next().transpose()? {
        if batch.num_rows() > 0 {
            return Ok(Some(Cursor {
                reader,
                batch,
                row: 0,
                source: usize::MAX,
            }));
        }
    }
    Ok(None)
}

/// Merges sorted parts into `out`, keeping the (series, timestamp, stack) order, reading
/// and writing [`MERGE_BATCH_ROWS`] rows at a time: memory stays bounded by the number of
/// inputs times a batch, plus the writer's row group, whatever the size of the inputs.
pub fn merge_parts(inputs: &[PathBuf], out: &mut impl RowSink) -> Result<(), StoreError> {
    let mut cursors = Vec::with_capacity(inputs.len());
    for path in inputs {
        cursors.extend(open_cursor(path)?);
    }
    let mut heap: BinaryHeap<Reverse<(SortKey, usize)>> = cursors
        .iter()
        .enumerate()
        .map(|(i, c)| Reverse((c.key(), i)))
        .collect();
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(MERGE_BATCH_ROWS);
    while let Some(Reverse((_, i))) = heap.pop() {
        let cursor = &mut cursors[i];
        if cursor.source == usize::MAX {
            cursor.source = sources.len();
            sources.push(cursor.batch.clone());
        }
        picks.push((cursor.source, cursor.row));
        if cursor.advance()? {
            heap.push(Reverse((cursor.key(), i)));
        }
        if picks.len() == MERGE_BATCH_ROWS {
            emit(out, &mut sources, &mut picks, &mut cursors)?;
        }
    }
    emit(out, &mut sources, &mut picks, &mut cursors)
}

/// Writes the picked rows as one batch and forgets the source batches.
fn emit(
    out: &mut impl RowSink,
    sources: &mut Vec<RecordBatch>,
    picks: &mut Vec<(usize, usize)>,
    cursors: &mut [Cursor],
) -> Result<(), StoreError> {
    if picks.is_empty() {
        return Ok(());
    }
    let columns = (0..HEAD_SCHEMA.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
            interleave(&arrays, picks)
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    out.write_rows(&RecordBatch::try_new(HEAD_SCHEMA.clone(), columns)?)?;
    sources.clear();
    picks.clear();
    for cursor in cursors {
        cursor.source = usize::MAX;
    }
    Ok(())
}

/// The timestamps of a batch (tests).
#[cfg(test)]
fn timestamps(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(TIMESTAMP)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::{Columns, IntoBatch as _};

    fn rows(rows: &[(u64, u64, i64)]) -> RecordBatch {
        let mut c = Columns::default();
        for &(series, stack, ts) in rows {
            c.push(series, stack, ts, 1, 0, 1);
        }
        c.into_batch()
    }

    fn write(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
        let path = dir.join(name);
        let mut w = PartWriter::create(&path, &Io::default(), "t", Window::of(0, 1000)).unwrap();
        w.write(&sort_rows(batch).unwrap()).unwrap();
        w.finish().unwrap();
        path
    }

    #[test]
    fn windows_are_aligned_also_before_the_epoch() {
        assert_eq!(
            Window::of(1999, 1000),
            Window {
                start: 1000,
                len: 1000
            }
        );
        assert_eq!(
            Window::of(-1, 1000),
            Window {
                start: -1000,
                len: 1000
            }
        );
        assert!(Window::of(0, 4000).contains(&Window::of(3500, 1000)));
        assert!(!Window::of(0, 4000).contains(&Window::of(4000, 1000)));
    }

    #[test]
    fn rows_split_into_sorted_windows() {
        let batch = rows(&[(2, 1, 1500), (1, 1, 2500), (1, 2, 1200), (1, 1, 1200)]);
        let split = split_by_window(&[batch], 1000).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(
            split[0].0,
            Window {
                start: 1000,
                len: 1000
            }
        );
        let series = split[0].1.column(SERIES).as_primitive::<Int64Type>();
        let stacks = split[0].1.column(STACK).as_primitive::<Int64Type>();
        assert_eq!(series.values().to_vec(), vec![1, 1, 2]);
        assert_eq!(stacks.values().to_vec(), vec![1, 2, 1]);
        assert_eq!(timestamps(&split[1].1), vec![2500]);
    }

    #[test]
    fn parts_declare_their_order_and_carry_their_type_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.parquet", &rows(&[(1, 1, 10), (0, 1, 20)]));
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(&path).unwrap(),
            options,
        )
        .unwrap();
        let meta = builder.metadata();
        let sorting = meta.row_group(0).sorting_columns().unwrap();
        assert_eq!(
            sorting.iter().map(|s| s.column_idx).collect::<Vec<_>>(),
            vec![0, 2, 1]
        );
        assert!(meta.column_index().is_some(), "page statistics");
        assert!(meta.offset_index().is_some(), "page index");
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(
            kv.iter()
                .any(|k| k.key == "cinder.profile_type" && k.value.as_deref() == Some("t"))
        );
    }

    #[test]
    fn a_merge_interleaves_sorted_inputs_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        // More rows than one merge batch, so cursors cross batch boundaries mid-output.
        let n = MERGE_BATCH_ROWS as i64 * 2 + 17;
        let a: Vec<(u64, u64, i64)> = (0..n).map(|i| ((i % 3) as u64, 1, i * 2)).collect();
        let b: Vec<(u64, u64, i64)> = (0..n).map(|i| ((i % 3) as u64, 2, i * 2 + 1)).collect();
        let inputs = vec![
            write(dir.path(), "a.parquet", &rows(&a)),
            write(dir.path(), "b.parquet", &rows(&b)),
            write(dir.path(), "empty.parquet", &rows(&[])),
        ];
        let out = dir.path().join("out.parquet");
        let mut writer =
            PartWriter::create(&out, &Io::default(), "t", Window::of(0, 1000)).unwrap();
        merge_parts(&inputs, &mut writer).unwrap();
        let stats = writer.finish().unwrap();
        assert_eq!(stats.rows, 2 * n as u64);
        assert_eq!((stats.min_ts, stats.max_ts), (0, 2 * n - 1));
        let merged = concat_batches(&HEAD_SCHEMA, &read_part(&out).unwrap()).unwrap();
        let mut expected = concat_batches(&HEAD_SCHEMA, &[rows(&a), rows(&b)]).unwrap();
        expected = sort_rows(&expected).unwrap();
        assert_eq!(merged, expected);
    }

    /// Peak RSS (KiB) since the last reset, and a reset for the next measurement.
    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        peak
    }

    /// Compaction memory, the first way (read every input, concatenate, sort, write) beside
    /// the streaming merge, on the same inputs. Run alone: `cargo test -p backend --lib
    /// compaction_peak_memory -- --ignored --nocapture` (`MERGE_BENCH_ROWS` rows per input).
    #[test]
    #[ignore = "a measurement, run on demand"]
    #[allow(clippy::print_stdout, reason = "the measurement's report")]
    fn compaction_peak_memory() {
        let per_input: i64 = std::env::var("MERGE_BENCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250_000);
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<PathBuf> = (0..8)
            .map(|p| {
                let input: Vec<(u64, u64, i64)> = (0..per_input)
                    .map(|i| {
                        (
                            (i * 7919 % 100) as u64,
                            (i * 104_729 % 5000) as u64,
                            p * per_input + i,
                        )
                    })
                    .collect();
                write(dir.path(), &format!("in{p}.parquet"), &rows(&input))
            })
            .collect();
        let base = peak_rss_kib();
        let _ = peak_rss_kib();
        // Streaming first: memory freed by the other way stays in the allocator's pools.
        let start = std::time::Instant::now();
        let out = dir.path().join("new.parquet");
        let mut w = PartWriter::create(&out, &Io::default(), "t", Window::of(0, 1000)).unwrap();
        merge_parts(&inputs, &mut w).unwrap();
        let stats = w.finish().unwrap();
        let (new_peak, new_time) = (peak_rss_kib(), start.elapsed());
        let start = std::time::Instant::now();
        let all: Vec<RecordBatch> = inputs.iter().flat_map(|p| read_part(p).unwrap()).collect();
        let sorted = sort_rows(&concat_batches(&HEAD_SCHEMA, &all).unwrap()).unwrap();
        let out = dir.path().join("old.parquet");
        let mut w = PartWriter::create(&out, &Io::default(), "t", Window::of(0, 1000)).unwrap();
        w.write(&sorted).unwrap();
        w.finish().unwrap();
        drop((all, sorted));
        let (old_peak, old_time) = (peak_rss_kib(), start.elapsed());
        assert_eq!(stats.rows, 8 * per_input as u64);
        println!(
            "rows {}: process before {} MiB; load-concat-sort peak {} MiB in {:.2?}; streaming merge peak {} MiB in {:.2?}",
            stats.rows,
            base / 1024,
            old_peak / 1024,
            old_time,
            new_peak / 1024,
            new_time
        );
    }

    #[test]
    fn part_meta_round_trips_and_prunes() {
        let p = PartMeta {
            file: "a.parquet".into(),
            profile_type: "a".into(),
            window: Window::of(0, 100),
            min_ts: 10,
            max_ts: 20,
            rows: 3,
            bytes: 99,
            wal_upto: 4,
        };
        assert_eq!(PartMeta::decode(&p.encode()), Some(p.clone()));
        assert!(p.overlaps("a", 0, 10));
        assert!(!p.overlaps("b", 0, 100));
        assert!(!p.overlaps("a", 21, 30));
    }
}
