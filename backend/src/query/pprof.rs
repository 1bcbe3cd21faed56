//! Export: a resolved [`StackSet`] as a gzipped pprof profile, built from stored rows so
//! `go tool pprof` reads what Cinder shows.

use std::collections::HashMap;
use std::io::Write as _;

use flate2::{Compression, write::GzEncoder};
use proto::{Function, Line, Location, Mapping, Message as _, Profile, Sample, ValueType};
use shared::{flame::StackSet, query::ProfileType};

/// What goes into the exported profile besides the stacks.
#[derive(Debug, Clone)]
pub struct ExportInfo<'a> {
    /// Sample and period types come from here.
    pub profile_type: &'a ProfileType,
    /// Start of the selection, unix ms (the profile's `time_nanos`).
    pub start_ms: i64,
    /// End of the selection, unix ms (`duration_nanos` = end − start).
    pub end_ms: i64,
    /// The sampling period, if known.
    pub period: i64,
}

/// The stacks as a gzipped pprof body. A diff exports `value − baseline` per stack, the
/// way `go tool pprof -diff_base` shows one.
pub fn export(stacks: &StackSet, info: &ExportInfo<'_>) -> Vec<u8> {
    let profile = build(stacks, info);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&profile.encode_to_vec())
        .expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

/// The pprof message of `stacks`: one location per frame, functions and mappings deduplicated.
fn build(stacks: &StackSet, info: &ExportInfo<'_>) -> Profile {
    let mut b = Builder::default();
    b.string(""); // pprof's string table starts with "".
    let pt = info.profile_type;
    let sample_type = ValueType {
        ty: b.string(&pt.sample_type),
        unit: b.string(&pt.sample_unit),
    };
    let period_type = ValueType {
        ty: b.string(&pt.period_type),
        unit: b.string(&pt.period_unit),
    };
    let locations: Vec<Location> = stacks
        .frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let mapping_id = b.mapping(&frame.binary, &frame.build_id);
            let line = if frame.is_symbolized() {
                vec![Line {
                    function_id: b.function(&frame.function, &frame.system_name, &frame.file),
                    line: frame.line,
                    column: 0,
                }]
            } else {
                Vec::new()
            };
            Location {
                id: i as u64 + 1,
                mapping_id,
                address: frame.address,
                line,
                is_folded: false,
            }
        })
        .collect();
    let sample = stacks
        .stacks
        .iter()
        .filter_map(|s| {
            let value = s.value.wrapping_sub(s.baseline);
            (value != 0).then(|| Sample {
                location_id: s.frames.iter().map(|&f| u64::from(f) + 1).collect(),
                value: vec![value],
                label: Vec::new(),
            })
        })
        .collect();
    Profile {
        sample_type: vec![sample_type],
        sample,
        mapping: b.mappings,
        location: locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos: info.start_ms.saturating_mul(1_000_000),
        duration_nanos: info
            .end_ms
            .saturating_sub(info.start_ms)
            .saturating_mul(1_000_000),
        period_type: Some(period_type),
        period: info.period,
        ..Profile::default()
    }
}

/// Interns strings, functions and mappings.
#[derive(Default)]
struct Builder {
    strings: Vec<Vec<u8>>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(i64, i64, i64), u64>,
    mappings: Vec<Mapping>,
    mapping_ids: HashMap<(i64, i64), u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.as_bytes().to_vec());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn function(&mut self, name: &str, system_name: &str, file: &str) -> u64 {
        let key = (
            self.string(name),
            self.string(system_name),
            self.string(file),
        );
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(Function {
            id,
            name: key.0,
            system_name: key.1,
            filename: key.2,
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }

    /// 0 (no mapping) for a frame without binary and build id.
    fn mapping(&mut self, binary: &str, build_id: &str) -> u64 {
        if binary.is_empty() && build_id.is_empty() {
            return 0;
        }
        let key = (self.string(binary), self.string(build_id));
        if let Some(&id) = self.mapping_ids.get(&key) {
            return id;
        }
        let id = self.mappings.len() as u64 + 1;
        self.mappings.push(Mapping {
            id,
            filename: key.0,
            build_id: key.1,
            has_functions: true,
            ..Mapping::default()
        });
        self.mapping_ids.insert(key, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::flame::{Frame, Stack};

    fn info(pt: &ProfileType) -> ExportInfo<'_> {
        ExportInfo {
            profile_type: pt,
            start_ms: 1_000,
            end_ms: 11_000,
            period: 10_000_000,
        }
    }

    #[test]
    fn exported_profile_reads_back_valid_with_the_same_stacks() {
        let pt: ProfileType = "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta"
            .parse()
            .unwrap();
        let set = StackSet {
            frames: vec![
                Frame {
                    function: "main.work".into(),
                    file: "main.go".into(),
                    line: 3,
                    binary: "app".into(),
                    ..Frame::default()
                },
                Frame::named("main.main"),
                Frame {
                    binary: "libc.so.6".into(),
                    address: 0x10,
                    ..Frame::default()
                },
            ],
            stacks: vec![
                Stack {
                    frames: vec![0, 1],
                    value: 7,
                    baseline: 0,
                },
                Stack {
                    frames: vec![2, 0, 1],
                    value: 5,
                    baseline: 0,
                },
                Stack {
                    frames: vec![],
                    value: 1,
                    baseline: 0,
                },
                Stack {
                    frames: vec![1],
                    value: 0,
                    baseline: 0,
                },
            ],
        };
        let body = export(&set, &info(&pt));
        assert!(proto::is_gzip(&body));
        let profile = proto::read(&body, 1 << 20).unwrap();
        let index = profile.index().unwrap();
        assert_eq!(profile.sample.len(), 3, "zero-valued stacks are left out");
        assert_eq!(profile.sample[1].location_id, vec![3, 1, 2]);
        assert_eq!(profile.string(profile.sample_type[0].ty).unwrap(), "cpu");
        assert_eq!(profile.duration_nanos, 10_000_000_000);
        assert_eq!(profile.function.len(), 2);
        assert_eq!(profile.mapping.len(), 2);
        let unsymbolized = &profile.location[2];
        assert!(unsymbolized.line.is_empty());
        assert_eq!(unsymbolized.address, 0x10);
        drop(index);
    }

    #[test]
    fn a_diff_exports_the_difference() {
        let pt: ProfileType = "m:alloc_space:bytes:space:bytes:delta".parse().unwrap();
        let set = StackSet {
            frames: vec![Frame::named("grow")],
            stacks: vec![Stack {
                frames: vec![0],
                value: 3,
                baseline: 10,
            }],
        };
        let profile = proto::read(&export(&set, &info(&pt)), 1 << 20).unwrap();
        assert_eq!(profile.sample[0].value, vec![-7]);
    }
}
