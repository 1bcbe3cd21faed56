//! Referential consistency of a decoded [`Profile`].

use std::fmt;

use crate::Profile;
use crate::index::{ById, IdTables, Index};
use crate::types::string_at;

/// Which kind of message with an `id` a [`ValidationError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A [`Mapping`](crate::Mapping).
    Mapping,
    /// A [`Location`](crate::Location).
    Location,
    /// A [`Function`](crate::Function).
    Function,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Mapping => "mapping",
            EntityKind::Location => "location",
            EntityKind::Function => "function",
        })
    }
}

/// The field holding an out-of-range string index. Samples and `sample_type` entries are
/// named by position; mappings and functions by id (ids are checked before strings, so they
/// are non-zero and unique when this is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StringField {
    /// `sample_type[index].type`.
    SampleTypeType {
        /// Position in `sample_type`.
        index: usize,
    },
    /// `sample_type[index].unit`.
    SampleTypeUnit {
        /// Position in `sample_type`.
        index: usize,
    },
    /// `period_type.type`.
    PeriodTypeType,
    /// `period_type.unit`.
    PeriodTypeUnit,
    /// `sample[sample].label[label].key`.
    LabelKey {
        /// Position of the sample.
        sample: usize,
        /// Position of the label within the sample.
        label: usize,
    },
    /// `sample[sample].label[label].str`.
    LabelStr {
        /// Position of the sample.
        sample: usize,
        /// Position of the label within the sample.
        label: usize,
    },
    /// `sample[sample].label[label].num_unit`.
    LabelNumUnit {
        /// Position of the sample.
        sample: usize,
        /// Position of the label within the sample.
        label: usize,
    },
    /// `filename` of the mapping with this id.
    MappingFilename {
        /// The mapping's id.
        id: u64,
    },
    /// `build_id` of the mapping with this id.
    MappingBuildId {
        /// The mapping's id.
        id: u64,
    },
    /// `name` of the function with this id.
    FunctionName {
        /// The function's id.
        id: u64,
    },
    /// `system_name` of the function with this id.
    FunctionSystemName {
        /// The function's id.
        id: u64,
    },
    /// `filename` of the function with this id.
    FunctionFilename {
        /// The function's id.
        id: u64,
    },
    /// `drop_frames`.
    DropFrames,
    /// `keep_frames`.
    KeepFrames,
    /// `comment[index]`.
    Comment {
        /// Position in `comment`.
        index: usize,
    },
    /// `default_sample_type`.
    DefaultSampleType,
    /// `doc_url`.
    DocUrl,
}

impl fmt::Display for StringField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StringField::SampleTypeType { index } => write!(f, "sample_type[{index}] type"),
            StringField::SampleTypeUnit { index } => write!(f, "sample_type[{index}] unit"),
            StringField::PeriodTypeType => f.write_str("period_type type"),
            StringField::PeriodTypeUnit => f.write_str("period_type unit"),
            StringField::LabelKey { sample, label } => {
                write!(f, "sample {sample} label {label} key")
            }
            StringField::LabelStr { sample, label } => {
                write!(f, "sample {sample} label {label} str")
            }
            StringField::LabelNumUnit { sample, label } => {
                write!(f, "sample {sample} label {label} num_unit")
            }
            StringField::MappingFilename { id } => write!(f, "mapping {id} filename"),
            StringField::MappingBuildId { id } => write!(f, "mapping {id} build_id"),
            StringField::FunctionName { id } => write!(f, "function {id} name"),
            StringField::FunctionSystemName { id } => write!(f, "function {id} system_name"),
            StringField::FunctionFilename { id } => write!(f, "function {id} filename"),
            StringField::DropFrames => f.write_str("drop_frames"),
            StringField::KeepFrames => f.write_str("keep_frames"),
            StringField::Comment { index } => write!(f, "comment[{index}]"),
            StringField::DefaultSampleType => f.write_str("default_sample_type"),
            StringField::DocUrl => f.write_str("doc_url"),
        }
    }
}

/// The first referential inconsistency found in a profile. Samples, lines and frames are
/// named by their 0-based position; mappings, locations and functions by id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The string table has no entries; it must at least hold `""` at index 0.
    #[error("string table is empty (string_table[0] must be the empty string)")]
    EmptyStringTable,
    /// `string_table[0]` is not the empty string.
    #[error("string_table[0] must be empty (it has {len} bytes)")]
    FirstStringNotEmpty {
        /// Length in bytes of `string_table[0]`.
        len: usize,
    },
    /// A string index is negative or past the end of the string table.
    #[error("string index {index} out of range (table has {len} strings) in {field}")]
    StringIndexOutOfRange {
        /// The offending index.
        index: i64,
        /// Number of entries in the string table.
        len: usize,
        /// Where the index was found.
        field: StringField,
    },
    /// A mapping, location or function has the reserved id 0.
    #[error("{kind} at index {index} has id 0")]
    ZeroId {
        /// What kind of message.
        kind: EntityKind,
        /// Its position in the profile's list of that kind.
        index: usize,
    },
    /// Two mappings, locations or functions share an id.
    #[error("duplicate {kind} id {id} (at indexes {first} and {second})")]
    DuplicateId {
        /// What kind of message.
        kind: EntityKind,
        /// The shared id.
        id: u64,
        /// Position of the first message with that id.
        first: usize,
        /// Position of the second one.
        second: usize,
    },
    /// A sample's value count differs from the number of sample types.
    #[error(
        "sample {sample} has {values} values but the profile declares {sample_types} sample types"
    )]
    ValueCountMismatch {
        /// Position of the sample.
        sample: usize,
        /// How many values it has.
        values: usize,
        /// How many sample types the profile declares.
        sample_types: usize,
    },
    /// A sample references a location id that no location has.
    #[error("location {location_id} (sample {sample}, frame {frame}) does not exist")]
    UnknownLocation {
        /// The missing id.
        location_id: u64,
        /// Position of the sample.
        sample: usize,
        /// Position within the sample's `location_id` list (0 is the leaf).
        frame: usize,
    },
    /// A location's line references a function id that no function has (0 included).
    #[error(
        "function {function_id} referenced by location {location_id} line {line} does not exist"
    )]
    UnknownFunction {
        /// The missing id.
        function_id: u64,
        /// The id of the location holding the line.
        location_id: u64,
        /// Position of the line within the location.
        line: usize,
    },
    /// A location references a non-zero mapping id that no mapping has.
    #[error("mapping {mapping_id} referenced by location {location_id} does not exist")]
    UnknownMapping {
        /// The missing id.
        mapping_id: u64,
        /// The id of the location.
        location_id: u64,
    },
}

impl Profile {
    /// Checks that the profile is referentially consistent, returning the first problem found:
    ///
    /// - the string table is non-empty and `string_table[0]` is `""`;
    /// - mapping, location and function ids are non-zero and unique within their kind;
    /// - every string index (sample and period types, label key/str/num_unit, mapping
    ///   filename/build_id, function name/system_name/filename, drop/keep frames, comments,
    ///   default sample type, doc url) is within the table;
    /// - every non-zero `Location.mapping_id` and every `Line.function_id` exists;
    /// - every sample has one value per sample type and only references existing locations.
    ///
    /// A location with neither an address nor lines is valid. Runs in time linear in the
    /// size of the profile. Use [`Profile::index`] to validate and get lookups in one go.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check(self).map(drop)
    }

    /// Validates the profile (see [`Profile::validate`]) and returns an [`Index`] over it for
    /// O(1) lookups by id and string index.
    pub fn index(&self) -> Result<Index<'_>, ValidationError> {
        check(self).map(|ids| Index::new(self, ids))
    }
}

fn check(p: &Profile) -> Result<IdTables<'_>, ValidationError> {
    match p.string_table.first() {
        None => return Err(ValidationError::EmptyStringTable),
        Some(first) if !first.is_empty() => {
            return Err(ValidationError::FirstStringNotEmpty { len: first.len() });
        }
        Some(_) => {}
    }

    let ids = IdTables {
        mappings: ById::build(&p.mapping)?,
        locations: ById::build(&p.location)?,
        functions: ById::build(&p.function)?,
    };

    let strings = Strings(&p.string_table);
    for (index, st) in p.sample_type.iter().enumerate() {
        strings.check(st.ty, StringField::SampleTypeType { index })?;
        strings.check(st.unit, StringField::SampleTypeUnit { index })?;
    }
    if let Some(pt) = &p.period_type {
        strings.check(pt.ty, StringField::PeriodTypeType)?;
        strings.check(pt.unit, StringField::PeriodTypeUnit)?;
    }
    strings.check(p.drop_frames, StringField::DropFrames)?;
    strings.check(p.keep_frames, StringField::KeepFrames)?;
    for (index, &c) in p.comment.iter().enumerate() {
        strings.check(c, StringField::Comment { index })?;
    }
    strings.check(p.default_sample_type, StringField::DefaultSampleType)?;
    strings.check(p.doc_url, StringField::DocUrl)?;

    for m in &p.mapping {
        strings.check(m.filename, StringField::MappingFilename { id: m.id })?;
        strings.check(m.build_id, StringField::MappingBuildId { id: m.id })?;
    }
    for f in &p.function {
        strings.check(f.name, StringField::FunctionName { id: f.id })?;
        strings.check(f.system_name, StringField::FunctionSystemName { id: f.id })?;
        strings.check(f.filename, StringField::FunctionFilename { id: f.id })?;
    }

    for loc in &p.location {
        if loc.mapping_id != 0 && ids.mappings.get(loc.mapping_id).is_none() {
            return Err(ValidationError::UnknownMapping {
                mapping_id: loc.mapping_id,
                location_id: loc.id,
            });
        }
        for (line, l) in loc.line.iter().enumerate() {
            if ids.functions.get(l.function_id).is_none() {
                return Err(ValidationError::UnknownFunction {
                    function_id: l.function_id,
                    location_id: loc.id,
                    line,
                });
            }
        }
    }

    let sample_types = p.sample_type.len();
    for (sample, s) in p.sample.iter().enumerate() {
        if s.value.len() != sample_types {
            return Err(ValidationError::ValueCountMismatch {
                sample,
                values: s.value.len(),
                sample_types,
            });
        }
        for (frame, &location_id) in s.location_id.iter().enumerate() {
            if ids.locations.get(location_id).is_none() {
                return Err(ValidationError::UnknownLocation {
                    location_id,
                    sample,
                    frame,
                });
            }
        }
        for (label, l) in s.label.iter().enumerate() {
            strings.check(l.key, StringField::LabelKey { sample, label })?;
            strings.check(l.str, StringField::LabelStr { sample, label })?;
            strings.check(l.num_unit, StringField::LabelNumUnit { sample, label })?;
        }
    }

    Ok(ids)
}

struct Strings<'a>(&'a [Vec<u8>]);

impl Strings<'_> {
    #[inline]
    fn check(&self, index: i64, field: StringField) -> Result<(), ValidationError> {
        match string_at(self.0, index) {
            Ok(_) => Ok(()),
            Err(e) => Err(ValidationError::StringIndexOutOfRange {
                index: e.index,
                len: e.len,
                field,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::valid_profile;
    use crate::{Label, Line, Location, ValueType};

    #[track_caller]
    fn fails(p: &Profile, expected: &str) -> ValidationError {
        let err = p.validate().expect_err("profile should be invalid");
        assert_eq!(err.to_string(), expected);
        assert_eq!(p.index().err(), Some(err.clone()));
        err
    }

    #[test]
    fn valid_profile_passes() {
        valid_profile().validate().unwrap();
    }

    #[test]
    fn string_table_must_start_with_empty_string() {
        let mut p = valid_profile();
        p.string_table.clear();
        fails(
            &p,
            "string table is empty (string_table[0] must be the empty string)",
        );
        p.string_table = vec![b"x".to_vec(), b"".to_vec()];
        let e = fails(&p, "string_table[0] must be empty (it has 1 bytes)");
        assert!(e.to_string().starts_with("string_table[0] must be empty"));
    }

    #[test]
    fn zero_ids() {
        let mut p = valid_profile();
        p.function[2].id = 0;
        let e = fails(&p, "function at index 2 has id 0");
        assert_eq!(
            e,
            ValidationError::ZeroId {
                kind: EntityKind::Function,
                index: 2
            }
        );
        let mut p = valid_profile();
        p.location[0].id = 0;
        fails(&p, "location at index 0 has id 0");
        let mut p = valid_profile();
        p.mapping[1].id = 0;
        fails(&p, "mapping at index 1 has id 0");
    }

    #[test]
    fn duplicate_ids_in_every_table_layout() {
        // Identity layout broken by a duplicate: falls back to the dense table.
        let mut p = valid_profile();
        p.function[2].id = 1;
        fails(&p, "duplicate function id 1 (at indexes 0 and 2)");
        // Sparse ids (hash map).
        let mut p = valid_profile();
        p.location[0].id = u64::MAX;
        p.location[2].id = u64::MAX;
        fails(
            &p,
            "duplicate location id 18446744073709551615 (at indexes 0 and 2)",
        );
        let mut p = valid_profile();
        p.mapping.push(p.mapping[0].clone());
        fails(&p, "duplicate mapping id 1 (at indexes 0 and 2)");
    }

    #[test]
    fn value_count_must_match_sample_types() {
        let mut p = valid_profile();
        p.sample[1].value.pop();
        fails(
            &p,
            "sample 1 has 1 values but the profile declares 2 sample types",
        );
        let mut p = valid_profile();
        p.sample_type.push(ValueType { ty: 1, unit: 2 });
        fails(
            &p,
            "sample 0 has 2 values but the profile declares 3 sample types",
        );
    }

    #[test]
    fn unknown_location() {
        let mut p = valid_profile();
        p.sample[1].location_id.push(7);
        fails(&p, "location 7 (sample 1, frame 2) does not exist");
        let mut p = valid_profile();
        p.sample[0].location_id[0] = 0;
        fails(&p, "location 0 (sample 0, frame 0) does not exist");
    }

    #[test]
    fn unknown_function() {
        let mut p = valid_profile();
        p.location[1].line.push(Line {
            function_id: 5,
            line: 1,
            column: 0,
        });
        fails(
            &p,
            "function 5 referenced by location 2 line 1 does not exist",
        );
        let mut p = valid_profile();
        p.location[0].line[0].function_id = 0;
        fails(
            &p,
            "function 0 referenced by location 1 line 0 does not exist",
        );
    }

    #[test]
    fn unknown_mapping() {
        let mut p = valid_profile();
        p.location[2].mapping_id = 9;
        fails(&p, "mapping 9 referenced by location 3 does not exist");
        // Mapping id 0 means "unknown mapping" and is fine.
        let mut p = valid_profile();
        p.location[2].mapping_id = 0;
        p.validate().unwrap();
    }

    #[test]
    fn location_without_address_or_lines_is_valid() {
        let mut p = valid_profile();
        p.location[1].address = 0;
        p.location[1].line.clear();
        p.location[1].mapping_id = 0;
        p.validate().unwrap();
    }

    #[test]
    fn every_string_field_is_checked() {
        let len = valid_profile().string_table.len();
        type Edit = fn(&mut Profile, i64);
        let cases: &[(Edit, &str)] = &[
            (|p, i| p.sample_type[1].ty = i, "sample_type[1] type"),
            (|p, i| p.sample_type[0].unit = i, "sample_type[0] unit"),
            (
                |p, i| p.period_type.as_mut().unwrap().ty = i,
                "period_type type",
            ),
            (
                |p, i| p.period_type.as_mut().unwrap().unit = i,
                "period_type unit",
            ),
            (|p, i| p.drop_frames = i, "drop_frames"),
            (|p, i| p.keep_frames = i, "keep_frames"),
            (|p, i| p.comment = vec![0, i], "comment[1]"),
            (|p, i| p.default_sample_type = i, "default_sample_type"),
            (|p, i| p.doc_url = i, "doc_url"),
            (|p, i| p.mapping[1].filename = i, "mapping 2 filename"),
            (|p, i| p.mapping[0].build_id = i, "mapping 1 build_id"),
            (|p, i| p.function[2].name = i, "function 3 name"),
            (
                |p, i| p.function[0].system_name = i,
                "function 1 system_name",
            ),
            (|p, i| p.function[1].filename = i, "function 2 filename"),
            (|p, i| p.sample[1].label[0].key = i, "sample 1 label 0 key"),
            (|p, i| p.sample[1].label[0].str = i, "sample 1 label 0 str"),
            (
                |p, i| p.sample[0].label[1].num_unit = i,
                "sample 0 label 1 num_unit",
            ),
        ];
        for &(edit, field) in cases {
            for bad in [len as i64, 999, -1, i64::MIN, i64::MAX] {
                let mut p = valid_profile();
                edit(&mut p, bad);
                fails(
                    &p,
                    &format!(
                        "string index {bad} out of range (table has {len} strings) in {field}"
                    ),
                );
            }
            // The last entry is in range.
            let mut p = valid_profile();
            edit(&mut p, len as i64 - 1);
            p.validate().unwrap_or_else(|e| panic!("{field}: {e}"));
        }
    }

    #[test]
    fn empty_profile_with_only_the_empty_string_is_valid() {
        let p = Profile {
            string_table: vec![vec![]],
            ..Profile::default()
        };
        p.validate().unwrap();
        // Samples with no sample types must then have no values.
        let mut p = p;
        p.sample.push(crate::Sample {
            location_id: vec![],
            value: vec![1],
            label: vec![Label::default()],
        });
        fails(
            &p,
            "sample 0 has 1 values but the profile declares 0 sample types",
        );
    }

    #[test]
    fn large_profile_validates_in_linear_time() {
        // 200k locations with sparse ids and 200k samples: quadratic work would not finish.
        let mut p = valid_profile();
        let base = 1u64 << 40;
        for i in 0..200_000u64 {
            p.location.push(Location {
                id: base + i * 64,
                mapping_id: 1,
                address: 0x1000 + i,
                line: vec![Line {
                    function_id: 1 + i % 3,
                    line: 1,
                    column: 0,
                }],
                is_folded: false,
            });
            p.sample.push(crate::Sample {
                location_id: vec![base + i * 64, 1],
                value: vec![1, 2],
                label: vec![],
            });
        }
        let start = std::time::Instant::now();
        p.validate().unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }
}
