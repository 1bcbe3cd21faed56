//! A write-ahead-log record: one write's metadata entries (sled key/value pairs by tree)
//! and its sample rows by profile type. Layout: version byte ([`VERSION`]), a varint
//! count of entries, each a tree id byte and two length-prefixed byte strings, then a
//! varint count of profile types, each a string and its [`Columns`].

use std::collections::BTreeMap;

use crate::bytes::{Reader, Writer};

/// The record layout written today.
pub const VERSION: u8 = 1;

/// The sled trees Cinder keeps, in the order of their numeric ids (used in WAL records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TreeId {
    Functions = 0,
    Mappings = 1,
    Locations = 2,
    Stacks = 3,
    Series = 4,
    Postings = 5,
    Types = 6,
    TypeSeries = 7,
    Catalog = 8,
    State = 9,
    Targets = 10,
}

/// Every tree, at the index of its id.
const IDS: [TreeId; 11] = [
    TreeId::Functions,
    TreeId::Mappings,
    TreeId::Locations,
    TreeId::Stacks,
    TreeId::Series,
    TreeId::Postings,
    TreeId::Types,
    TreeId::TypeSeries,
    TreeId::Catalog,
    TreeId::State,
    TreeId::Targets,
];

impl TreeId {
    /// The tree of a numeric id, if there is one.
    pub fn from_u8(v: u8) -> Option<TreeId> {
        IDS.get(usize::from(v)).copied()
    }
}

/// One key/value write into a metadata tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaEntry {
    /// Which tree.
    pub tree: TreeId,
    /// The key (ids are 8 bytes big-endian).
    pub key: Vec<u8>,
    /// The encoded value.
    pub value: Vec<u8>,
}

impl MetaEntry {
    /// Appends the entry to `w`.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.tree as u8);
        w.bytes(&self.key);
        w.bytes(&self.value);
    }

    /// Reads an entry written by [`MetaEntry::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Option<MetaEntry> {
        let tree = TreeId::from_u8(r.u8()?)?;
        Some(MetaEntry {
            tree,
            key: r.bytes()?.to_vec(),
            value: r.bytes()?.to_vec(),
        })
    }
}

/// Rows of one profile type, column by column.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columns {
    /// Series ids.
    pub series: Vec<u64>,
    /// Stack ids.
    pub stack: Vec<u64>,
    /// Unix ms.
    pub timestamp: Vec<i64>,
    /// Sample values.
    pub value: Vec<i64>,
    /// The profile's duration in ns (0 for snapshots).
    pub duration: Vec<i64>,
    /// The profile's period.
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

    /// Rows held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there is no row.
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

    /// Appends the rows to `w`: a varint count, then each row.
    pub fn encode(&self, w: &mut Writer) {
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

    /// Reads rows written by [`Columns::encode`]. A count beyond the bytes there are
    /// allocates nothing ahead: the read stops at the end of the input.
    pub fn decode(r: &mut Reader<'_>) -> Option<Columns> {
        let n = r.varint()?;
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

/// A record of `entries` and `rows`.
pub fn encode(entries: &[MetaEntry], rows: &RowsByType) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.varint(entries.len() as u64);
    for entry in entries {
        entry.encode(&mut w);
    }
    w.varint(rows.len() as u64);
    for (profile_type, columns) in rows {
        w.str(profile_type);
        columns.encode(&mut w);
    }
    w.buf
}

/// The entries and rows of a record written by [`encode`]; `None` for any other bytes
/// (another version, a cut or corrupt record).
pub fn decode(bytes: &[u8]) -> Option<(Vec<MetaEntry>, RowsByType)> {
    let mut r = Reader::new(bytes);
    if r.u8()? != VERSION {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<MetaEntry>, RowsByType) {
        let entries = vec![MetaEntry {
            tree: TreeId::Stacks,
            key: 7u64.to_be_bytes().to_vec(),
            value: b"stack".to_vec(),
        }];
        let mut columns = Columns::default();
        columns.push(1, 2, 1_700_000_000_000, -5, 10_000_000_000, 10_000_000);
        columns.push(u64::MAX, 0, i64::MIN, i64::MAX, 0, 0);
        let rows = RowsByType::from([("memory:inuse_space:bytes".to_owned(), columns)]);
        (entries, rows)
    }

    #[test]
    fn records_round_trip() {
        let (entries, rows) = sample();
        assert_eq!(decode(&encode(&entries, &rows)), Some((entries, rows)));
    }

    #[test]
    fn cut_records_other_versions_and_unknown_trees_are_none() {
        let (entries, rows) = sample();
        let bytes = encode(&entries, &rows);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None);
        let mut unknown = bytes;
        unknown[2] = 11; // the first entry's tree id
        assert_eq!(decode(&unknown), None);
    }

    #[test]
    fn a_huge_row_count_allocates_nothing_ahead() {
        let mut w = Writer::default();
        w.u8(VERSION);
        w.varint(0);
        w.varint(1);
        w.str("t");
        w.varint(u64::MAX);
        assert_eq!(decode(&w.buf), None);
    }

    #[test]
    fn the_fuzzing_seeds_are_records_and_segments() {
        let record = include_bytes!("../../fuzz/seeds/wal/record.bin");
        let (entries, rows) = decode(record).expect("the seed record decodes");
        assert_eq!((entries.len(), rows.len()), (5, 1));
        let segment = include_bytes!("../../fuzz/seeds/wal/torn.wal");
        let records: Vec<_> = crate::frame::Frames::new(segment)
            .filter_map(|item| match item {
                crate::frame::Item::Record { payload, .. } => decode(payload),
                crate::frame::Item::Skipped { .. } => None,
            })
            .collect();
        assert_eq!(
            records.len(),
            2,
            "a record, a torn one skipped, then a whole one"
        );
    }
}
