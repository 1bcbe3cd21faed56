//! Pyroscope pushes: `POST /ingest?name=…&format=…` and Connect's `PusherService/Push`.
//! The first byte picks the shape (folded, lines, speedscope or a Push protobuf) and the
//! query parameters' values; for `/ingest`, the bytes up to the first newline are the
//! `name` and the rest the body. Nothing may panic, allocate without bound or loop
//! forever; a name that parses has a service and a profile name; a profile the text
//! formats build is a valid pprof profile that survives encoding and reading back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::{Message as _, pyroscope::PushRequest};
use push::{
    labels::{profile_suffix, pyroscope_labels, series_labels},
    pyroscope::{Format, Meta, to_profile},
};

/// The server's cap is 64 MiB; a smaller one keeps runs fast with the same limit.
const MAX_UNCOMPRESSED: usize = 4 << 20;
const UNITS: [Option<&str>; 5] = [
    None,
    Some("samples"),
    Some("bytes"),
    Some("lock_nanoseconds"),
    Some("bogus"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => Format::Folded,
        1 => Format::Lines,
        2 => Format::Speedscope,
        _ => return connect_push(rest),
    };
    let (name, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    if let Ok(labels) = pyroscope_labels(&name) {
        assert!(
            labels.get("__name__").is_some_and(|n| !n.is_empty()),
            "{name:?}"
        );
        assert!(
            labels
                .get("service_name")
                .is_some_and(|s| !s.trim().is_empty()),
            "{name:?}"
        );
    }
    let meta = Meta {
        suffix: profile_suffix(&name),
        sample_rate: u32::from(selector >> 2) * 7,
        units: UNITS[usize::from(selector >> 5) % UNITS.len()],
        from: i64::from(selector) * 1_000_000_000_000,
        until: i64::from(selector >> 1) * 1_000_000_000_000,
    };
    if let Ok(profile) = to_profile(format, body, &meta) {
        profile
            .validate()
            .unwrap_or_else(|e| panic!("{format:?} built an invalid profile: {e}"));
        let again = proto::read(&profile.encode_to_vec(), usize::MAX)
            .unwrap_or_else(|e| panic!("{format:?} built a profile that does not read back: {e}"));
        assert_eq!(again.sample.len(), profile.sample.len());
    }
});

/// A Push body: every series' labels, every profile read and validated as ingest does.
fn connect_push(body: &[u8]) {
    let Ok(request) = PushRequest::decode(body) else {
        return;
    };
    for series in &request.series {
        let (labels, _server_delta) = series_labels(series);
        assert!(labels.iter().all(|(name, _)| !name.is_empty()));
        for sample in &series.samples {
            if let Ok(profile) = proto::read(&sample.raw_profile, MAX_UNCOMPRESSED) {
                let _ = profile.validate();
            }
        }
    }
}
