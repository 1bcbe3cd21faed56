//! speedscope's JSON file format (<https://www.speedscope.app/file-format-schema.json>), as
//! py-spy, rbspy and others write it, turned into one [`Profile`].
//!
//! Both profile kinds are read: `sampled` (stacks of frame indexes, root first, with a
//! weight each) and `evented` (open/close events; the time between two events goes to the
//! stack open in between). All profiles of a file are merged; when there are several, each
//! sample carries a `profile_name` string label with its profile's `name`. Weights in time
//! units become nanoseconds; profiles in different kinds of unit (time, none, bytes) get a
//! sample type each.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{Profile, builder::ProfileBuilder};

/// The schema URL every speedscope file names.
pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

/// The deepest stack accepted.
pub const MAX_DEPTH: usize = 4096;

/// The most frames all emitted stacks may hold together (bounds the work of evented
/// profiles, whose stacks are rebuilt from a tree).
pub const MAX_FRAMES: usize = 1 << 24;

/// The sample label naming a sample's profile when a file holds several.
pub const PROFILE_NAME_LABEL: &str = "profile_name";

/// Why a speedscope file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpeedscopeError {
    /// Not JSON of the file format's shape.
    #[error("invalid speedscope JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `$schema` is missing or another one.
    #[error("$schema is {0:?}; a speedscope file has {SCHEMA:?}")]
    Schema(String),
    /// A unit speedscope does not define.
    #[error("profiles[{profile}]: unknown unit {unit:?}")]
    Unit {
        /// The profile's position.
        profile: usize,
        /// The unit given.
        unit: String,
    },
    /// Anything else wrong in one profile.
    #[error("profiles[{profile}]: {detail}")]
    Profile {
        /// The profile's position.
        profile: usize,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(rename = "$schema", default)]
    schema: String,
    #[serde(default)]
    shared: Shared,
    #[serde(default)]
    profiles: Vec<SpeedProfile>,
}

#[derive(Debug, Default, Deserialize)]
struct Shared {
    #[serde(default)]
    frames: Vec<Frame>,
}

#[derive(Debug, Deserialize)]
struct Frame {
    name: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum SpeedProfile {
    Sampled {
        #[serde(default)]
        name: String,
        unit: String,
        samples: Vec<Vec<usize>>,
        weights: Vec<f64>,
    },
    Evented {
        #[serde(default)]
        name: String,
        unit: String,
        #[serde(rename = "startValue")]
        start_value: f64,
        events: Vec<Event>,
    },
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    at: f64,
    frame: usize,
}

/// The three kinds of unit, each stored as its own sample type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// nanoseconds … seconds, stored in nanoseconds.
    Time,
    /// `none`: a count.
    Count,
    /// `bytes`.
    Bytes,
}

/// The sample type (type, unit) each kind of unit becomes, chosen by the caller (e.g.
/// `cpu`/`nanoseconds` for a CPU profile).
#[derive(Debug, Clone, Copy)]
pub struct SampleTypes<'a> {
    /// For time units.
    pub time: (&'a str, &'a str),
    /// For `none`.
    pub count: (&'a str, &'a str),
    /// For `bytes`.
    pub bytes: (&'a str, &'a str),
}

/// Parses a speedscope file and merges its profiles into one [`Profile`] (no period or
/// time set; the caller adds them).
pub fn to_profile(json: &[u8], types: &SampleTypes<'_>) -> Result<Profile, SpeedscopeError> {
    let file: File = serde_json::from_slice(json)?;
    if file.schema != SCHEMA {
        return Err(SpeedscopeError::Schema(file.schema));
    }
    let mut kinds: Vec<UnitKind> = Vec::new();
    let mut scales = Vec::with_capacity(file.profiles.len());
    for (i, p) in file.profiles.iter().enumerate() {
        let (kind, scale) = unit_of(p.unit()).ok_or_else(|| SpeedscopeError::Unit {
            profile: i,
            unit: p.unit().to_owned(),
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        scales.push((kinds.iter().position(|k| *k == kind).unwrap_or(0), scale));
    }
    let sample_types: Vec<(&str, &str)> = kinds
        .iter()
        .map(|k| match k {
            UnitKind::Time => types.time,
            UnitKind::Count => types.count,
            UnitKind::Bytes => types.bytes,
        })
        .collect();
    let mut out = Emitter {
        builder: ProfileBuilder::new(&sample_types),
        frames: &file.shared.frames,
        locations: HashMap::new(),
        emitted: 0,
    };
    let several = file.profiles.len() > 1;
    for (i, (p, &(slot, scale))) in file.profiles.iter().zip(&scales).enumerate() {
        let label = several.then(|| p.name());
        let mut sink = Sink {
            out: &mut out,
            slot,
            scale,
            label,
            profile: i,
        };
        match p {
            SpeedProfile::Sampled {
                samples, weights, ..
            } => sink.sampled(samples, weights)?,
            SpeedProfile::Evented {
                start_value,
                events,
                ..
            } => sink.evented(*start_value, events)?,
        }
    }
    Ok(out.builder.finish())
}

impl SpeedProfile {
    fn unit(&self) -> &str {
        match self {
            SpeedProfile::Sampled { unit, .. } | SpeedProfile::Evented { unit, .. } => unit,
        }
    }

    fn name(&self) -> &str {
        match self {
            SpeedProfile::Sampled { name, .. } | SpeedProfile::Evented { name, .. } => name,
        }
    }
}

/// A unit's kind and the factor to its stored unit.
fn unit_of(unit: &str) -> Option<(UnitKind, f64)> {
    Some(match unit {
        "none" => (UnitKind::Count, 1.0),
        "nanoseconds" => (UnitKind::Time, 1.0),
        "microseconds" => (UnitKind::Time, 1e3),
        "milliseconds" => (UnitKind::Time, 1e6),
        "seconds" => (UnitKind::Time, 1e9),
        "bytes" => (UnitKind::Bytes, 1.0),
        _ => return None,
    })
}

/// The builder and the frame → location map shared by all profiles of a file.
struct Emitter<'f> {
    builder: ProfileBuilder,
    frames: &'f [Frame],
    locations: HashMap<usize, u64>,
    emitted: usize,
}

/// Adds one profile's samples to the [`Emitter`].
struct Sink<'e, 'f> {
    out: &'e mut Emitter<'f>,
    slot: usize,
    scale: f64,
    label: Option<&'f str>,
    profile: usize,
}

impl Sink<'_, '_> {
    fn error(&self, detail: String) -> SpeedscopeError {
        SpeedscopeError::Profile {
            profile: self.profile,
            detail,
        }
    }

    fn location(&mut self, frame: usize) -> Result<u64, SpeedscopeError> {
        if let Some(&id) = self.out.locations.get(&frame) {
            return Ok(id);
        }
        let Some(f) = self.out.frames.get(frame) else {
            return Err(self.error(format!(
                "frame {frame} does not exist (shared.frames has {})",
                self.out.frames.len()
            )));
        };
        let id = self.out.builder.location(
            &f.name,
            f.file.as_deref().unwrap_or(""),
            f.line.unwrap_or(0),
        );
        self.out.locations.insert(frame, id);
        Ok(id)
    }

    /// Adds `weight` (in the profile's unit) to a stack of location ids, leaf first.
    fn add(&mut self, leaf_first: &[u64], weight: f64) -> Result<(), SpeedscopeError> {
        if !weight.is_finite() || weight < 0.0 {
            return Err(self.error(format!("weight {weight} is not a non-negative number")));
        }
        let value = (weight * self.scale).round().min(i64::MAX as f64) as i64;
        if value == 0 {
            return Ok(());
        }
        self.out.emitted += leaf_first.len();
        if self.out.emitted > MAX_FRAMES {
            return Err(self.error(format!(
                "the stacks hold more than {MAX_FRAMES} frames in all"
            )));
        }
        let mut values = vec![0; self.out.builder.sample_types()];
        values[self.slot] = value;
        let labels: Vec<(&str, &str)> = self
            .label
            .map(|name| (PROFILE_NAME_LABEL, name))
            .into_iter()
            .collect();
        self.out.builder.add(leaf_first, &values, &labels);
        Ok(())
    }

    fn sampled(&mut self, samples: &[Vec<usize>], weights: &[f64]) -> Result<(), SpeedscopeError> {
        if samples.len() != weights.len() {
            return Err(self.error(format!(
                "{} samples but {} weights",
                samples.len(),
                weights.len()
            )));
        }
        let mut stack = Vec::new();
        for (sample, &weight) in samples.iter().zip(weights) {
            if sample.len() > MAX_DEPTH {
                return Err(self.error(format!("a stack is deeper than {MAX_DEPTH} frames")));
            }
            stack.clear();
            for &frame in sample.iter().rev() {
                stack.push(self.location(frame)?);
            }
            self.add(&stack, weight)?;
        }
        Ok(())
    }

    /// Open/close events: time goes to a tree of open stacks, then each node with time
    /// becomes one sample.
    fn evented(&mut self, start: f64, events: &[Event]) -> Result<(), SpeedscopeError> {
        // Node 0 is the root; each node is (parent, location, time).
        let mut nodes: Vec<(usize, u64, f64)> = vec![(0, 0, 0.0)];
        let mut children: HashMap<(usize, u64), usize> = HashMap::new();
        let mut open: Vec<(usize, usize)> = Vec::new(); // (frame, node)
        let mut last = start;
        for (i, ev) in events.iter().enumerate() {
            if !ev.at.is_finite() || ev.at < last {
                return Err(self.error(format!(
                    "events[{i}] at {} is before the previous event ({last})",
                    ev.at
                )));
            }
            let current = open.last().map_or(0, |&(_, node)| node);
            nodes[current].2 += ev.at - last;
            last = ev.at;
            match ev.kind.as_str() {
                "O" => {
                    if open.len() >= MAX_DEPTH {
                        return Err(
                            self.error(format!("a stack is deeper than {MAX_DEPTH} frames"))
                        );
                    }
                    let location = self.location(ev.frame)?;
                    let next = nodes.len();
                    let node = *children.entry((current, location)).or_insert(next);
                    if node == next {
                        nodes.push((current, location, 0.0));
                    }
                    open.push((ev.frame, node));
                }
                "C" => match open.pop() {
                    Some((frame, _)) if frame == ev.frame => {}
                    Some((frame, _)) => {
                        return Err(self.error(format!(
                            "events[{i}] closes frame {} but frame {frame} is open",
                            ev.frame
                        )));
                    }
                    None => {
                        return Err(self.error(format!(
                            "events[{i}] closes frame {} but no frame is open",
                            ev.frame
                        )));
                    }
                },
                other => {
                    return Err(self.error(format!(
                        "events[{i}] has type {other:?}; expected \"O\" or \"C\""
                    )));
                }
            }
        }
        let mut stack = Vec::new();
        for (n, &(_, _, time)) in nodes.iter().enumerate().skip(1) {
            if time <= 0.0 {
                continue;
            }
            stack.clear();
            let mut at = n;
            while at != 0 {
                stack.push(nodes[at].1);
                at = nodes[at].0;
            }
            self.add(&stack, time)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TYPES: SampleTypes<'static> = SampleTypes {
        time: ("cpu", "nanoseconds"),
        count: ("samples", "count"),
        bytes: ("space", "bytes"),
    };

    fn totals(p: &Profile) -> Vec<(String, Vec<i64>, String)> {
        let index = p.index().unwrap();
        p.sample
            .iter()
            .map(|s| {
                let names: Vec<&str> = index
                    .stack(s)
                    .map(|l| index.string(index.function(l.line[0].function_id).unwrap().name))
                    .collect();
                let label = s.label.first().map_or("", |l| index.string(l.str));
                (names.join("<"), s.value.clone(), label.to_owned())
            })
            .collect()
    }

    #[test]
    fn sampled_and_evented_profiles_merge_with_profile_names() {
        let file = json!({
            "$schema": SCHEMA,
            "shared": {"frames": [{"name": "main", "file": "m.py", "line": 3}, {"name": "work"}]},
            "profiles": [
                {"type": "sampled", "name": "thread 1", "unit": "milliseconds", "startValue": 0,
                 "endValue": 30, "samples": [[0, 1], [0], [0, 1]], "weights": [10, 5, 2.5]},
                {"type": "evented", "name": "thread 2", "unit": "seconds", "startValue": 1,
                 "endValue": 4, "events": [
                    {"type": "O", "frame": 0, "at": 1}, {"type": "O", "frame": 1, "at": 2},
                    {"type": "C", "frame": 1, "at": 3.5}, {"type": "C", "frame": 0, "at": 4}]}
            ]
        });
        let p = to_profile(file.to_string().as_bytes(), &TYPES).unwrap();
        let index = p.index().unwrap();
        assert_eq!(index.string(p.sample_type[0].ty), "cpu");
        assert_eq!(
            totals(&p),
            vec![
                ("work<main".into(), vec![12_500_000], "thread 1".into()),
                ("main".into(), vec![5_000_000], "thread 1".into()),
                ("main".into(), vec![1_500_000_000], "thread 2".into()),
                ("work<main".into(), vec![1_500_000_000], "thread 2".into()),
            ]
        );
    }

    #[test]
    fn one_profile_has_no_label_and_units_get_their_own_types() {
        let file = json!({"$schema": SCHEMA, "shared": {"frames": [{"name": "a"}]},
            "profiles": [{"type": "sampled", "unit": "none", "name": "x",
                "samples": [[0]], "weights": [3]}]});
        let p = to_profile(file.to_string().as_bytes(), &TYPES).unwrap();
        assert_eq!(totals(&p), vec![("a".into(), vec![3], String::new())]);
        let file = json!({"$schema": SCHEMA, "shared": {"frames": [{"name": "a"}]},
            "profiles": [
                {"type": "sampled", "unit": "bytes", "samples": [[0]], "weights": [3]},
                {"type": "sampled", "unit": "none", "samples": [[0]], "weights": [2]}]});
        let p = to_profile(file.to_string().as_bytes(), &TYPES).unwrap();
        assert_eq!(p.sample_type.len(), 2);
        // Same stack, same (empty) profile name: one sample with a value per type.
        assert_eq!(p.sample.len(), 1);
        assert_eq!(p.sample[0].value, vec![3, 2]);
    }

    #[test]
    fn bad_files_are_precise_errors() {
        let frames = json!({"frames": [{"name": "a"}]});
        let bad = [
            (json!({"profiles": []}), "$schema"),
            (
                json!({"$schema": SCHEMA, "shared": frames, "profiles": [
                {"type": "sampled", "unit": "none", "samples": [[1]], "weights": [1]}]}),
                "frame 1 does not exist",
            ),
            (
                json!({"$schema": SCHEMA, "shared": frames, "profiles": [
                {"type": "sampled", "unit": "none", "samples": [[0]], "weights": []}]}),
                "1 samples but 0 weights",
            ),
            (
                json!({"$schema": SCHEMA, "shared": frames, "profiles": [
                {"type": "sampled", "unit": "parsecs", "samples": [], "weights": []}]}),
                "unknown unit",
            ),
            (
                json!({"$schema": SCHEMA, "shared": frames, "profiles": [
                {"type": "evented", "unit": "none", "startValue": 0, "events": [
                    {"type": "C", "frame": 0, "at": 1}]}]}),
                "no frame is open",
            ),
            (
                json!({"$schema": SCHEMA, "shared": frames, "profiles": [
                {"type": "evented", "unit": "none", "startValue": 5, "events": [
                    {"type": "O", "frame": 0, "at": 1}]}]}),
                "before the previous event",
            ),
        ];
        for (file, expected) in bad {
            let err = to_profile(file.to_string().as_bytes(), &TYPES).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} !~ {expected}");
        }
        assert!(matches!(
            to_profile(b"{", &TYPES),
            Err(SpeedscopeError::Json(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = to_profile(&body, &TYPES);
        }

        #[test]
        fn sampled_weights_sum_to_the_total(
            samples in proptest::collection::vec(
                (proptest::collection::vec(0usize..4, 0..8), 0u32..10_000),
                0..40,
            )
        ) {
            let file = json!({"$schema": SCHEMA,
                "shared": {"frames": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]},
                "profiles": [{"type": "sampled", "unit": "microseconds",
                    "samples": samples.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
                    "weights": samples.iter().map(|(_, w)| *w).collect::<Vec<_>>()}]});
            let p = to_profile(file.to_string().as_bytes(), &TYPES).unwrap();
            p.validate().unwrap();
            let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
            let want: i64 = samples.iter().map(|(_, w)| i64::from(*w) * 1000).sum();
            proptest::prop_assert_eq!(total, want);
        }

        #[test]
        fn evented_time_is_the_span_of_the_outermost_frames(
            spans in proptest::collection::vec((0usize..3, 1u32..1000, 0u32..1000), 0..20)
        ) {
            // Each span opens a frame at `at`, keeps it `len` ms, then idles `gap` ms.
            let mut events = Vec::new();
            let mut at = 0u64;
            let mut open_time = 0u64;
            for (frame, len, gap) in &spans {
                events.push(json!({"type": "O", "frame": frame, "at": at}));
                at += u64::from(*len);
                open_time += u64::from(*len);
                events.push(json!({"type": "C", "frame": frame, "at": at}));
                at += u64::from(*gap);
            }
            let file = json!({"$schema": SCHEMA,
                "shared": {"frames": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
                "profiles": [{"type": "evented", "unit": "milliseconds", "startValue": 0,
                    "endValue": at, "events": events}]});
            let p = to_profile(file.to_string().as_bytes(), &TYPES).unwrap();
            let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
            proptest::prop_assert_eq!(total as u64, open_time * 1_000_000);
        }
    }
}
