//! The messages of google/pprof's `proto/profile.proto` (package `perftools.profiles`),
//! written by hand as prost derives.
//!
//! Field numbers and scalar types follow the upstream schema exactly. The one deliberate
//! difference: `string_table` is declared as `repeated bytes` rather than `repeated string`.
//! Both use the length-delimited wire type, so the encoding is identical, but decoding never
//! fails on invalid UTF-8 (real profilers emit it); [`Profile::string`] converts lossily.
//!
//! Every `int64` field documented as "index into string table" is an index into
//! [`Profile::string_table`]; index 0 is always the empty string.

use std::borrow::Cow;

/// A pprof profile: `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Profile {
    /// What each entry of [`Sample::value`] measures, in order (field 1).
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The recorded samples (field 2).
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Address ranges and the binaries mapped into them; `mapping[0]` is the main binary (field 3).
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Program locations referenced by samples (field 4).
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions referenced by location lines (field 5).
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// The string table (field 6, `repeated string` upstream). Kept as raw bytes so invalid
    /// UTF-8 decodes; read entries through [`Profile::string`]. `string_table[0]` must be empty.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_table: Vec<Vec<u8>>,
    /// Regexp (string index) of frames to drop, with their successors (field 7).
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Regexp (string index) of frames to keep even if they match `drop_frames` (field 8).
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// Collection start time, nanoseconds since the Unix epoch (field 9).
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// Duration of the profile in nanoseconds, if meaningful (field 10).
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// The kind of events between sampled occurrences (field 11).
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// The number of events between sampled occurrences (field 12).
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments, as string indexes (field 13).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// String index of the preferred sample type's `type`; 0 means "the last one" (field 14).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
    /// String index of a documentation link for this profile type (field 15).
    #[prost(int64, tag = "15")]
    pub doc_url: i64,
}

/// The meaning and unit of a value: `perftools.profiles.ValueType`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct ValueType {
    /// String index of the type, e.g. "cpu" or "alloc_space" (field 1, `type` upstream).
    #[prost(int64, tag = "1")]
    pub ty: i64,
    /// String index of the unit, e.g. "nanoseconds" or "bytes" (field 2).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One recorded stack with its values: `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Sample {
    /// Location ids, leaf first (field 1, packed or unpacked on the wire).
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per [`Profile::sample_type`] (field 2, packed or unpacked on the wire).
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Extra context such as thread id or request path (field 3).
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A key/value annotation on a sample: `perftools.profiles.Label`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    /// String index of the key (field 1).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String index of a string value; 0 when the label is numeric (field 2).
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// A numeric value (field 3).
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// String index of the unit of `num` (field 4).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// A binary mapped into the address space: `perftools.profiles.Mapping`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Mapping {
    /// Unique non-zero id (field 1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Address at which the binary is loaded (field 2).
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// End of the address range occupied by the mapping (field 3).
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// File offset corresponding to `memory_start` (field 4).
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// String index of the file name (field 5).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// String index of the build id (field 6).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Whether function names were resolved for this mapping (field 7).
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Whether file names were resolved (field 8).
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Whether line numbers were resolved (field 9).
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Whether inlined frames were resolved (field 10).
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// A program location, possibly with inlined frames: `perftools.profiles.Location`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Location {
    /// Unique non-zero id (field 1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Id of the [`Mapping`] this location belongs to; 0 when unknown (field 2).
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// Instruction address, if known (field 3).
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Source lines, innermost (inlined callee) first; the last is the caller (field 4).
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    /// Whether several symbols were folded into this address by the linker (field 5).
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// A source line within a location: `perftools.profiles.Line`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Line {
    /// Id of the [`Function`] (field 1).
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Line number in the source file (field 2).
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// Column number in the source file (field 3).
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// A function: `perftools.profiles.Function`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Function {
    /// Unique non-zero id (field 1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// String index of the human-readable name (field 2).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// String index of the system (e.g. mangled) name (field 3).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// String index of the source file name (field 4).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// Line number where the function starts (field 5).
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// A string index that does not point into the string table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("string index {index} out of range (table has {len} strings)")]
pub struct StringIndexError {
    /// The offending index (may be negative).
    pub index: i64,
    /// The number of entries in the string table.
    pub len: usize,
}

impl Profile {
    /// The string at `index` in the string table. Invalid UTF-8 is replaced by U+FFFD;
    /// valid UTF-8 is borrowed without copying.
    pub fn string(&self, index: i64) -> Result<Cow<'_, str>, StringIndexError> {
        string_at(&self.string_table, index).map(String::from_utf8_lossy)
    }

    /// The whole string table, each entry converted like [`Profile::string`].
    pub fn strings(&self) -> Vec<Cow<'_, str>> {
        self.string_table
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect()
    }
}

/// The raw bytes at `index`, or the error describing why it is out of range.
pub(crate) fn string_at(table: &[Vec<u8>], index: i64) -> Result<&[u8], StringIndexError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .map(Vec::as_slice)
        .ok_or(StringIndexError {
            index,
            len: table.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use prost::encoding::{WireType, encode_key, encode_varint};

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let p = Profile {
            string_table: vec![b"".to_vec(), b"ok".to_vec(), b"bad\xff\xfe!".to_vec()],
            ..Profile::default()
        };
        let bytes = p.encode_to_vec();
        let back = Profile::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, p, "raw bytes round-trip unchanged");
        assert_eq!(back.string(1).unwrap(), "ok");
        assert!(matches!(back.string(1).unwrap(), Cow::Borrowed(_)));
        assert_eq!(back.string(2).unwrap(), "bad\u{FFFD}\u{FFFD}!");
        assert_eq!(back.strings(), vec!["", "ok", "bad\u{FFFD}\u{FFFD}!"]);
    }

    #[test]
    fn string_index_errors() {
        let p = Profile {
            string_table: vec![vec![], b"a".to_vec()],
            ..Profile::default()
        };
        assert_eq!(p.string(0).unwrap(), "");
        let e = p.string(2).unwrap_err();
        assert_eq!(e, StringIndexError { index: 2, len: 2 });
        assert_eq!(
            e.to_string(),
            "string index 2 out of range (table has 2 strings)"
        );
        assert!(p.string(-1).is_err());
        assert!(p.string(i64::MIN).is_err());
    }

    fn sample_bytes(packed: bool) -> Vec<u8> {
        let ids: [u64; 3] = [1, 300, u64::MAX];
        let values: [i64; 2] = [-5, 1 << 40];
        let mut sample = Vec::new();
        if packed {
            let mut payload = Vec::new();
            ids.iter().for_each(|&v| encode_varint(v, &mut payload));
            encode_key(1, WireType::LengthDelimited, &mut sample);
            encode_varint(payload.len() as u64, &mut sample);
            sample.extend_from_slice(&payload);
            let mut payload = Vec::new();
            values
                .iter()
                .for_each(|&v| encode_varint(v as u64, &mut payload));
            encode_key(2, WireType::LengthDelimited, &mut sample);
            encode_varint(payload.len() as u64, &mut sample);
            sample.extend_from_slice(&payload);
        } else {
            // Unpacked, and interleaved: a decoder must append, not replace.
            for (i, &id) in ids.iter().enumerate() {
                encode_key(1, WireType::Varint, &mut sample);
                encode_varint(id, &mut sample);
                if let Some(&v) = values.get(i) {
                    encode_key(2, WireType::Varint, &mut sample);
                    encode_varint(v as u64, &mut sample);
                }
            }
        }
        let mut profile = Vec::new();
        encode_key(2, WireType::LengthDelimited, &mut profile);
        encode_varint(sample.len() as u64, &mut profile);
        profile.extend_from_slice(&sample);
        // comment = 13 unpacked twice, then a packed run: all three must be kept in order.
        encode_key(13, WireType::Varint, &mut profile);
        encode_varint(7, &mut profile);
        encode_key(13, WireType::LengthDelimited, &mut profile);
        encode_varint(2, &mut profile);
        encode_varint(8, &mut profile);
        encode_varint(9, &mut profile);
        profile
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars_decode_the_same() {
        let packed = Profile::decode(sample_bytes(true).as_slice()).expect("packed");
        let unpacked = Profile::decode(sample_bytes(false).as_slice()).expect("unpacked");
        assert_eq!(packed, unpacked);
        assert_eq!(packed.sample[0].location_id, vec![1, 300, u64::MAX]);
        assert_eq!(packed.sample[0].value, vec![-5, 1 << 40]);
        assert_eq!(packed.comment, vec![7, 8, 9]);
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = crate::test_util::valid_profile();
        let back = Profile::decode(p.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, p);
    }
}
