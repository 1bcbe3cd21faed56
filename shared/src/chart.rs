//! Arithmetic of the metrics graph: linear scales, round tick values and the point nearest
//! the pointer. Pure so it is tested natively; the UI only draws.

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
