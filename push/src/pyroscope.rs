//! Pyroscope's `/ingest` formats other than pprof — `folded` (alias `groups`), `lines`
//! and `speedscope` — turned into a pprof [`Profile`] so they take pprof's ingest path.
//!
//! The sample type follows the name's suffix as Pyroscope's ingest adapter picks it
//! (`.cpu` → `samples`/`count`, `.alloc_space` → `alloc_space`/`bytes`, `.mutex_duration`
//! → `delay`/`nanoseconds`, …); `units` overrides the unit. CPU and wall profiles
//! (`.cpu`, `.itimer`, `.wall`, or no suffix) counted in samples get a second sample type
//! in nanoseconds, each sample being `1e9 / sampleRate` ns (10 ms at the default 100 Hz),
//! with period type `cpu` (`wall`)/`nanoseconds`: the same two types a Go CPU profile has,
//! so they sit beside scraped CPU profiles and read in cores. Memory, mutex, block and
//! goroutine profiles get Go's period types (`space`/`bytes`, `contentions`/`count`,
//! `goroutine`/`count`) for the same reason. `aggregationType=sum`
//! (default) stores a delta over `from..until`; `average` stores a snapshot.

use proto::{
    Profile, ProfileBuilder,
    folded::{self, TextError, TextFormat},
    speedscope::{self, SampleTypes, SpeedscopeError},
};

/// A non-pprof format `/ingest` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `a;b;c 12` lines (`format=folded` or `groups`).
    Folded,
    /// `a;b;c` lines, 1 each (`format=lines`).
    Lines,
    /// speedscope's JSON file format.
    Speedscope,
}

impl Format {
    /// The format named by `format=…`, if it is one of these.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "folded" | "groups" => Format::Folded,
            "lines" => Format::Lines,
            "speedscope" => Format::Speedscope,
            _ => return None,
        })
    }
}

/// How the profile was described by the query string.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    /// The suffix of `name` (`cpu` in `app.cpu`), or `""`.
    pub suffix: &'a str,
    /// `sampleRate` (Hz), default 100.
    pub sample_rate: u32,
    /// `units` (`samples`, `objects`, `goroutines`, `bytes`, `lock_samples`,
    /// `lock_nanoseconds`), if given.
    pub units: Option<&'a str>,
    /// `from`, unix seconds.
    pub from: i64,
    /// `until`, unix seconds (0 when not given).
    pub until: i64,
}

/// Why a body could not be turned into a profile.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A folded or lines body is malformed.
    #[error("{0}")]
    Text(#[from] TextError),
    /// A speedscope body is malformed.
    #[error("{0}")]
    Speedscope(#[from] SpeedscopeError),
    /// `units` is not one of Pyroscope's.
    #[error(
        "units={0:?}; expected samples, objects, goroutines, bytes, lock_samples or lock_nanoseconds"
    )]
    Units(String),
}

/// The profile of a `/ingest` body in `format`.
pub fn to_profile(format: Format, body: &[u8], meta: &Meta<'_>) -> Result<Profile, FormatError> {
    let (ty, unit) = sample_type(meta)?;
    let cpu = cpu_kind(meta.suffix).filter(|_| unit == "count" && ty == "samples");
    let period = 1_000_000_000 / i64::from(meta.sample_rate.max(1));
    let mut profile = match format {
        Format::Folded | Format::Lines => {
            let text_format = if format == Format::Lines {
                TextFormat::Lines
            } else {
                TextFormat::Folded
            };
            let stacks = folded::parse(body, text_format)?;
            let mut builder = match cpu {
                Some(kind) => ProfileBuilder::new(&[(ty, unit), (kind, "nanoseconds")]),
                None => ProfileBuilder::new(&[(ty, unit)]),
            };
            let scale: &[i64] = if cpu.is_some() { &[1, period] } else { &[1] };
            folded::add_to(&mut builder, &stacks, scale);
            builder.finish()
        }
        Format::Speedscope => {
            let time = cpu.unwrap_or(if unit == "nanoseconds" { ty } else { "cpu" });
            let types = SampleTypes {
                time: (time, "nanoseconds"),
                count: (ty, unit),
                bytes: (if unit == "bytes" { ty } else { "space" }, "bytes"),
            };
            speedscope::to_profile(body, &types)?
        }
    };
    match cpu {
        Some(kind) => add_period(&mut profile, kind, "nanoseconds", period),
        None => match go_period_type(meta.suffix) {
            Some((ty, unit)) => add_period(&mut profile, ty, unit, 0),
            None if format == Format::Speedscope => {
                add_period(&mut profile, "cpu", "nanoseconds", period)
            }
            None => {}
        },
    }
    profile.time_nanos = meta.from.saturating_mul(1_000_000_000);
    if meta.until > meta.from {
        profile.duration_nanos = meta
            .until
            .saturating_sub(meta.from)
            .saturating_mul(1_000_000_000);
    }
    Ok(profile)
}

/// `cpu` or `wall` for the suffixes of CPU and wall profiles.
fn cpu_kind(suffix: &str) -> Option<&'static str> {
    match suffix {
        "" | "cpu" | "itimer" => Some("cpu"),
        "wall" => Some("wall"),
        _ => None,
    }
}

/// The (type, unit) of the name's suffix, as Pyroscope's ingest adapter chooses it, with
/// `units` overriding the unit.
fn sample_type<'a>(meta: &Meta<'a>) -> Result<(&'a str, &'static str), FormatError> {
    let (ty, unit) = match meta.suffix {
        "inuse_objects" | "alloc_objects" => (meta.suffix, "count"),
        "inuse_space" | "alloc_space" => (meta.suffix, "bytes"),
        "goroutines" | "goroutine" => ("goroutines", "count"),
        "mutex_count" | "block_count" => ("contentions", "count"),
        "mutex_duration" | "block_duration" => ("delay", "nanoseconds"),
        _ => ("samples", "count"),
    };
    let unit = match meta.units {
        None | Some("") => unit,
        Some("samples" | "objects" | "goroutines" | "lock_samples") => "count",
        Some("bytes") => "bytes",
        Some("lock_nanoseconds") => "nanoseconds",
        Some(other) => return Err(FormatError::Units(other.to_owned())),
    };
    Ok((ty, unit))
}

/// The period type Go's runtime gives profiles of this kind, so that pushed text profiles
/// get the profile type ids of scraped ones (`memory:alloc_space:bytes:space:bytes`).
fn go_period_type(suffix: &str) -> Option<(&'static str, &'static str)> {
    Some(match suffix {
        "inuse_objects" | "alloc_objects" | "inuse_space" | "alloc_space" => ("space", "bytes"),
        "mutex_count" | "mutex_duration" | "block_count" | "block_duration" => {
            ("contentions", "count")
        }
        "goroutines" | "goroutine" => ("goroutine", "count"),
        _ => return None,
    })
}

/// Sets the period type and the period (strings appended when new).
fn add_period(profile: &mut Profile, kind: &str, unit: &str, period: i64) {
    let mut index = |s: &str| match profile.string_table.iter().position(|t| t == s.as_bytes()) {
        Some(i) => i as i64,
        None => {
            profile.string_table.push(s.as_bytes().to_vec());
            profile.string_table.len() as i64 - 1
        }
    };
    let ty = index(kind);
    let unit = index(unit);
    profile.period_type = Some(proto::ValueType { ty, unit });
    profile.period = period;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(suffix: &str) -> Meta<'_> {
        Meta {
            suffix,
            sample_rate: 100,
            units: None,
            from: 1_700_000_000,
            until: 1_700_000_010,
        }
    }

    fn types(p: &Profile) -> Vec<String> {
        let index = p.index().unwrap();
        p.sample_type
            .iter()
            .map(|st| format!("{}/{}", index.string(st.ty), index.string(st.unit)))
            .collect()
    }

    #[test]
    fn cpu_folded_is_samples_and_nanoseconds_at_the_sample_rate() {
        let mut m = meta("cpu");
        m.sample_rate = 250;
        let p = to_profile(Format::Folded, b"main;work 3\nmain 1\n", &m).unwrap();
        assert_eq!(types(&p), ["samples/count", "cpu/nanoseconds"]);
        assert_eq!(p.sample[0].value, vec![3, 12_000_000]);
        assert_eq!(p.period, 4_000_000);
        assert_eq!(p.time_nanos, 1_700_000_000_000_000_000);
        assert_eq!(p.duration_nanos, 10_000_000_000);
        let index = p.index().unwrap();
        let pt = p.period_type.unwrap();
        assert_eq!(
            (index.string(pt.ty), index.string(pt.unit)),
            ("cpu", "nanoseconds")
        );
    }

    #[test]
    fn other_suffixes_and_units() {
        let p = to_profile(Format::Lines, b"a;b\na;b\n", &meta("alloc_space")).unwrap();
        assert_eq!(types(&p), ["alloc_space/bytes"]);
        assert_eq!(p.sample[0].value, vec![2]);
        let index = p.index().unwrap();
        let pt = p.period_type.unwrap();
        assert_eq!(
            (index.string(pt.ty), index.string(pt.unit)),
            ("space", "bytes")
        );
        let mut m = meta("inuse_objects");
        m.units = Some("bytes");
        let p = to_profile(Format::Folded, b"a 5", &m).unwrap();
        assert_eq!(types(&p), ["inuse_objects/bytes"]);
        m.units = Some("furlongs");
        assert!(matches!(
            to_profile(Format::Folded, b"a 5", &m),
            Err(FormatError::Units(_))
        ));
        let p = to_profile(Format::Folded, b"a 5", &meta("wall")).unwrap();
        assert_eq!(types(&p), ["samples/count", "wall/nanoseconds"]);
    }

    #[test]
    fn extreme_times_saturate() {
        let mut m = meta("cpu");
        (m.from, m.until) = (-5, i64::MAX);
        let p = to_profile(Format::Folded, b"a 1", &m).unwrap();
        assert_eq!(p.duration_nanos, i64::MAX);
        m.from = i64::MAX;
        let p = to_profile(Format::Folded, b"a 1", &m).unwrap();
        assert_eq!((p.time_nanos, p.duration_nanos), (i64::MAX, 0));
    }

    #[test]
    fn speedscope_time_is_cpu_nanoseconds() {
        let file = serde_json::json!({"$schema": speedscope::SCHEMA,
            "shared": {"frames": [{"name": "a"}]},
            "profiles": [{"type": "sampled", "unit": "milliseconds", "name": "p",
                "samples": [[0]], "weights": [10]}]});
        let p = to_profile(
            Format::Speedscope,
            file.to_string().as_bytes(),
            &meta("cpu"),
        )
        .unwrap();
        assert_eq!(types(&p), ["cpu/nanoseconds"]);
        assert_eq!(p.sample[0].value, vec![10_000_000]);
        assert_eq!(p.period, 10_000_000);
    }
}
