//! Cumulative counters become deltas at scrape time, as Pyroscope's scraper does.
//!
//! Go reports some sample types as totals since the process started: `alloc_objects` and
//! `alloc_space` of the heap/allocs profile, and `contentions`/`delay` of the block and
//! mutex profiles. Stored as they are, a range would sum the same allocations again and
//! again. So each scrape loop keeps the previous scrape's counters, keyed by stack (and
//! sample labels), and stores the difference, marked delta, over the time between the two
//! scrapes. The first scrape only sets the baseline and stores nothing of those types; a
//! counter going down means the target restarted, and the scrape becomes the new baseline
//! (nothing stored for it either).
//!
//! The other sample types of the same profile (`inuse_objects`, `inuse_space`) are split
//! off and stored as snapshots; goroutine and other profiles without counters stay
//! snapshots whole. CPU profiles (period type `cpu`) and endpoints asked for a delta
//! (`?seconds=N`) are deltas already and pass through.

use std::collections::{HashMap, HashSet};

use proto::{Profile, Sample};

use crate::config::file::SampleTypeFilter;
use xxhash_rust::xxh3::Xxh3;

/// Sample types that Go reports cumulatively.
pub(crate) const CUMULATIVE_TYPES: &[&str] =
    &["alloc_objects", "alloc_space", "contentions", "delay"];

/// One profile to store, and whether it holds deltas.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) profile: Profile,
    pub(crate) delta: bool,
}

/// What a scrape loop remembers between two scrapes.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    /// (type, unit) of the cumulative sample types, in order.
    types: Vec<(Vec<u8>, Vec<u8>)>,
    time_nanos: i64,
    values: HashMap<u64, Vec<i64>>,
}

/// How a conversion went, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// No cumulative types in this profile.
    NotCumulative,
    /// First scrape: the baseline was set, no delta stored.
    First,
    /// Counters went down (the target restarted): new baseline, no delta stored.
    Reset,
    /// A delta against the previous scrape.
    Delta,
}

/// Splits a validated, scraped profile into the parts to store.
///
/// `endpoint_delta`: the endpoint already produced a delta (`?seconds=N`). `now_nanos`
/// stands in for a missing `time_nanos`.
pub(crate) fn convert(
    profile: Profile,
    endpoint_delta: bool,
    state: &mut DeltaState,
    now_nanos: i64,
) -> (Vec<Part>, Baseline) {
    if endpoint_delta {
        return (
            vec![Part {
                profile,
                delta: true,
            }],
            Baseline::NotCumulative,
        );
    }
    let is_cumulative: Vec<bool> = profile
        .sample_type
        .iter()
        .map(|st| {
            CUMULATIVE_TYPES
                .iter()
                .any(|t| t.as_bytes() == string(&profile, st.ty))
        })
        .collect();
    if !is_cumulative.contains(&true) {
        let delta = is_cpu(&profile);
        let mut profile = profile;
        if !delta {
            profile.duration_nanos = 0;
        }
        return (vec![Part { profile, delta }], Baseline::NotCumulative);
    }
    let cumulative: Vec<usize> = (0..is_cumulative.len())
        .filter(|&i| is_cumulative[i])
        .collect();
    let snapshot: Vec<usize> = (0..is_cumulative.len())
        .filter(|&i| !is_cumulative[i])
        .collect();
    let time = if profile.time_nanos > 0 {
        profile.time_nanos
    } else {
        now_nanos
    };
    let types: Vec<(Vec<u8>, Vec<u8>)> = cumulative
        .iter()
        .map(|&i| {
            let st = &profile.sample_type[i];
            (
                string(&profile, st.ty).to_vec(),
                string(&profile, st.unit).to_vec(),
            )
        })
        .collect();
    let keys = sample_keys(&profile);
    let mut current: HashMap<u64, Vec<i64>> = HashMap::with_capacity(keys.len());
    for (sample, key) in profile.sample.iter().zip(&keys) {
        let sums = current
            .entry(*key)
            .or_insert_with(|| vec![0; cumulative.len()]);
        for (sum, &i) in sums.iter_mut().zip(&cumulative) {
            *sum = sum.saturating_add(sample.value.get(i).copied().unwrap_or(0));
        }
    }

    let mut parts = Vec::with_capacity(2);
    let previous = state
        .previous
        .take()
        .filter(|p| p.types == types && p.time_nanos < time);
    let outcome = match previous {
        None => Baseline::First,
        Some(prev) if went_down(&prev.values, &current) => Baseline::Reset,
        Some(prev) => {
            let mut delta = select(&profile, &cumulative);
            let mut seen = HashSet::with_capacity(keys.len());
            delta.sample = std::mem::take(&mut delta.sample)
                .into_iter()
                .zip(&keys)
                .filter_map(|(mut sample, key)| {
                    if !seen.insert(*key) {
                        return None;
                    }
                    let before = prev.values.get(key);
                    sample.value = current[key]
                        .iter()
                        .enumerate()
                        .map(|(i, now)| now - before.map_or(0, |b| b[i]))
                        .collect();
                    sample.value.iter().any(|v| *v != 0).then_some(sample)
                })
                .collect();
            delta.time_nanos = time;
            delta.duration_nanos = time - prev.time_nanos;
            parts.push(Part {
                profile: delta,
                delta: true,
            });
            Baseline::Delta
        }
    };
    state.previous = Some(Previous {
        types,
        time_nanos: time,
        values: current,
    });
    if !snapshot.is_empty() {
        let mut snap = select(&profile, &snapshot);
        snap.time_nanos = time;
        snap.duration_nanos = 0;
        parts.push(Part {
            profile: snap,
            delta: false,
        });
    }
    (parts, outcome)
}

/// Splits a profile whose counters are deltas already (a Pyroscope SDK's, pushed with
/// `__delta__="false"`): the counter types (`alloc_*`, `contentions`, `delay`) are one
/// delta part, the other types (`inuse_*`) a snapshot part. A profile without counters is
/// a delta when it is CPU or has a duration, else a snapshot.
pub(crate) fn split_deltas(profile: Profile) -> Vec<Part> {
    let (counters, rest): (Vec<usize>, Vec<usize>) =
        (0..profile.sample_type.len()).partition(|&i| {
            let ty = string(&profile, profile.sample_type[i].ty);
            CUMULATIVE_TYPES.iter().any(|t| t.as_bytes() == ty)
        });
    if counters.is_empty() {
        let delta = is_cpu(&profile) || profile.duration_nanos != 0;
        return vec![Part { profile, delta }];
    }
    if rest.is_empty() {
        return vec![Part {
            profile,
            delta: true,
        }];
    }
    let mut snapshot = select(&profile, &rest);
    snapshot.duration_nanos = 0;
    vec![
        Part {
            profile: select(&profile, &counters),
            delta: true,
        },
        Part {
            profile: snapshot,
            delta: false,
        },
    ]
}

/// Whether any counter is lower than in the previous scrape.
fn went_down(previous: &HashMap<u64, Vec<i64>>, current: &HashMap<u64, Vec<i64>>) -> bool {
    current.iter().any(|(key, now)| {
        previous
            .get(key)
            .is_some_and(|before| now.iter().zip(before).any(|(n, b)| n < b))
    })
}

/// A CPU profile is a delta over its duration by nature.
fn is_cpu(profile: &Profile) -> bool {
    profile
        .period_type
        .as_ref()
        .is_some_and(|p| string(profile, p.ty) == b"cpu")
}

fn string(profile: &Profile, index: i64) -> &[u8] {
    usize::try_from(index)
        .ok()
        .and_then(|i| profile.string_table.get(i))
        .map_or(&[], Vec::as_slice)
}

/// A copy of `profile` with only the sample types `keep` names (`keep_sample_type`).
pub(crate) fn keep_sample_types(profile: &Profile, keep: &[SampleTypeFilter]) -> Profile {
    let indexes: Vec<usize> = profile
        .sample_type
        .iter()
        .enumerate()
        .filter(|(_, st)| {
            keep.iter().any(|k| {
                k.ty.as_bytes() == string(profile, st.ty)
                    && (k.unit.is_empty() || k.unit.as_bytes() == string(profile, st.unit))
            })
        })
        .map(|(i, _)| i)
        .collect();
    let mut kept = select(profile, &indexes);
    kept.sample.retain(|s| s.value.iter().any(|v| *v != 0));
    kept
}

/// A copy of `profile` with only the sample types at `indexes`; samples keep their order.
fn select(profile: &Profile, indexes: &[usize]) -> Profile {
    Profile {
        sample_type: indexes.iter().map(|&i| profile.sample_type[i]).collect(),
        sample: profile
            .sample
            .iter()
            .map(|s| Sample {
                location_id: s.location_id.clone(),
                value: indexes
                    .iter()
                    .map(|&i| s.value.get(i).copied().unwrap_or(0))
                    .collect(),
                label: s.label.clone(),
            })
            .collect(),
        mapping: profile.mapping.clone(),
        location: profile.location.clone(),
        function: profile.function.clone(),
        string_table: profile.string_table.clone(),
        comment: profile.comment.clone(),
        drop_frames: profile.drop_frames,
        keep_frames: profile.keep_frames,
        time_nanos: profile.time_nanos,
        duration_nanos: profile.duration_nanos,
        period_type: profile.period_type,
        period: profile.period,
        default_sample_type: profile.default_sample_type,
        doc_url: profile.doc_url,
    }
}

/// A content key per sample: its frames (function names, files, lines; the address of an
/// unsymbolized frame) and its labels. Location ids are renumbered by every Go profile,
/// so they cannot be the key.
fn sample_keys(profile: &Profile) -> Vec<u64> {
    let functions: HashMap<u64, &proto::Function> =
        profile.function.iter().map(|f| (f.id, f)).collect();
    let mappings: HashMap<u64, &proto::Mapping> =
        profile.mapping.iter().map(|m| (m.id, m)).collect();
    let locations: HashMap<u64, u64> = profile
        .location
        .iter()
        .map(|loc| {
            let mut h = Xxh3::new();
            if loc.line.is_empty() {
                h.update(&loc.address.to_le_bytes());
                if let Some(m) = mappings.get(&loc.mapping_id) {
                    h.update(string(profile, m.filename));
                }
            }
            for line in &loc.line {
                if let Some(f) = functions.get(&line.function_id) {
                    h.update(string(profile, f.name));
                    h.update(&[0]);
                    h.update(string(profile, f.filename));
                    h.update(&[0]);
                }
                h.update(&line.line.to_le_bytes());
            }
            (loc.id, h.digest())
        })
        .collect();
    profile
        .sample
        .iter()
        .map(|sample| {
            let mut h = Xxh3::new();
            for id in &sample.location_id {
                h.update(&locations.get(id).copied().unwrap_or(0).to_le_bytes());
            }
            h.update(&[0xff]);
            // (key, string value, number, unit) of each label.
            type LabelKey<'a> = (&'a [u8], &'a [u8], i64, &'a [u8]);
            let mut labels: Vec<LabelKey<'_>> = sample
                .label
                .iter()
                .map(|l| {
                    (
                        string(profile, l.key),
                        string(profile, l.str),
                        l.num,
                        string(profile, l.num_unit),
                    )
                })
                .collect();
            labels.sort_unstable();
            for (key, value, num, unit) in labels {
                h.update(key);
                h.update(&[0]);
                h.update(value);
                h.update(&[0]);
                h.update(&num.to_le_bytes());
                h.update(unit);
                h.update(&[0]);
            }
            h.digest()
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use proto::{Function, Line, Location, ValueType};

    use super::*;

    /// A Go-like allocs profile: stacks (leaf first) with cumulative alloc values and
    /// in-use values. Location ids are shuffled by `id_offset` as Go renumbers them.
    pub(crate) fn heap_profile(
        stacks: &[(&[&str], i64, i64)],
        id_offset: u64,
        time_nanos: i64,
    ) -> Profile {
        let mut strings: Vec<String> = [
            "",
            "alloc_objects",
            "count",
            "alloc_space",
            "bytes",
            "inuse_objects",
            "inuse_space",
            "space",
            "main.go",
        ]
        .map(String::from)
        .to_vec();
        let mut function = Vec::new();
        let mut location = Vec::new();
        let mut ids = HashMap::new();
        let mut sample = Vec::new();
        for (frames, alloc, inuse) in stacks {
            let mut location_id = Vec::new();
            for name in *frames {
                let id = *ids.entry(name.to_string()).or_insert_with(|| {
                    strings.push(name.to_string());
                    let id = function.len() as u64 + 1 + id_offset;
                    function.push(Function {
                        id,
                        name: strings.len() as i64 - 1,
                        filename: 8,
                        ..Default::default()
                    });
                    location.push(Location {
                        id,
                        line: vec![Line {
                            function_id: id,
                            line: 7,
                            column: 0,
                        }],
                        ..Default::default()
                    });
                    id
                });
                location_id.push(id);
            }
            sample.push(Sample {
                location_id,
                value: vec![*alloc, alloc * 100, *inuse, inuse * 100],
                label: Vec::new(),
            });
        }
        Profile {
            sample_type: vec![
                ValueType { ty: 1, unit: 2 },
                ValueType { ty: 3, unit: 4 },
                ValueType { ty: 5, unit: 2 },
                ValueType { ty: 6, unit: 4 },
            ],
            sample,
            location,
            function,
            string_table: strings.into_iter().map(String::into_bytes).collect(),
            time_nanos,
            duration_nanos: 12_345,
            period_type: Some(ValueType { ty: 7, unit: 4 }),
            period: 524_288,
            ..Default::default()
        }
    }

    fn values(profile: &Profile) -> Vec<(String, Vec<i64>)> {
        let mut out: Vec<(String, Vec<i64>)> = profile
            .sample
            .iter()
            .map(|s| {
                let f = profile
                    .function
                    .iter()
                    .find(|f| f.id == s.location_id[0])
                    .unwrap();
                (
                    String::from_utf8(profile.string_table[f.name as usize].clone()).unwrap(),
                    s.value.clone(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn type_names(profile: &Profile) -> Vec<String> {
        profile
            .sample_type
            .iter()
            .map(|st| String::from_utf8(profile.string_table[st.ty as usize].clone()).unwrap())
            .collect()
    }

    #[test]
    fn allocs_become_deltas_and_inuse_stays_a_snapshot() {
        let mut state = DeltaState::default();
        let first = heap_profile(&[(&["a", "main"], 10, 3), (&["b", "main"], 5, 1)], 0, 1_000);
        let (parts, outcome) = convert(first, false, &mut state, 0);
        assert_eq!(outcome, Baseline::First);
        assert_eq!(
            parts.len(),
            1,
            "only the in-use snapshot on the first scrape"
        );
        assert!(!parts[0].delta);
        assert_eq!(
            type_names(&parts[0].profile),
            ["inuse_objects", "inuse_space"]
        );
        assert_eq!(parts[0].profile.duration_nanos, 0);

        // Same stacks, other location ids, a new stack.
        let second = heap_profile(
            &[
                (&["b", "main"], 5, 2),
                (&["a", "main"], 25, 4),
                (&["c", "main"], 2, 0),
            ],
            100,
            3_000,
        );
        let (parts, outcome) = convert(second, false, &mut state, 0);
        assert_eq!(outcome, Baseline::Delta);
        let delta = parts.iter().find(|p| p.delta).unwrap();
        assert_eq!(type_names(&delta.profile), ["alloc_objects", "alloc_space"]);
        assert_eq!(
            values(&delta.profile),
            [("a".into(), vec![15, 1500]), ("c".into(), vec![2, 200])],
            "b did not grow, so it is not stored"
        );
        assert_eq!(delta.profile.time_nanos, 3_000);
        assert_eq!(delta.profile.duration_nanos, 2_000);
        let snap = parts.iter().find(|p| !p.delta).unwrap();
        assert_eq!(
            values(&snap.profile),
            [
                ("a".into(), vec![4, 400]),
                ("b".into(), vec![2, 200]),
                ("c".into(), vec![0, 0])
            ]
        );
    }

    #[test]
    fn counters_going_down_start_over() {
        let mut state = DeltaState::default();
        convert(heap_profile(&[(&["a"], 10, 0)], 0, 1), false, &mut state, 0);
        let (parts, outcome) = convert(heap_profile(&[(&["a"], 4, 0)], 0, 2), false, &mut state, 0);
        assert_eq!(outcome, Baseline::Reset);
        assert!(parts.iter().all(|p| !p.delta));
        let (parts, outcome) = convert(heap_profile(&[(&["a"], 9, 0)], 0, 3), false, &mut state, 0);
        assert_eq!(outcome, Baseline::Delta);
        let delta = parts.iter().find(|p| p.delta).unwrap();
        assert_eq!(values(&delta.profile), [("a".into(), vec![5, 500])]);
    }

    #[test]
    fn deltas_over_three_scrapes_sum_to_the_growth() {
        let mut state = DeltaState::default();
        let scrapes = [(10, 5), (25, 5), (45, 20)];
        let mut sums: HashMap<String, i64> = HashMap::new();
        for (i, (a, b)) in scrapes.iter().enumerate() {
            let p = heap_profile(
                &[(&["a"], *a, 0), (&["b"], *b, 0)],
                i as u64 * 7,
                i as i64 + 1,
            );
            for part in convert(p, false, &mut state, 0)
                .0
                .into_iter()
                .filter(|p| p.delta)
            {
                for (name, v) in values(&part.profile) {
                    *sums.entry(name).or_default() += v[0];
                }
            }
        }
        assert_eq!(sums["a"], 35);
        assert_eq!(sums["b"], 15);
    }

    #[test]
    fn cpu_and_endpoint_deltas_pass_through_and_snapshots_lose_their_duration() {
        let mut state = DeltaState::default();
        let mut cpu = heap_profile(&[(&["a"], 1, 1)], 0, 1);
        cpu.string_table[1] = b"samples".to_vec();
        cpu.string_table[3] = b"cpu".to_vec();
        cpu.string_table[5] = b"x".to_vec();
        cpu.string_table[6] = b"y".to_vec();
        cpu.period_type = Some(ValueType { ty: 3, unit: 4 });
        let (parts, _) = convert(cpu.clone(), false, &mut state, 0);
        assert!(parts[0].delta);
        assert_eq!(parts[0].profile.duration_nanos, 12_345);

        let (parts, _) = convert(heap_profile(&[(&["a"], 1, 1)], 0, 1), true, &mut state, 0);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].delta);

        let mut goroutine = cpu;
        goroutine.period_type = Some(ValueType { ty: 5, unit: 2 });
        let (parts, _) = convert(goroutine, false, &mut state, 0);
        assert!(!parts[0].delta);
        assert_eq!(parts[0].profile.duration_nanos, 0);
    }

    #[test]
    fn already_delta_profiles_split_counters_from_snapshots() {
        let heap = heap_profile(&[(&["a", "main"], 10, 3)], 0, 1_000);
        let parts = split_deltas(heap);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].delta && !parts[1].delta);
        assert_eq!(
            type_names(&parts[0].profile),
            ["alloc_objects", "alloc_space"]
        );
        assert_eq!(
            type_names(&parts[1].profile),
            ["inuse_objects", "inuse_space"]
        );
        assert_eq!(
            values(&parts[0].profile),
            [("a".to_owned(), vec![10, 1000])]
        );
        assert_eq!(parts[1].profile.duration_nanos, 0);

        let mut goroutine = heap_profile(&[(&["a"], 1, 1)], 0, 1);
        goroutine.string_table[1] = b"goroutine".to_vec();
        goroutine.string_table[3] = b"x".to_vec();
        goroutine.duration_nanos = 0;
        goroutine.period_type = None;
        let parts = split_deltas(goroutine);
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].delta);
    }
}
