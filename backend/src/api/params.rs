//! Parsing request parameters with precise, field-naming errors.

use std::collections::HashMap;

use shared::{duration::parse_duration, query::Query};

use super::ApiError;
use crate::store::now_ms;

/// Query-string parameters by name (the last one wins).
pub(crate) type Params = HashMap<String, String>;

/// A time: unix milliseconds (an integer or a decimal; beyond what an `i64` holds it is
/// clamped, as the store cannot represent more) or RFC 3339.
pub(crate) fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    let trimmed = text.trim();
    if let Ok(ms) = trimmed.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ms) = clamped_number(trimmed) {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(trimmed)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_field(
                field,
                "invalid time",
                format!("{field}={text:?} is neither unix milliseconds nor RFC 3339 ({e})"),
            )
        })
}

/// A number too large for an `i64` or with a fraction, clamped and truncated to one.
fn clamped_number(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    // `as` saturates at i64::MIN/MAX.
    value.is_finite().then_some(value as i64)
}

/// An optional time parameter.
pub(crate) fn time_param(params: &Params, field: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(field)
        .filter(|v| !v.is_empty())
        .map(|v| parse_time(field, v))
        .transpose()
}

/// `start`/`end` (or with a suffix such as `_a`): defaults to the last hour; start ≤ end.
pub(crate) fn range(params: &Params, suffix: &str) -> Result<(i64, i64), ApiError> {
    let (start_key, end_key) = (format!("start{suffix}"), format!("end{suffix}"));
    let end = time_param(params, &end_key)?.unwrap_or_else(now_ms);
    let start = time_param(params, &start_key)?.unwrap_or(end.saturating_sub(3_600_000));
    if start > end {
        return Err(ApiError::bad_field(
            &start_key,
            "invalid time range",
            format!("{start_key} ({start}) is after {end_key} ({end})"),
        ));
    }
    Ok((start, end))
}

/// A required query expression such as `process_cpu:samples:count:cpu:nanoseconds:delta{job="x"}`.
pub(crate) fn query(params: &Params, field: &str) -> Result<Query, ApiError> {
    let text = params
        .get(field)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_field(
                field,
                "missing parameter",
                format!(
                    "{field} is required, e.g. process_cpu:samples:count:cpu:nanoseconds:delta{{}}"
                ),
            )
        })?;
    text.trim()
        .parse::<Query>()
        .map_err(|e| ApiError::bad_field(field, "invalid query", format!("{text:?}: {e}")))
}

/// A duration such as `15s`.
pub(crate) fn duration_ms(params: &Params, field: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = params.get(field).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let d = parse_duration(text).map_err(|e| {
        ApiError::bad_field(field, "invalid duration", format!("{field}={text:?}: {e}"))
    })?;
    Ok(Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// A positive integer.
pub(crate) fn usize_param(params: &Params, field: &str) -> Result<Option<usize>, ApiError> {
    let Some(text) = params.get(field).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    text.parse::<usize>().map(Some).map_err(|_| {
        ApiError::bad_field(
            field,
            "invalid number",
            format!("{field}={text:?} is not a non-negative integer"),
        )
    })
}

/// A comma-separated list.
pub(crate) fn list(params: &Params, field: &str) -> Vec<String> {
    params
        .get(field)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_ms_or_rfc3339() {
        assert_eq!(parse_time("t", "1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("t", "yesterday").is_err());
    }

    #[test]
    fn times_beyond_an_i64_are_clamped_not_refused() {
        assert_eq!(
            parse_time("t", "99999999999999999999999").unwrap(),
            i64::MAX
        );
        assert_eq!(
            parse_time("t", "-99999999999999999999999").unwrap(),
            i64::MIN
        );
        assert_eq!(
            parse_time("t", "1700000000000.7").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time("t", &i64::MAX.to_string()).unwrap(), i64::MAX);
        for bad in ["1e400", "1.2.3", "-", ".", "12abc", "NaN", "inf"] {
            assert!(parse_time("t", bad).is_err(), "{bad}");
        }
        let p: Params = [("end".to_owned(), i64::MIN.to_string())].into();
        assert_eq!(range(&p, "").unwrap(), (i64::MIN, i64::MIN));
    }

    #[test]
    fn a_reversed_range_is_refused() {
        let p: Params = [
            ("start".to_owned(), "10".to_owned()),
            ("end".to_owned(), "5".to_owned()),
        ]
        .into();
        assert!(range(&p, "").is_err());
    }
}
