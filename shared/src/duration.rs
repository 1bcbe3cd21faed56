//! Prometheus-style durations such as `15s`, `1h30m`, `100ms` or `2d`: parsing
//! ([`parse_duration`]) and canonical printing ([`format_duration`]).
//!
//! Units are `y` (365 days), `w`, `d`, `h`, `m`, `s` and `ms`, each used at most once
//! and from the biggest to the smallest; a bare `0` is also accepted.

use std::time::Duration;

/// Units from biggest to smallest, with their length in milliseconds.
const UNITS: &[(&str, u64)] = &[
    ("y", 365 * DAY_MS),
    ("w", 7 * DAY_MS),
    ("d", DAY_MS),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a duration did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a duration.
    #[error("invalid duration at position {position}: expected {expected}, found {found}")]
    Syntax {
        /// Byte offset of the problem.
        position: usize,
        /// What would have been valid there.
        expected: String,
        /// What is there instead (quoted), or `end of input`.
        found: String,
    },
    /// The duration does not fit in 64 bits of milliseconds.
    #[error("duration is too long")]
    Overflow,
}

/// Parses a Prometheus duration, e.g. `1h30m` → 5400 s.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut pos = 0;
    let mut total: u64 = 0;
    // Index in UNITS of the next unit allowed (units go biggest first, once each).
    let mut next_unit = 0;
    loop {
        let count = text[pos..].bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 {
            let expected = if pos == 0 {
                "a number"
            } else {
                "a number or end of input"
            };
            return Err(syntax_error(text, pos, expected));
        }
        let number: u64 = text[pos..pos + count]
            .parse()
            .map_err(|_| DurationError::Overflow)?;
        pos += count;
        let unit = unit_at(&text[pos..]).ok_or_else(|| {
            syntax_error(
                text,
                pos,
                "a unit (one of \"ms\", \"s\", \"m\", \"h\", \"d\", \"w\", \"y\")",
            )
        })?;
        if unit < next_unit {
            let expected = format!("a unit smaller than \"{}\"", UNITS[next_unit - 1].0);
            return Err(syntax_error(text, pos, &expected));
        }
        let (name, ms) = UNITS[unit];
        total = number
            .checked_mul(ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or(DurationError::Overflow)?;
        pos += name.len();
        next_unit = unit + 1;
        if pos == text.len() {
            return Ok(Duration::from_millis(total));
        }
    }
}

/// The index in [`UNITS`] of the unit `rest` starts with (`ms` wins over `m`).
fn unit_at(rest: &str) -> Option<usize> {
    let unit_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let unit = &rest[..unit_len.min(2)];
    let unit = if unit == "ms" {
        unit
    } else {
        &unit[..unit.len().min(1)]
    };
    UNITS.iter().position(|(name, _)| *name == unit)
}

fn syntax_error(text: &str, position: usize, expected: &str) -> DurationError {
    let found = text[position..].chars().next().map_or_else(
        || "end of input".to_owned(),
        |c| format!("{:?}", c.to_string()),
    );
    DurationError::Syntax {
        position,
        expected: expected.to_owned(),
        found,
    }
}

/// Formats a duration canonically, biggest units first (5400 s → `1h30m`, zero →
/// `0s`). Precision below a millisecond is dropped; [`parse_duration`] reads the
/// result back.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for &(name, unit_ms) in UNITS {
        let count = ms / u128::from(unit_ms);
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            ms %= u128::from(unit_ms);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("15s"), Ok(secs(15)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2d"), Ok(secs(2 * 86_400)));
        assert_eq!(parse_duration("1w"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(secs(365 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1m1ms"), Ok(Duration::from_millis(60_001)));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms"),
            Ok(Duration::from_millis(
                ((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7
            ))
        );
    }

    #[test]
    fn rejects_bad_durations() {
        let syntax = |text: &str| match parse_duration(text) {
            Err(DurationError::Syntax { position, .. }) => position,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(syntax(""), 0);
        assert_eq!(syntax("s"), 0);
        assert_eq!(syntax("15"), 2);
        assert_eq!(syntax("15x"), 2);
        assert_eq!(syntax("1h1h"), 3);
        assert_eq!(syntax("30m1h"), 4);
        assert_eq!(syntax("1h 30m"), 2);
        assert_eq!(syntax("-1s"), 0);
        assert_eq!(syntax("1.5h"), 1);
        assert_eq!(syntax("00"), 2);
        assert_eq!(syntax("1sm"), 2);
        assert_eq!(
            parse_duration("30m1h").unwrap_err().to_string(),
            "invalid duration at position 4: expected a unit smaller than \"m\", found \"h\""
        );
        assert_eq!(
            parse_duration("15").unwrap_err().to_string(),
            "invalid duration at position 2: expected a unit (one of \"ms\", \"s\", \"m\", \
             \"h\", \"d\", \"w\", \"y\"), found end of input"
        );
        assert_eq!(parse_duration("99999999999y"), Err(DurationError::Overflow));
        assert_eq!(
            parse_duration("99999999999999999999999s"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(15)), "15s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(secs(400 * 86_400)), "1y5w");
        assert_eq!(format_duration(Duration::from_micros(1999)), "1ms");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trips(ms in prop_oneof![0..10_000_000u64, any::<u64>()]) {
            let duration = Duration::from_millis(ms);
            let text = format_duration(duration);
            prop_assert_eq!(parse_duration(&text), Ok(duration));
            prop_assert_eq!(format_duration(parse_duration(&text).unwrap()), text);
        }

        #[test]
        fn never_panics(text in "[0-9smhdwy.\\- ]{0,10}") {
            let _ = parse_duration(&text);
        }
    }
}
