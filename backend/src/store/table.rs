//! The sample table's columns: the Arrow schema of a row, the in-memory head (per profile
//! type, appended column by column and sealed into Arrow batches), and immutable Parquet
//! parts sorted by (profile type, series, timestamp), zstd-compressed, dictionary-encoded,
//! with row-group and page statistics for pruning.

use std::{
    collections::BTreeMap,
    fs::File,
    path::Path,
    sync::{Arc, LazyLock},
};

use arrow::{
    array::{ArrayRef, Int64Array, RecordBatch, StringArray},
    compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch},
    datatypes::{DataType, Field, Schema, SchemaRef},
};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::properties::{EnabledStatistics, WriterProperties},
};

use super::{
    StoreError,
    codec::{Reader, Writer},
};

/// Column names, shared with the query engine.
pub mod col {
    pub const PROFILE_TYPE: &str = "profile_type";
    pub const SERIES: &str = "series_id";
    pub const STACK: &str = "stack_id";
    pub const TIMESTAMP: &str = "timestamp";
    pub const VALUE: &str = "value";
    pub const DURATION: &str = "duration";
    pub const PERIOD: &str = "period";
}

/// Schema of the Parquet parts: one row per (sample, sample type). `timestamp` is unix ms,
/// `duration` is the profile's duration in ns (0 for snapshots), `period` its period.
pub static PART_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(col::PROFILE_TYPE, DataType::Utf8, false),
        // Ids are u64 hashes stored bit-cast as Int64: Parquet keeps UInt64 as physical INT64
        // and pruning by row-group statistics must not see values above i64::MAX.
        Field::new(col::SERIES, DataType::Int64, false),
        Field::new(col::STACK, DataType::Int64, false),
        Field::new(col::TIMESTAMP, DataType::Int64, false),
        Field::new(col::VALUE, DataType::Int64, false),
        Field::new(col::DURATION, DataType::Int64, false),
        Field::new(col::PERIOD, DataType::Int64, false),
    ]))
});

/// Schema of head batches: the part schema without `profile_type` (the head is keyed by it).
pub static HEAD_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = PART_SCHEMA
        .fields()
        .iter()
        .skip(1)
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
});

/// Rows of one profile type, column by column.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columns {
    pub series: Vec<u64>,
    pub stack: Vec<u64>,
    pub timestamp: Vec<i64>,
    pub value: Vec<i64>,
    pub duration: Vec<i64>,
    pub period: Vec<i64>,
}

impl Columns {
    /// Appends one row.
    #[inline]
    pub fn push(
        &mut self,
        series: u64,
        stack: u64,
        timestamp: i64,
        value: i64,
        duration: i64,
        period: i64,
    ) {
        self.series.push(series);
        self.stack.push(stack);
        self.timestamp.push(timestamp);
        self.value.push(value);
        self.duration.push(duration);
        self.period.push(period);
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Appends all rows of `other`.
    pub fn append(&mut self, other: &Columns) {
        self.series.extend_from_slice(&other.series);
        self.stack.extend_from_slice(&other.stack);
        self.timestamp.extend_from_slice(&other.timestamp);
        self.value.extend_from_slice(&other.value);
        self.duration.extend_from_slice(&other.duration);
        self.period.extend_from_slice(&other.period);
    }

    /// Moves the rows into an Arrow batch of [`HEAD_SCHEMA`].
    fn into_batch(self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                self.series.iter().map(|&v| v as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                self.stack.iter().map(|&v| v as i64),
            )),
            Arc::new(Int64Array::from(self.timestamp)),
            Arc::new(Int64Array::from(self.value)),
            Arc::new(Int64Array::from(self.duration)),
            Arc::new(Int64Array::from(self.period)),
        ];
        RecordBatch::try_new(HEAD_SCHEMA.clone(), columns)
            .expect("head columns match the head schema")
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for i in 0..self.len() {
            w.u64(self.series[i]);
            w.u64(self.stack[i]);
            w.svarint(self.timestamp[i]);
            w.svarint(self.value[i]);
            w.svarint(self.duration[i]);
            w.svarint(self.period[i]);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Option<Columns> {
        let n = r.varint()? as usize;
        let mut c = Columns::default();
        for _ in 0..n {
            c.push(
                r.u64()?,
                r.u64()?,
                r.svarint()?,
                r.svarint()?,
                r.svarint()?,
                r.svarint()?,
            );
        }
        Some(c)
    }
}

/// Rows keyed by profile type id.
pub type RowsByType = BTreeMap<String, Columns>;

/// Rows of one type are sealed into an Arrow batch once this many accumulate.
const SEAL_ROWS: usize = 64 * 1024;

/// The in-memory head of one profile type.
#[derive(Debug, Default)]
struct TypeHead {
    sealed: Vec<RecordBatch>,
    building: Columns,
}

/// The in-memory head: rows acknowledged (in the WAL) but not yet in Parquet.
#[derive(Debug, Default)]
pub struct Head {
    types: BTreeMap<String, TypeHead>,
    rows: usize,
    min_ts: Option<i64>,
}

impl Head {
    /// Appends rows (already durable in the WAL).
    pub fn append(&mut self, rows: &RowsByType) {
        for (profile_type, columns) in rows {
            let head = self.types.entry(profile_type.clone()).or_default();
            head.building.append(columns);
            if head.building.len() >= SEAL_ROWS {
                head.sealed
                    .push(std::mem::take(&mut head.building).into_batch());
            }
            self.rows += columns.len();
            if let Some(&min) = columns.timestamp.iter().min() {
                self.min_ts = Some(self.min_ts.map_or(min, |m| m.min(min)));
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The batches of one profile type, sealing whatever is still being built.
    pub fn batches(&mut self, profile_type: &str) -> Vec<RecordBatch> {
        let Some(head) = self.types.get_mut(profile_type) else {
            return Vec::new();
        };
        if !head.building.is_empty() {
            head.sealed
                .push(std::mem::take(&mut head.building).into_batch());
        }
        head.sealed.clone()
    }

    /// Profile types present, with their (min, max) timestamps.
    pub fn type_ranges(&mut self) -> Vec<(String, i64, i64)> {
        let types: Vec<String> = self.types.keys().cloned().collect();
        let mut out = Vec::new();
        for t in types {
            let batches = self.batches(&t);
            let mut range: Option<(i64, i64)> = None;
            for batch in &batches {
                let ts = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("timestamp column");
                if let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) {
                    range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
            }
            if let Some((lo, hi)) = range {
                out.push((t, lo, hi));
            }
        }
        out
    }

    /// Takes everything out, leaving an empty head.
    pub fn take(&mut self) -> FrozenHead {
        let mut types = BTreeMap::new();
        let names: Vec<String> = self.types.keys().cloned().collect();
        for name in names {
            let batches = self.batches(&name);
            types.insert(name, batches);
        }
        *self = Head::default();
        FrozenHead { types }
    }
}

/// A head taken out for flushing: still visible to queries until its Parquet part is.
#[derive(Debug, Default)]
pub struct FrozenHead {
    pub types: BTreeMap<String, Vec<RecordBatch>>,
}

impl FrozenHead {
    pub fn rows(&self) -> usize {
        self.types
            .values()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }
}

/// What the catalog knows about one Parquet part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartMeta {
    /// File name inside the parts folder.
    pub file: String,
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Profile types present, sorted.
    pub types: Vec<String>,
    /// The last WAL segment whose rows this part (or an earlier one) holds.
    pub wal_upto: u64,
}

impl PartMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.file);
        w.svarint(self.min_ts);
        w.svarint(self.max_ts);
        w.varint(self.rows);
        w.varint(self.bytes);
        w.varint(self.types.len() as u64);
        for t in &self.types {
            w.str(t);
        }
        w.varint(self.wal_upto);
        w.buf
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<PartMeta> {
        let mut r = Reader::new(bytes);
        let file = r.str()?.to_owned();
        let (min_ts, max_ts, rows, bytes) = (r.svarint()?, r.svarint()?, r.varint()?, r.varint()?);
        let n = r.varint()?;
        let types = (0..n)
            .map(|_| r.str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        Some(PartMeta {
            file,
            min_ts,
            max_ts,
            rows,
            bytes,
            types,
            wal_upto: r.varint()?,
        })
    }

    /// Whether this part may hold rows of `profile_type` in `[start, end]`.
    pub fn overlaps(&self, profile_type: &str, start: i64, end: i64) -> bool {
        self.max_ts >= start
            && self.min_ts <= end
            && self
                .types
                .binary_search_by(|t| t.as_str().cmp(profile_type))
                .is_ok()
    }
}

/// Rows per Parquet row group: small enough for statistics to prune by series and time.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Per-type batches of [`HEAD_SCHEMA`] (or part batches without their type column).
pub type TypedBatches = BTreeMap<String, Vec<RecordBatch>>;

/// Writes rows into a new Parquet file at `path` (sorted, compressed) and syncs it.
/// Returns (rows, min_ts, max_ts, types).
pub fn write_part(
    path: &Path,
    data: &TypedBatches,
) -> Result<(u64, i64, i64, Vec<String>), StoreError> {
    let file = File::create(path)?;
    let mut writer = ArrowWriter::try_new(file, PART_SCHEMA.clone(), Some(writer_properties()))?;
    let (mut rows, mut min_ts, mut max_ts, mut types) = (0u64, i64::MAX, i64::MIN, Vec::new());
    for (profile_type, batches) in data {
        if batches.iter().all(|b| b.num_rows() == 0) {
            continue;
        }
        let sorted = sort_by_series_and_time(&concat_batches(&HEAD_SCHEMA, batches)?)?;
        let ts = sorted
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("timestamp column");
        min_ts = min_ts.min(arrow::compute::min(ts).unwrap_or(i64::MAX));
        max_ts = max_ts.max(arrow::compute::max(ts).unwrap_or(i64::MIN));
        rows += sorted.num_rows() as u64;
        writer.write(&with_type_column(&sorted, profile_type)?)?;
        types.push(profile_type.clone());
    }
    let file = writer.into_inner()?;
    file.sync_all()?;
    Ok((rows, min_ts, max_ts, types))
}

fn sort_by_series_and_time(batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
    let keys = [0usize, 2, 1].map(|i| SortColumn {
        values: batch.column(i).clone(),
        options: None,
    });
    let indices = lexsort_to_indices(&keys, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

fn with_type_column(batch: &RecordBatch, profile_type: &str) -> Result<RecordBatch, StoreError> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![
        profile_type;
        batch.num_rows()
    ]))];
    columns.extend(batch.columns().iter().cloned());
    Ok(RecordBatch::try_new(PART_SCHEMA.clone(), columns)?)
}

/// Reads a whole part back as per-type batches of [`HEAD_SCHEMA`] (for compaction).
pub fn read_part(path: &Path) -> Result<TypedBatches, StoreError> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
            .build()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_through_the_wal_encoding() {
        let mut c = Columns::default();
        c.push(1, 2, 1_700_000_000_000, -5, 10_000_000_000, 10_000_000);
        c.push(u64::MAX, 0, 0, i64::MAX, 0, 1);
        let mut w = Writer::default();
        c.encode(&mut w);
        assert_eq!(Columns::decode(&mut Reader::new(&w.buf)), Some(c));
    }

    #[test]
    fn parts_are_sorted_and_read_back_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut head = Head::default();
        let mut rows = RowsByType::new();
        let mut cpu = Columns::default();
        cpu.push(2, 10, 200, 1, 0, 1);
        cpu.push(1, 11, 300, 2, 0, 1);
        cpu.push(1, 12, 100, 3, 0, 1);
        rows.insert("cpu".into(), cpu);
        let mut mem = Columns::default();
        mem.push(9, 9, 50, 7, 0, 1);
        rows.insert("mem".into(), mem);
        head.append(&rows);
        assert_eq!(head.rows(), 4);
        let frozen = head.take();
        assert_eq!(head.rows(), 0);
        let path = dir.path().join("p.parquet");
        let (n, lo, hi, types) = write_part(&path, &frozen.types).unwrap();
        assert_eq!((n, lo, hi), (4, 50, 300));
        assert_eq!(types, vec!["cpu", "mem"]);
        let back = read_part(&path).unwrap();
        let cpu = concat_batches(&HEAD_SCHEMA, &back["cpu"]).unwrap();
        let series = cpu.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let ts = cpu.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(series.values().to_vec(), vec![1, 1, 2]);
        assert_eq!(ts.values().to_vec(), vec![100, 300, 200]);
        assert_eq!(back["mem"][0].num_rows(), 1);
    }

    #[test]
    fn part_meta_round_trips_and_prunes() {
        let p = PartMeta {
            file: "a.parquet".into(),
            min_ts: 10,
            max_ts: 20,
            rows: 3,
            bytes: 99,
            types: vec!["a".into(), "c".into()],
            wal_upto: 4,
        };
        assert_eq!(PartMeta::decode(&p.encode()), Some(p.clone()));
        assert!(p.overlaps("a", 0, 10));
        assert!(!p.overlaps("b", 0, 100));
        assert!(!p.overlaps("c", 21, 30));
    }
}
