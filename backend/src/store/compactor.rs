//! Compaction and retention *policy*: which parts to merge and which to delete. The store
//! carries the plans out (see `Store::compact` and `Store::enforce_retention`).
//!
//! Levels are aligned window lengths, each a whole multiple of the one below it: the block
//! window (level 0, default 2h), then ×12 (1d), then ×7 (1w), keeping only those no longer
//! than 10% of the retention (so expired data leaves within that much of its expiry). Rules:
//! - parts of one type in the same level-0 window are merged once that window is closed, or
//!   earlier when it has `min_parts` of them;
//! - once a higher-level window is closed, all the parts of one type inside it are merged
//!   into one part of that level, if their total size stays under `max_bytes`;
//! - nothing is ever merged across windows, nor just because it is small;
//! - a part is deleted once its window ended more than the retention ago.

use std::{collections::BTreeMap, time::Duration};

use super::part::{PartMeta, Window};

/// Factors from one level to the next: 2h → 1d → 1w with the default block window.
const LEVEL_FACTORS: [i64; 2] = [12, 7];
/// The shortest block window.
const MIN_WINDOW_MS: i64 = 1000;

/// Compaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Window lengths (ms) of the levels, level 0 first.
    pub levels: Vec<i64>,
    /// Parts of an open level-0 window that trigger a merge.
    pub min_parts: usize,
    /// Largest total input of one merge.
    pub max_bytes: u64,
    /// A window counts as closed this long (ms) after its end.
    pub grace_ms: i64,
}

impl Policy {
    /// The levels for a block window and retention (zero: keep everything), see the module
    /// docs. Level 0 is the block window, shortened to 10% of the retention if longer.
    pub fn new(
        block_window: Duration,
        retention: Duration,
        min_parts: usize,
        max_bytes: u64,
        flush_age: Duration,
    ) -> Policy {
        let cap = (!retention.is_zero()).then_some(retention.as_millis() as i64 / 10);
        let mut l0 = block_window.as_millis() as i64;
        if let Some(cap) = cap {
            l0 = l0.min(cap);
        }
        let l0 = l0.max(MIN_WINDOW_MS);
        let mut levels = vec![l0];
        for factor in LEVEL_FACTORS {
            let next = levels[levels.len() - 1] * factor;
            if cap.is_some_and(|cap| next > cap) {
                break;
            }
            levels.push(next);
        }
        Policy {
            levels,
            min_parts: min_parts.max(2),
            max_bytes,
            grace_ms: (flush_age.as_millis() as i64).min(l0),
        }
    }

    /// The level-0 (block) window length.
    pub fn block_window(&self) -> i64 {
        self.levels[0]
    }

    fn closed(&self, window: &Window, now: i64) -> bool {
        window.end().saturating_add(self.grace_ms) <= now
    }
}

/// One merge: these parts of one type become one part covering `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub profile_type: String,
    pub window: Window,
    pub inputs: Vec<PartMeta>,
}

/// The merges due now, disjoint from each other.
pub fn plan(parts: &[PartMeta], policy: &Policy, now: i64) -> Vec<Plan> {
    let mut by_type: BTreeMap<&str, Vec<&PartMeta>> = BTreeMap::new();
    for part in parts {
        by_type.entry(&part.profile_type).or_default().push(part);
    }
    let mut plans = Vec::new();
    for (profile_type, mut parts) in by_type {
        for &len in policy.levels[1..].iter().rev() {
            plans.extend(plan_level(profile_type, &mut parts, len, policy, now));
        }
        plans.extend(plan_level_zero(profile_type, &parts, policy, now));
    }
    plans
}

/// Merges of whole closed windows of length `len`; their inputs leave `parts`.
fn plan_level(
    profile_type: &str,
    parts: &mut Vec<&PartMeta>,
    len: i64,
    policy: &Policy,
    now: i64,
) -> Vec<Plan> {
    let mut groups: BTreeMap<Window, Vec<&PartMeta>> = BTreeMap::new();
    for &part in parts.iter() {
        let window = Window::of(part.window.start, len);
        if window.contains(&part.window) {
            groups.entry(window).or_default().push(part);
        }
    }
    let mut plans = Vec::new();
    for (window, inputs) in groups {
        let bytes: u64 = inputs.iter().map(|p| p.bytes).sum();
        if inputs.len() < 2 || bytes > policy.max_bytes || !policy.closed(&window, now) {
            continue;
        }
        parts.retain(|p| !inputs.iter().any(|i| i.file == p.file));
        plans.push(Plan {
            profile_type: profile_type.to_owned(),
            window,
            inputs: inputs.into_iter().cloned().collect(),
        });
    }
    plans
}

/// Merges inside level-0 windows: closed ones, or open ones with `min_parts` parts; the
/// smallest parts first, up to `max_bytes`.
fn plan_level_zero(
    profile_type: &str,
    parts: &[&PartMeta],
    policy: &Policy,
    now: i64,
) -> Vec<Plan> {
    let len = policy.block_window();
    let mut groups: BTreeMap<Window, Vec<&PartMeta>> = BTreeMap::new();
    for part in parts.iter().filter(|p| p.window.len == len) {
        groups.entry(part.window).or_default().push(part);
    }
    let mut plans = Vec::new();
    for (window, mut group) in groups {
        if group.len() < 2 || (group.len() < policy.min_parts && !policy.closed(&window, now)) {
            continue;
        }
        group.sort_by_key(|p| p.bytes);
        let mut bytes = 0;
        let inputs: Vec<PartMeta> = group
            .into_iter()
            .take_while(|p| {
                bytes += p.bytes;
                bytes <= policy.max_bytes
            })
            .cloned()
            .collect();
        if inputs.len() >= 2 {
            plans.push(Plan {
                profile_type: profile_type.to_owned(),
                window,
                inputs,
            });
        }
    }
    plans
}

/// Parts whose window ended more than `retention` before `now` (none for zero retention).
pub fn expired(parts: &[PartMeta], retention: Duration, now: i64) -> Vec<PartMeta> {
    if retention.is_zero() {
        return Vec::new();
    }
    let cutoff = now.saturating_sub(retention.as_millis() as i64);
    parts
        .iter()
        .filter(|p| p.window.end() <= cutoff)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn part(name: &str, ty: &str, start: i64, len: i64, bytes: u64) -> PartMeta {
        PartMeta {
            file: name.into(),
            profile_type: ty.into(),
            window: Window { start, len },
            min_ts: start,
            max_ts: start + len - 1,
            rows: 1,
            bytes,
            wal_upto: 0,
        }
    }

    fn policy() -> Policy {
        Policy::new(
            Duration::from_secs(2 * 3600),
            Duration::from_secs(15 * 86_400),
            4,
            1 << 30,
            Duration::from_secs(600),
        )
    }

    fn files(plan: &Plan) -> Vec<&str> {
        let mut f: Vec<&str> = plan.inputs.iter().map(|p| p.file.as_str()).collect();
        f.sort();
        f
    }

    #[test]
    fn levels_stop_at_a_tenth_of_the_retention() {
        assert_eq!(policy().levels, vec![2 * H, 24 * H]);
        let keep_all = Policy::new(
            Duration::from_secs(7200),
            Duration::ZERO,
            4,
            1,
            Duration::ZERO,
        );
        assert_eq!(keep_all.levels, vec![2 * H, 24 * H, 168 * H]);
        let short = Policy::new(
            Duration::from_secs(7200),
            Duration::from_secs(3600),
            4,
            1,
            Duration::from_secs(600),
        );
        assert_eq!(
            short.levels,
            vec![360_000],
            "the block window shrinks to 10%"
        );
        assert_eq!(short.grace_ms, 360_000);
    }

    #[test]
    fn an_open_window_waits_for_enough_parts_and_small_parts_of_other_windows_stay() {
        let p = policy();
        let now = 10 * H + 60_000; // inside the window [10h, 12h)
        let parts = vec![
            part("a", "cpu", 10 * H, 2 * H, 1),
            part("b", "cpu", 10 * H, 2 * H, 1),
            part("c", "cpu", 10 * H, 2 * H, 1),
            part("x", "mem", 10 * H, 2 * H, 1),
        ];
        assert!(
            plan(&parts, &p, now).is_empty(),
            "3 parts of an open window, 1 of another type"
        );
        let mut more = parts.clone();
        more.push(part("d", "cpu", 10 * H, 2 * H, 1));
        let plans = plan(&more, &p, now);
        assert_eq!(plans.len(), 1);
        assert_eq!(files(&plans[0]), vec!["a", "b", "c", "d"]);
        assert_eq!(
            plans[0].window,
            Window {
                start: 10 * H,
                len: 2 * H
            }
        );
    }

    #[test]
    fn a_closed_window_is_merged_within_itself_only() {
        let p = policy();
        let now = 12 * H + 11 * 60_000; // [10h, 12h) closed, the day [0, 24h) open
        let parts = vec![
            part("a", "cpu", 10 * H, 2 * H, 1),
            part("b", "cpu", 10 * H, 2 * H, 1),
            part("c", "cpu", 8 * H, 2 * H, 1),
            part("d", "cpu", 12 * H, 2 * H, 1),
        ];
        let plans = plan(&parts, &p, now);
        assert_eq!(plans.len(), 1);
        assert_eq!(files(&plans[0]), vec!["a", "b"]);
    }

    #[test]
    fn a_closed_day_becomes_one_part_unless_too_big() {
        let p = policy();
        let now = 24 * H + 11 * 60_000;
        let parts = vec![
            part("a", "cpu", 0, 2 * H, 10),
            part("b", "cpu", 10 * H, 2 * H, 10),
            part("c", "cpu", 22 * H, 2 * H, 10),
            part("n", "cpu", 24 * H, 2 * H, 10),
        ];
        let plans = plan(&parts, &p, now);
        assert_eq!(plans.len(), 1);
        assert_eq!(
            plans[0].window,
            Window {
                start: 0,
                len: 24 * H
            }
        );
        assert_eq!(files(&plans[0]), vec!["a", "b", "c"]);
        let capped = Policy { max_bytes: 25, ..p };
        assert!(
            plan(&parts, &capped, now).is_empty(),
            "30 bytes over a cap of 25"
        );
    }

    #[test]
    fn retention_deletes_windows_that_ended_before_the_cutoff() {
        let parts = vec![
            part("old", "cpu", 0, 2 * H, 1),
            part("edge", "cpu", 2 * H, 2 * H, 1),
        ];
        let gone = expired(&parts, Duration::from_secs(3600), 5 * H - 1);
        assert_eq!(
            gone.iter().map(|p| p.file.as_str()).collect::<Vec<_>>(),
            vec!["old"]
        );
        assert!(expired(&parts, Duration::ZERO, i64::MAX).is_empty());
    }
}
