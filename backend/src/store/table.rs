//! The sample table's columns: the Arrow schema of a row and the in-memory head (per
//! profile type, appended column by column and sealed into Arrow batches). The immutable
//! Parquet parts the head is flushed into are in [`super::part`].

use std::{
    collections::BTreeMap,
    sync::{Arc, LazyLock},
};

use arrow::{
    array::{ArrayRef, Int64Array, RecordBatch},
    datatypes::{DataType, Field, Schema, SchemaRef},
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

/// Schema of the parts of the first format (one file for all types, with a type column).
/// `timestamp` is unix ms, `duration` the profile's duration in ns (0 for snapshots),
/// `period` its period.
pub static LEGACY_PART_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
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

/// Schema of head batches and of Parquet parts: one row per (sample, sample type), without
/// the profile type (the head is keyed by it, and each part file holds one type).
pub static HEAD_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = LEGACY_PART_SCHEMA
        .fields()
        .iter()
        .skip(1)
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
});

pub use codec::{Columns, RowsByType};

/// [`Columns`] as Arrow.
pub(crate) trait IntoBatch {
    /// Moves the rows into an Arrow batch of [`HEAD_SCHEMA`].
    fn into_batch(self) -> RecordBatch;
}

impl IntoBatch for Columns {
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
}

/// Per-type batches of [`HEAD_SCHEMA`].
pub type TypedBatches = BTreeMap<String, Vec<RecordBatch>>;

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
