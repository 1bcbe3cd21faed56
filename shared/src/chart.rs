//! Arithmetic of the metrics graph: linear scales, round tick values and their labels,
//! the point nearest the pointer, and the legend (the labels that tell series apart, and
//! which series are drawn). Pure so it is tested natively; the UI only draws.

use std::collections::BTreeSet;

use crate::labels::{Labels, quote};
use crate::units::format_value;

/// Series drawn at most when none is isolated; the rest are summarised as "+M more".
pub const MAX_SERIES: usize = 20;

/// A linear map from a domain (values or times) to a range (pixels), and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Domain start and end.
    pub domain: (f64, f64),
    /// Range start and end.
    pub range: (f64, f64),
}

impl Scale {
    /// A scale; an empty domain is widened by one so nothing divides by zero.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        let domain = if domain.1 == domain.0 {
            (domain.0, domain.0 + 1.0)
        } else {
            domain
        };
        Scale { domain, range }
    }

    /// Domain → range.
    pub fn map(&self, v: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }

    /// Range → domain.
    pub fn invert(&self, p: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        if r1 == r0 {
            return d0;
        }
        d0 + (p - r0) / (r1 - r0) * (d1 - d0)
    }
}

/// About `count` round values (1, 2 or 5 times a power of ten) within `min..=max`.
pub fn ticks(min: f64, max: f64, count: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min || count == 0 {
        return vec![min];
    }
    let raw = (max - min) / count as f64;
    let power = 10f64.powf(raw.log10().floor());
    // As d3's tickIncrement: the multiplier nearest (geometrically) to the raw step.
    let error = raw / power;
    let multiplier = match error {
        e if e >= 50f64.sqrt() => 10.0,
        e if e >= 10f64.sqrt() => 5.0,
        e if e >= 2f64.sqrt() => 2.0,
        _ => 1.0,
    };
    let step = multiplier * power;
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// The bucket width (ms) of the metrics graph over `start..end`: about 200 points, at
/// least a second. Delta types are summed per bucket, so a click on a point selects the
/// bucket `t..t + step`.
pub fn step_for(start: i64, end: i64) -> i64 {
    (end.saturating_sub(start) / 200).max(1000)
}

/// The index of the time in `times` (sorted) nearest to `t`.
pub fn nearest(times: &[i64], t: i64) -> Option<usize> {
    let after = times.partition_point(|&x| x < t);
    let candidates = [after.checked_sub(1), (after < times.len()).then_some(after)];
    candidates
        .into_iter()
        .flatten()
        .min_by_key(|&i| times[i].abs_diff(t))
}

/// The legend name of each series: only the labels whose values differ between the
/// series (`instance="a"` rather than the whole set); the whole set when there is one
/// series or nothing differs, `{}` for no labels.
pub fn legend_names(series: &[&Labels]) -> Vec<String> {
    let names: BTreeSet<&str> = series
        .iter()
        .flat_map(|l| l.iter().map(|(n, _)| n))
        .collect();
    let differing: Vec<&str> = names
        .into_iter()
        .filter(|name| {
            let first = series.first().and_then(|l| l.get(name));
            series.iter().any(|l| l.get(name) != first)
        })
        .collect();
    series
        .iter()
        .map(|labels| {
            if differing.is_empty() {
                return labels.to_string();
            }
            let parts: Vec<String> = differing
                .iter()
                .filter_map(|&name| labels.get(name).map(|v| format!("{name}={}", quote(v))))
                .collect();
            if parts.is_empty() {
                "{}".to_owned()
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

/// Which series to draw, by index, in their order: those `isolated` when any is (and
/// exists), otherwise all of them, or beyond [`MAX_SERIES`] the [`MAX_SERIES`] with the
/// largest `totals`. The second value counts the series left out.
pub fn shown_series(totals: &[f64], isolated: &[bool]) -> (Vec<usize>, usize) {
    let picked: Vec<usize> = (0..totals.len())
        .filter(|&i| isolated.get(i).copied().unwrap_or(false))
        .collect();
    if !picked.is_empty() {
        let hidden = totals.len() - picked.len();
        return (picked, hidden);
    }
    if totals.len() <= MAX_SERIES {
        return ((0..totals.len()).collect(), 0);
    }
    let mut order: Vec<usize> = (0..totals.len()).collect();
    order.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]).then(a.cmp(&b)));
    let mut top = order[..MAX_SERIES].to_vec();
    top.sort_unstable();
    (top, totals.len() - MAX_SERIES)
}

/// The label of a y-axis tick at `v`: CPU time per second reads as cores, other rates get
/// `/s`; fractions below a thousand base units keep their decimals (`0.5/s`, not `0/s`).
pub fn tick_label(v: f64, unit: &str, per_second: bool) -> String {
    if per_second && unit == "nanoseconds" {
        return format!("{} cores", short(v / 1e9));
    }
    let text = if v.fract() != 0.0 && v.abs() < 1000.0 {
        format!("{}{}", short(v), base_suffix(unit))
    } else {
        format_value(v.round() as i64, unit)
    };
    if per_second {
        format!("{text}/s")
    } else {
        text
    }
}

/// The suffix [`format_value`] gives values below its first step.
fn base_suffix(unit: &str) -> &'static str {
    match unit.to_ascii_lowercase().as_str() {
        "nanoseconds" => " ns",
        "microseconds" => " µs",
        "milliseconds" => " ms",
        "seconds" => " s",
        "bytes" => " B",
        _ => "",
    }
}

/// A compact number: 1.2k, 3.4M, 0.25, 12.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let text = match a {
        _ if a >= 1e9 => format!("{:.1}G", v / 1e9),
        _ if a >= 1e6 => format!("{:.1}M", v / 1e6),
        _ if a >= 1e3 => format!("{:.1}k", v / 1e3),
        _ if a >= 10.0 || a == 0.0 => format!("{v:.0}"),
        _ if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    };
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_both_ways() {
        let s = Scale::new((100.0, 200.0), (0.0, 1000.0));
        assert_eq!(s.map(150.0), 500.0);
        assert_eq!(s.invert(250.0), 125.0);
        let flipped = Scale::new((0.0, 10.0), (200.0, 0.0));
        assert_eq!(flipped.map(10.0), 0.0);
        let empty = Scale::new((5.0, 5.0), (0.0, 10.0));
        assert_eq!(empty.map(5.0), 0.0);
        assert_eq!(Scale::new((0.0, 1.0), (3.0, 3.0)).invert(7.0), 0.0);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(3.0, 97.0, 4), [20.0, 40.0, 60.0, 80.0]);
        assert_eq!(ticks(5.0, 5.0, 4), [5.0]);
        assert_eq!(ticks(0.0, f64::NAN, 4), [0.0]);
        assert!(ticks(0.0, 1e9, 6).iter().all(|t| t % 2e8 == 0.0));
    }

    #[test]
    fn steps() {
        assert_eq!(step_for(0, 3_600_000), 18_000);
        assert_eq!(step_for(0, 10_000), 1000);
        assert_eq!(step_for(5, 0), 1000);
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn legends_name_what_differs() {
        let a = labels(&[("job", "api"), ("instance", "a"), ("handler", "x")]);
        let b = labels(&[("job", "api"), ("instance", "b"), ("handler", "x")]);
        let c = labels(&[("job", "api"), ("handler", "x")]);
        assert_eq!(
            legend_names(&[&a, &b, &c]),
            [r#"instance="a""#, r#"instance="b""#, "{}"]
        );
        assert_eq!(
            legend_names(&[&a]),
            [r#"{handler="x", instance="a", job="api"}"#]
        );
        assert_eq!(legend_names(&[&Labels::new()]), ["{}"]);
        assert!(legend_names(&[]).is_empty());
    }

    #[test]
    fn many_series_show_the_top_ones() {
        let totals: Vec<f64> = (0..25).map(f64::from).collect();
        let (shown, hidden) = shown_series(&totals, &[]);
        assert_eq!(shown, (5..25).collect::<Vec<_>>());
        assert_eq!(hidden, 5);
        assert_eq!(shown_series(&[1.0, 2.0], &[]), (vec![0, 1], 0));
        // An isolated series shows alone, even a small one.
        let mut isolated = vec![false; 25];
        isolated[2] = true;
        assert_eq!(shown_series(&totals, &isolated), (vec![2], 24));
    }

    #[test]
    fn tick_labels_have_units_and_keep_fractions() {
        assert_eq!(tick_label(0.5e9, "nanoseconds", true), "0.50 cores");
        assert_eq!(tick_label(2e9, "nanoseconds", true), "2 cores");
        assert_eq!(tick_label(0.2, "count", false), "0.20");
        assert_eq!(tick_label(0.0, "count", false), "0");
        assert_eq!(tick_label(2048.0, "bytes", true), "2.0 KiB/s");
        assert_eq!(tick_label(0.5, "bytes", false), "0.50 B");
        assert_eq!(tick_label(3.0e6, "nanoseconds", false), "3.00 ms");
        // Ticks of an empty 0..1 domain no longer all read "0".
        let labels: Vec<String> = ticks(0.0, 1.0, 4)
            .into_iter()
            .map(|v| tick_label(v, "count", false))
            .collect();
        assert_eq!(labels, ["0", "0.20", "0.40", "0.60", "0.80", "1"]);
    }

    #[test]
    fn nearest_point() {
        let times = [10, 20, 40];
        assert_eq!(nearest(&times, 0), Some(0));
        assert_eq!(nearest(&times, 16), Some(1));
        assert_eq!(nearest(&times, 31), Some(2));
        assert_eq!(nearest(&times, 99), Some(2));
        assert_eq!(nearest(&[], 1), None);
    }
}
