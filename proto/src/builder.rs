//! Building a [`Profile`] from stacks of frame names, for the formats that carry no pprof
//! of their own (folded text, speedscope): strings, functions and locations are interned,
//! and identical (stack, labels) pairs are merged into one sample.

use std::collections::HashMap;

use crate::{Function, Label, Line, Location, Profile, Sample, ValueType};

/// Accumulates samples and interns their frames; [`ProfileBuilder::finish`] gives a
/// profile that passes [`Profile::validate`].
#[derive(Debug)]
pub struct ProfileBuilder {
    profile: Profile,
    strings: HashMap<Vec<u8>, i64>,
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<(u64, i64), u64>,
    samples: HashMap<SampleKey, usize>,
}

/// A sample's identity: its location ids (leaf first) and (key, value) string labels.
type SampleKey = (Vec<u64>, Vec<(i64, i64)>);

impl ProfileBuilder {
    /// A builder for a profile with these `(type, unit)` sample types.
    pub fn new(sample_types: &[(&str, &str)]) -> Self {
        let mut builder = ProfileBuilder {
            profile: Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
            samples: HashMap::new(),
        };
        builder.string("");
        for (ty, unit) in sample_types {
            let vt = ValueType {
                ty: builder.string(ty),
                unit: builder.string(unit),
            };
            builder.profile.sample_type.push(vt);
        }
        builder
    }

    /// Number of sample types, i.e. the length every `values` passed to [`Self::add`] has.
    pub fn sample_types(&self) -> usize {
        self.profile.sample_type.len()
    }

    /// Sets the period type and period.
    pub fn period(&mut self, ty: &str, unit: &str, period: i64) -> &mut Self {
        self.profile.period_type = Some(ValueType {
            ty: self.string(ty),
            unit: self.string(unit),
        });
        self.profile.period = period;
        self
    }

    /// Sets the profile's time and duration (nanoseconds).
    pub fn time(&mut self, time_nanos: i64, duration_nanos: i64) -> &mut Self {
        self.profile.time_nanos = time_nanos;
        self.profile.duration_nanos = duration_nanos;
        self
    }

    /// The index of `s` in the string table, adding it when new.
    pub fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s.as_bytes()) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.as_bytes().to_vec());
        self.strings.insert(s.as_bytes().to_vec(), i);
        i
    }

    /// The location id of a frame (function `name` in `file` at `line`; `file` may be
    /// empty, `line` 0).
    pub fn location(&mut self, name: &str, file: &str, line: i64) -> u64 {
        let key = (self.string(name), self.string(file));
        let next = self.profile.function.len() as u64 + 1;
        let function = *self.functions.entry(key).or_insert(next);
        if function == next {
            self.profile.function.push(Function {
                id: function,
                name: key.0,
                system_name: key.0,
                filename: key.1,
                start_line: 0,
            });
        }
        let next = self.profile.location.len() as u64 + 1;
        let location = *self.locations.entry((function, line)).or_insert(next);
        if location == next {
            self.profile.location.push(Location {
                id: location,
                line: vec![Line {
                    function_id: function,
                    line,
                    column: 0,
                }],
                ..Location::default()
            });
        }
        location
    }

    /// Adds `values` (one per sample type) to the sample of this stack (location ids, leaf
    /// first) and string labels; identical stacks and labels are summed.
    ///
    /// # Panics
    /// When `values` does not have one entry per sample type (a caller bug).
    pub fn add(&mut self, leaf_first: &[u64], values: &[i64], labels: &[(&str, &str)]) {
        assert_eq!(
            values.len(),
            self.sample_types(),
            "one value per sample type"
        );
        let labels: Vec<(i64, i64)> = labels
            .iter()
            .map(|(k, v)| (self.string(k), self.string(v)))
            .collect();
        let key = (leaf_first.to_vec(), labels);
        if let Some(&i) = self.samples.get(&key) {
            let sample = &mut self.profile.sample[i];
            for (sum, v) in sample.value.iter_mut().zip(values) {
                *sum = sum.saturating_add(*v);
            }
            return;
        }
        self.samples.insert(key.clone(), self.profile.sample.len());
        self.profile.sample.push(Sample {
            location_id: key.0,
            value: values.to_vec(),
            label: key
                .1
                .iter()
                .map(|&(key, str)| Label {
                    key,
                    str,
                    ..Label::default()
                })
                .collect(),
        });
    }

    /// The finished profile.
    pub fn finish(self) -> Profile {
        self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_interned_and_same_stacks_merged() {
        let mut b = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")]);
        b.period("cpu", "nanoseconds", 10_000_000);
        let main = b.location("main", "", 0);
        let work = b.location("work", "w.go", 3);
        assert_eq!(b.location("main", "", 0), main);
        b.add(&[work, main], &[1, 10], &[]);
        b.add(&[work, main], &[2, 20], &[]);
        b.add(&[work, main], &[1, 10], &[("thread", "t1")]);
        b.add(&[main], &[4, 40], &[]);
        let p = b.finish();
        let index = p.index().unwrap();
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.sample[0].value, vec![3, 30]);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.location.len(), 2);
        assert_eq!(index.string(p.sample[1].label[0].str), "t1");
        assert_eq!(index.string(p.function[1].filename), "w.go");
        assert_eq!(p.period, 10_000_000);
    }
}
