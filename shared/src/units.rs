//! Human formatting of sample values for the UI and top tables: times (`1.23 s`),
//! sizes (`1.5 GiB`) and counts (`34.5k`), see [`format_value`].

/// A unit ladder: each rung's name and its size in the ladder's base unit.
type Rungs = &'static [(&'static str, f64)];

const TIME: Rungs = &[(" ns", 1.0), (" µs", 1e3), (" ms", 1e6), (" s", 1e9)];

const BYTES: Rungs = &[
    (" B", 1.0),
    (" KiB", 1024.0),
    (" MiB", 1024.0 * 1024.0),
    (" GiB", 1024.0 * 1024.0 * 1024.0),
    (" TiB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    (" PiB", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    (" EiB", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
];

const COUNT: Rungs = &[
    ("", 1.0),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

/// How many decimals a scaled (non-base-unit) number gets.
#[derive(Clone, Copy)]
enum Precision {
    /// Three significant digits: `1.23`, `45.6`, `789`.
    Significant3,
    /// Always one decimal: `1.5`, `123.4`.
    OneDecimal,
}

/// Formats `value`, measured in `unit`, for humans, e.g. `1_230_000_000` nanoseconds →
/// `1.23 s`, `1536` bytes → `1.5 KiB`, `34_500` count → `34.5k`.
///
/// Time units are `nanoseconds`, `microseconds`, `milliseconds` and `seconds`; sizes
/// are `bytes` (binary prefixes). Anything else is a plain count. Values smaller than
/// the next rung print as integers (`12 ns`, `512 B`, `999`); negative values (diffs)
/// keep their sign.
pub fn format_value(value: i64, unit: &str) -> String {
    let unit = unit.to_ascii_lowercase();
    let (rungs, start, precision) = match unit.as_str() {
        "nanoseconds" => (TIME, 0, Precision::Significant3),
        "microseconds" => (TIME, 1, Precision::Significant3),
        "milliseconds" => (TIME, 2, Precision::Significant3),
        "seconds" => (TIME, 3, Precision::Significant3),
        "bytes" => (BYTES, 0, Precision::OneDecimal),
        _ => (COUNT, 0, Precision::OneDecimal),
    };
    format_on(value, &rungs[start..], precision)
}

/// Formats `value` (in the first rung's unit) on the biggest rung it reaches.
fn format_on(value: i64, rungs: Rungs, precision: Precision) -> String {
    let base = rungs[0].1;
    // In the ladder's base unit (f64: a `seconds` value in nanoseconds may exceed i64).
    let magnitude = (value as f64 * base).abs();
    let rung = rungs
        .iter()
        .rposition(|&(_, size)| magnitude >= size)
        .unwrap_or(0);
    if rung == 0 {
        return format!("{value}{}", rungs[0].0);
    }
    let sign = if value < 0 { "-" } else { "" };
    let (text, rounded) = scaled(magnitude / rungs[rung].1, precision);
    // Rounding up to 1000 (1024 for bytes) reads better on the next rung: "1.00 s".
    if let Some(&(next, size)) = rungs.get(rung + 1)
        && rounded >= size / rungs[rung].1
    {
        let (text, _) = scaled(magnitude / size, precision);
        return format!("{sign}{text}{next}");
    }
    format!("{sign}{text}{}", rungs[rung].0)
}

/// A non-negative number printed with `precision`, and the value that text shows.
fn scaled(x: f64, precision: Precision) -> (String, f64) {
    let decimals = match precision {
        Precision::OneDecimal => 1,
        Precision::Significant3 => {
            // Decide on the rounded value so 9.996 prints "10.0", not "10.00".
            let decimals = significant3_decimals(x);
            significant3_decimals(round_to(x, decimals))
        }
    };
    let rounded = round_to(x, decimals);
    (format!("{rounded:.decimals$}"), rounded)
}

fn significant3_decimals(x: f64) -> usize {
    if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    }
}

fn round_to(x: f64, decimals: usize) -> f64 {
    let factor = 10f64.powi(decimals as i32);
    (x * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let ns = |v| format_value(v, "nanoseconds");
        assert_eq!(ns(1_234_000_000), "1.23 s");
        assert_eq!(ns(45_600_000), "45.6 ms");
        assert_eq!(ns(789_000), "789 µs");
        assert_eq!(ns(12), "12 ns");
        assert_eq!(ns(0), "0 ns");
        assert_eq!(ns(999), "999 ns");
        assert_eq!(ns(1000), "1.00 µs");
        assert_eq!(ns(999_999_999), "1.00 s");
        assert_eq!(ns(9_996_000), "10.0 ms");
        assert_eq!(ns(3_600_000_000_000), "3600 s");
        assert_eq!(ns(-45_600_000), "-45.6 ms");
        assert_eq!(ns(i64::MIN), "-9223372037 s");
    }

    #[test]
    fn other_time_units() {
        assert_eq!(format_value(5, "microseconds"), "5 µs");
        assert_eq!(format_value(1500, "microseconds"), "1.50 ms");
        assert_eq!(format_value(1500, "milliseconds"), "1.50 s");
        assert_eq!(format_value(42, "milliseconds"), "42 ms");
        assert_eq!(format_value(90, "seconds"), "90 s");
        assert_eq!(format_value(-3, "seconds"), "-3 s");
        assert_eq!(format_value(i64::MAX, "seconds"), "9223372036854775807 s");
    }

    #[test]
    fn bytes() {
        let b = |v| format_value(v, "bytes");
        assert_eq!(b(3 * (1 << 29)), "1.5 GiB");
        assert_eq!(b(12_897_485), "12.3 MiB");
        assert_eq!(b(4096), "4.0 KiB");
        assert_eq!(b(512), "512 B");
        assert_eq!(b(1023), "1023 B");
        assert_eq!(b(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(b(-2048), "-2.0 KiB");
        assert_eq!(b(i64::MAX), "8.0 EiB");
        assert_eq!(format_value(2048, "BYTES"), "2.0 KiB");
    }

    #[test]
    fn counts() {
        let c = |v| format_value(v, "count");
        assert_eq!(c(1_234_567), "1.2M");
        assert_eq!(c(34_500), "34.5k");
        assert_eq!(c(999), "999");
        assert_eq!(c(1000), "1.0k");
        assert_eq!(c(999_960), "1.0M");
        assert_eq!(c(-34_500), "-34.5k");
        assert_eq!(c(0), "0");
        assert_eq!(c(i64::MIN), "-9.2E");
        assert_eq!(format_value(7_000_000_000, "goroutines"), "7.0G");
    }
}
