//! OTLP profiles (`opentelemetry.proto.profiles.v1development`, proto v1.10 and later) to
//! pprof [`Profile`]s, so they take pprof's ingest path.
//!
//! - The dictionary tables are shared by every profile of a request; index 0 of each is
//!   the empty entry (a reference to it means "none"). Every index is checked; one out of
//!   range rejects its profile with the path of the bad reference.
//! - Each OTLP `Profile` has one sample type and becomes one pprof profile with that
//!   sample type and unit as sent, its period type and period, time and duration.
//! - `__name__`: `process_cpu` when the period type is `cpu` (the eBPF profiler's
//!   `samples`/`count` every `cpu`/`nanoseconds`); `memory` for `alloc_*`/`inuse_*` sample
//!   types or period type `space`; `goroutine` for `goroutine(s)`; `wall` for period type
//!   `wall`; otherwise the sample type's name, sanitized. CPU profiles are deltas; others
//!   are deltas when they have a duration.
//! - Values: a sample with values adds them up (one per timestamp when it has
//!   timestamps, whose count must then match); a sample with timestamps only counts 1
//!   per timestamp.
//! - Resource and profile attributes become series labels with names sanitized
//!   (`service.name` → `service_name`, `k8s.pod.name` → `k8s_pod_name`); sample attributes
//!   (`thread.name`) become string labels of the sample, hence row labels.
//! - Frames without lines keep their address and mapping (file and build id, from the
//!   mapping's `process.executable.build_id.*` attribute) for a later symbolizer.

use std::collections::HashMap;

use opentelemetry_proto::tonic::{
    collector::profiles::v1development::ExportProfilesServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    profiles::v1development::{self as otlp, ProfilesDictionary},
};
use proto::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};
use shared::labels::{Labels, NAME_LABEL, sanitize_label_name};

/// One profile of a request, ready to store.
#[derive(Debug)]
pub struct Converted {
    /// The pprof profile.
    pub profile: Profile,
    /// Its series labels, `__name__` included.
    pub labels: Labels,
    /// Whether it is a delta.
    pub delta: bool,
}

/// What a request holds: the good profiles and why the others were rejected.
#[derive(Debug, Default)]
pub struct Conversion {
    /// The profiles that converted.
    pub profiles: Vec<Converted>,
    /// One message per rejected profile.
    pub rejected: Vec<String>,
}

/// Converts every profile of a request; a bad one is rejected, the others kept.
pub fn convert(request: &ExportProfilesServiceRequest) -> Conversion {
    let empty = ProfilesDictionary::default();
    let dictionary = request.dictionary.as_ref().unwrap_or(&empty);
    let mut out = Conversion::default();
    for (r, resource) in request.resource_profiles.iter().enumerate() {
        let mut labels = Labels::new();
        if let Some(res) = &resource.resource {
            add_attributes(&mut labels, &res.attributes);
        }
        for (s, scope) in resource.scope_profiles.iter().enumerate() {
            for (p, profile) in scope.profiles.iter().enumerate() {
                let path = format!("resource_profiles[{r}].scope_profiles[{s}].profiles[{p}]");
                match convert_profile(dictionary, profile, &labels) {
                    Ok(converted) => out.profiles.push(converted),
                    Err(err) => out.rejected.push(format!("{path}: {err}")),
                }
            }
        }
    }
    out
}

/// How many profiles a request holds.
pub fn profile_count(request: &ExportProfilesServiceRequest) -> usize {
    request
        .resource_profiles
        .iter()
        .flat_map(|r| &r.scope_profiles)
        .map(|s| s.profiles.len())
        .sum()
}

fn convert_profile(
    dictionary: &ProfilesDictionary,
    profile: &otlp::Profile,
    resource_labels: &Labels,
) -> Result<Converted, String> {
    let mut b = Builder::new(dictionary);
    let Some(sample_type) = profile.sample_type else {
        return Err("sample_type is missing (each profile has one)".into());
    };
    let (ty, unit) = (
        b.dict_string(sample_type.type_strindex, "sample_type.type_strindex")?,
        b.dict_string(sample_type.unit_strindex, "sample_type.unit_strindex")?,
    );
    let period_type = profile.period_type.unwrap_or_default();
    let (pty, punit) = (
        b.dict_string(period_type.type_strindex, "period_type.type_strindex")?,
        b.dict_string(period_type.unit_strindex, "period_type.unit_strindex")?,
    );
    let mut labels = resource_labels.clone();
    let attrs = b.attributes(&profile.attribute_indices, "attribute_indices")?;
    for (key, value) in attrs {
        insert_sanitized(&mut labels, &key, &value);
    }
    let name = profile_name(ty, pty);
    labels.insert(NAME_LABEL, name.as_str());
    let pprof_type = ValueType {
        ty: b.string(ty),
        unit: b.string(unit),
    };
    b.out.sample_type = vec![pprof_type];
    if profile.period_type.is_some() {
        b.out.period_type = Some(ValueType {
            ty: b.string(pty),
            unit: b.string(punit),
        });
    }
    b.out.period = profile.period;
    b.out.time_nanos = clamp(profile.time_unix_nano);
    b.out.duration_nanos = clamp(profile.duration_nano);
    for (i, sample) in profile.samples.iter().enumerate() {
        b.sample(sample).map_err(|e| format!("samples[{i}]: {e}"))?;
    }
    let delta = pty == "cpu" || profile.duration_nano != 0;
    Ok(Converted {
        profile: b.out,
        labels,
        delta,
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `__name__` of a profile from its sample and period type names.
pub fn profile_name(sample_type: &str, period_type: &str) -> String {
    let name = match (sample_type, period_type) {
        (_, "cpu") => "process_cpu",
        (t, p) if t.starts_with("alloc_") || t.starts_with("inuse_") || p == "space" => "memory",
        ("goroutine" | "goroutines", _) => "goroutine",
        (_, "wall") => "wall",
        (t, _) => return sanitize_label_name(t).unwrap_or_else(|| "unknown".into()),
    };
    name.to_owned()
}

/// Adds attributes as series labels, names sanitized; unusable names are dropped.
fn add_attributes(labels: &mut Labels, attributes: &[KeyValue]) {
    for kv in attributes {
        if let Some(value) = kv.value.as_ref().and_then(scalar) {
            insert_sanitized(labels, &kv.key, &value);
        }
    }
}

fn insert_sanitized(labels: &mut Labels, name: &str, value: &str) {
    match sanitize_label_name(name) {
        Some(clean) if !clean.starts_with("__") => {
            labels.insert(clean, value);
        }
        _ => tracing::debug!(name, "OTLP attribute dropped: not a usable label name"),
    }
}

/// A scalar attribute value as text; arrays, maps and bytes have none.
fn scalar(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

/// Mapping attributes that carry a build id, preferred first.
const BUILD_ID_KEYS: &[&str] = &[
    "process.executable.build_id.gnu",
    "process.executable.build_id.go",
    "process.executable.build_id.htlhash",
    "process.executable.build_id.profiling",
];

/// Builds one pprof profile from the dictionary entries its samples reference.
struct Builder<'d> {
    dict: &'d ProfilesDictionary,
    out: Profile,
    strings: HashMap<&'d str, i64>,
    locations: HashMap<i32, u64>,
    functions: HashMap<i32, u64>,
    mappings: HashMap<i32, u64>,
}

impl<'d> Builder<'d> {
    fn new(dict: &'d ProfilesDictionary) -> Self {
        let mut out = Profile::default();
        out.string_table.push(Vec::new());
        let mut strings = HashMap::new();
        strings.insert("", 0);
        Builder {
            dict,
            out,
            strings,
            locations: HashMap::new(),
            functions: HashMap::new(),
            mappings: HashMap::new(),
        }
    }

    /// A pprof string index for `s` (a dictionary string or a constant).
    fn string(&mut self, s: &'d str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.as_bytes().to_vec());
        self.strings.insert(s, i);
        i
    }

    fn dict_string(&self, index: i32, field: &str) -> Result<&'d str, String> {
        let dict: &'d ProfilesDictionary = self.dict;
        entry(&dict.string_table, index, field, "string_table").map(String::as_str)
    }

    /// `(key, value)` of scalar attributes at these indexes (index 0 skipped).
    fn attributes(&self, indices: &[i32], field: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            if i == 0 {
                continue;
            }
            let attr = entry(&self.dict.attribute_table, i, field, "attribute_table")?;
            let key = self.dict_string(attr.key_strindex, "attribute_table[].key_strindex")?;
            if let Some(value) = attr.value.as_ref().and_then(scalar) {
                out.push((key.to_owned(), value));
            }
        }
        Ok(out)
    }

    fn sample(&mut self, sample: &otlp::Sample) -> Result<(), String> {
        let value = sample_value(sample)?;
        if sample.link_index != 0 {
            entry(
                &self.dict.link_table,
                sample.link_index,
                "link_index",
                "link_table",
            )?;
        }
        let dict: &'d ProfilesDictionary = self.dict;
        let stack = entry(
            &dict.stack_table,
            sample.stack_index,
            "stack_index",
            "stack_table",
        )?;
        let mut location_id = Vec::with_capacity(stack.location_indices.len());
        for &l in &stack.location_indices {
            if l != 0 {
                location_id.push(self.location(l)?);
            }
        }
        let mut label = Vec::new();
        for (key, value) in self.attributes(&sample.attribute_indices, "attribute_indices")? {
            label.push((key, value));
        }
        let label = label
            .into_iter()
            .map(|(k, v)| Label {
                key: self.owned_string(k),
                str: self.owned_string(v),
                ..Label::default()
            })
            .collect();
        if value != 0 {
            self.out.sample.push(Sample {
                location_id,
                value: vec![value],
                label,
            });
        }
        Ok(())
    }

    /// A string index for a string that is not borrowed from the dictionary.
    fn owned_string(&mut self, s: String) -> i64 {
        if let Some(&i) = self.strings.get(s.as_str()) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.into_bytes());
        i
    }

    fn location(&mut self, index: i32) -> Result<u64, String> {
        if let Some(&id) = self.locations.get(&index) {
            return Ok(id);
        }
        let dict: &'d ProfilesDictionary = self.dict;
        let loc = entry(
            &dict.location_table,
            index,
            "stack location",
            "location_table",
        )?;
        let mapping_id = match loc.mapping_index {
            0 => 0,
            m => self.mapping(m)?,
        };
        let mut line = Vec::with_capacity(loc.lines.len());
        for l in &loc.lines {
            if l.function_index == 0 {
                continue;
            }
            line.push(Line {
                function_id: self.function(l.function_index)?,
                line: l.line,
                column: l.column,
            });
        }
        let id = self.out.location.len() as u64 + 1;
        self.out.location.push(Location {
            id,
            mapping_id,
            address: loc.address,
            line,
            is_folded: false,
        });
        self.locations.insert(index, id);
        Ok(id)
    }

    fn function(&mut self, index: i32) -> Result<u64, String> {
        if let Some(&id) = self.functions.get(&index) {
            return Ok(id);
        }
        let dict: &'d ProfilesDictionary = self.dict;
        let f = entry(
            &dict.function_table,
            index,
            "function_index",
            "function_table",
        )?;
        let name = self.dict_string(f.name_strindex, "function_table[].name_strindex")?;
        let system = self.dict_string(
            f.system_name_strindex,
            "function_table[].system_name_strindex",
        )?;
        let file = self.dict_string(f.filename_strindex, "function_table[].filename_strindex")?;
        let id = self.out.function.len() as u64 + 1;
        let function = Function {
            id,
            name: self.string(name),
            system_name: self.string(system),
            filename: self.string(file),
            start_line: f.start_line,
        };
        self.out.function.push(function);
        self.functions.insert(index, id);
        Ok(id)
    }

    fn mapping(&mut self, index: i32) -> Result<u64, String> {
        if let Some(&id) = self.mappings.get(&index) {
            return Ok(id);
        }
        let dict: &'d ProfilesDictionary = self.dict;
        let m = entry(&dict.mapping_table, index, "mapping_index", "mapping_table")?;
        let file = self.dict_string(m.filename_strindex, "mapping_table[].filename_strindex")?;
        let attrs = self.attributes(&m.attribute_indices, "mapping_table[].attribute_indices")?;
        let build_id = BUILD_ID_KEYS
            .iter()
            .find_map(|k| attrs.iter().find(|(key, _)| key == k))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let id = self.out.mapping.len() as u64 + 1;
        let mapping = Mapping {
            id,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: self.string(file),
            build_id: self.owned_string(build_id),
            ..Mapping::default()
        };
        self.out.mapping.push(mapping);
        self.mappings.insert(index, id);
        Ok(id)
    }
}

/// The value of a sample: its values summed, or 1 per timestamp without values.
fn sample_value(sample: &otlp::Sample) -> Result<i64, String> {
    let (values, timestamps) = (sample.values.len(), sample.timestamps_unix_nano.len());
    if values == 0 {
        return Ok(timestamps as i64);
    }
    if timestamps != 0 && timestamps != values {
        return Err(format!(
            "{values} values but {timestamps} timestamps (they must match when both are set)"
        ));
    }
    Ok(sample
        .values
        .iter()
        .fold(0i64, |sum, v| sum.saturating_add(*v)))
}

/// `table[index]`, or an error naming the field, the index and the table's size.
fn entry<'t, T>(table: &'t [T], index: i32, field: &str, name: &str) -> Result<&'t T, String> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| {
            format!(
                "{field} {index} is out of range (dictionary.{name} has {} entries)",
                table.len()
            )
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        common::v1::KeyValue, profiles::v1development as p, resource::v1::Resource,
    };

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// An eBPF-profiler-like request: CPU samples of two stacks (one unsymbolized frame),
    /// timestamps only, a thread.name attribute, and a second, bad-or-good profile.
    pub(crate) fn ebpf_request() -> ExportProfilesServiceRequest {
        let strings = [
            "",
            "samples",
            "count",
            "cpu",
            "nanoseconds",
            "main",
            "main.go",
            "work",
            "/usr/bin/app",
            "process.executable.build_id.gnu",
            "abc123",
            "thread.name",
            "worker-1",
        ];
        let s = |name: &str| strings.iter().position(|x| *x == name).unwrap() as i32;
        let dictionary = p::ProfilesDictionary {
            string_table: strings.iter().map(|x| x.to_string()).collect(),
            mapping_table: vec![
                p::Mapping::default(),
                p::Mapping {
                    memory_start: 0x1000,
                    memory_limit: 0x9000,
                    filename_strindex: s("/usr/bin/app"),
                    attribute_indices: vec![1],
                    ..Default::default()
                },
            ],
            function_table: vec![
                p::Function::default(),
                p::Function {
                    name_strindex: s("main"),
                    filename_strindex: s("main.go"),
                    ..Default::default()
                },
                p::Function {
                    name_strindex: s("work"),
                    filename_strindex: s("main.go"),
                    ..Default::default()
                },
            ],
            location_table: vec![
                p::Location::default(),
                p::Location {
                    lines: vec![p::Line {
                        function_index: 1,
                        line: 3,
                        column: 0,
                    }],
                    ..Default::default()
                },
                p::Location {
                    lines: vec![p::Line {
                        function_index: 2,
                        line: 9,
                        column: 0,
                    }],
                    ..Default::default()
                },
                p::Location {
                    mapping_index: 1,
                    address: 0x1234,
                    ..Default::default()
                },
            ],
            stack_table: vec![
                p::Stack::default(),
                p::Stack {
                    location_indices: vec![2, 1],
                },
                p::Stack {
                    location_indices: vec![3, 1],
                },
            ],
            attribute_table: vec![
                p::KeyValueAndUnit::default(),
                p::KeyValueAndUnit {
                    key_strindex: s("process.executable.build_id.gnu"),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("abc123".into())),
                    }),
                    unit_strindex: 0,
                },
                p::KeyValueAndUnit {
                    key_strindex: s("thread.name"),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("worker-1".into())),
                    }),
                    unit_strindex: 0,
                },
            ],
            link_table: vec![p::Link::default()],
        };
        let cpu = p::Profile {
            sample_type: Some(p::ValueType {
                type_strindex: s("samples"),
                unit_strindex: s("count"),
            }),
            period_type: Some(p::ValueType {
                type_strindex: s("cpu"),
                unit_strindex: s("nanoseconds"),
            }),
            period: 50_000_000,
            time_unix_nano: 1_700_000_000_000_000_000,
            duration_nano: 5_000_000_000,
            samples: vec![
                p::Sample {
                    stack_index: 1,
                    timestamps_unix_nano: vec![1, 2, 3],
                    attribute_indices: vec![2],
                    ..Default::default()
                },
                p::Sample {
                    stack_index: 2,
                    values: vec![2, 5],
                    timestamps_unix_nano: vec![4, 5],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        ExportProfilesServiceRequest {
            resource_profiles: vec![p::ResourceProfiles {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "checkout"),
                        kv("host.name", "node-1"),
                        kv("k8s.pod.name", "checkout-7f"),
                    ],
                    ..Default::default()
                }),
                scope_profiles: vec![p::ScopeProfiles {
                    profiles: vec![cpu],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            dictionary: Some(dictionary),
        }
    }

    #[test]
    fn ebpf_cpu_profile_maps_to_process_cpu() {
        let out = convert(&ebpf_request());
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let c = &out.profiles[0];
        assert!(c.delta);
        assert_eq!(c.labels.get("__name__"), Some("process_cpu"));
        assert_eq!(c.labels.get("service_name"), Some("checkout"));
        assert_eq!(c.labels.get("host_name"), Some("node-1"));
        assert_eq!(c.labels.get("k8s_pod_name"), Some("checkout-7f"));
        let index = c.profile.index().unwrap();
        let values: Vec<i64> = c.profile.sample.iter().map(|s| s.value[0]).collect();
        assert_eq!(values, [3, 7]);
        let st = c.profile.sample_type[0];
        assert_eq!(
            (index.string(st.ty), index.string(st.unit)),
            ("samples", "count")
        );
        assert_eq!(c.profile.period, 50_000_000);
        let label = &c.profile.sample[0].label[0];
        assert_eq!(
            (index.string(label.key), index.string(label.str)),
            ("thread.name", "worker-1")
        );
        let leaf = index.location(c.profile.sample[1].location_id[0]).unwrap();
        assert!(leaf.line.is_empty());
        assert_eq!(leaf.address, 0x1234);
        let mapping = index.mapping(leaf.mapping_id).unwrap();
        assert_eq!(index.string(mapping.build_id), "abc123");
        assert_eq!(index.string(mapping.filename), "/usr/bin/app");
    }

    #[test]
    fn bad_profiles_are_rejected_with_their_path_and_good_ones_kept() {
        let mut request = ebpf_request();
        let good = request.resource_profiles[0].scope_profiles[0].profiles[0].clone();
        let mut bad = good.clone();
        bad.samples[0].stack_index = 9;
        let mut mismatched = good.clone();
        mismatched.samples[1].values = vec![1, 2, 3];
        request.resource_profiles[0].scope_profiles[0].profiles = vec![bad, good, mismatched];
        let out = convert(&request);
        assert_eq!(out.profiles.len(), 1);
        assert_eq!(out.rejected.len(), 2);
        assert!(
            out.rejected[0].contains("profiles[0]: samples[0]: stack_index 9 is out of range (dictionary.stack_table has 3 entries)"),
            "{}",
            out.rejected[0]
        );
        assert!(
            out.rejected[1].contains("3 values but 2 timestamps"),
            "{}",
            out.rejected[1]
        );
        request
            .dictionary
            .as_mut()
            .unwrap()
            .function_table
            .truncate(2);
        let out = convert(&request);
        assert!(out.profiles.is_empty());
        assert!(
            out.rejected[1].contains("samples[0]: function_index 2 is out of range (dictionary.function_table has 2 entries)"),
            "{:?}",
            out.rejected
        );
    }

    /// Indexes set to arbitrary small values (negative, zero, past the tables) never
    /// panic: each profile is rejected or converts into a valid pprof profile.
    #[test]
    fn arbitrary_indexes_are_rejected_or_valid() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 14) as i32 - 3
        };
        for _ in 0..2000 {
            let mut request = ebpf_request();
            let dict = request.dictionary.as_mut().unwrap();
            let profile = &mut request.resource_profiles[0].scope_profiles[0].profiles[0];
            match next().rem_euclid(8) {
                0 => profile.samples[0].stack_index = next(),
                1 => dict.stack_table[1].location_indices[0] = next(),
                2 => dict.location_table[3].mapping_index = next(),
                3 => dict.location_table[1].lines[0].function_index = next(),
                4 => dict.function_table[1].name_strindex = next(),
                5 => profile.samples[0].attribute_indices = vec![next()],
                6 => dict.attribute_table[2].key_strindex = next(),
                _ => profile.sample_type.as_mut().unwrap().unit_strindex = next(),
            }
            let out = convert(&request);
            assert_eq!(out.profiles.len() + out.rejected.len(), 1);
            for c in &out.profiles {
                c.profile.index().unwrap();
            }
        }
    }

    #[test]
    fn names_follow_the_documented_rule() {
        assert_eq!(profile_name("samples", "cpu"), "process_cpu");
        assert_eq!(profile_name("alloc_space", ""), "memory");
        assert_eq!(profile_name("inuse_objects", "space"), "memory");
        assert_eq!(profile_name("goroutines", ""), "goroutine");
        assert_eq!(profile_name("samples", "wall"), "wall");
        assert_eq!(profile_name("off.cpu", "events"), "off_cpu");
    }
}
