//! Write-ahead-log segments as replay reads them after a crash: any bytes, split into
//! intact frames and skipped garbage (a torn append, a flipped bit), each intact payload
//! decoded as a record. Nothing may panic, allocate without bound or loop forever; frames
//! and skips cover the segment exactly, in order; a record that decodes encodes to bytes
//! that decode to the same record. The input is also decoded as one record payload alone.

#![no_main]

use codec::frame::{Frames, HEADER, Item};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|segment: &[u8]| {
    let mut covered = 0usize;
    for item in Frames::new(segment) {
        match item {
            Item::Record { offset, payload } => {
                assert_eq!(offset, covered, "frames are read in order");
                covered += HEADER + payload.len();
                round_trip(payload);
            }
            Item::Skipped { offset, len } => {
                assert_eq!(offset, covered, "skips are contiguous");
                assert!(len > 0, "a skip moves on");
                covered += len;
            }
        }
    }
    assert_eq!(covered, segment.len(), "the whole segment is accounted for");
    round_trip(segment);
});

/// A payload that decodes re-encodes to one that decodes the same (varints can be spelled
/// in more than one way, so the bytes themselves may differ).
fn round_trip(payload: &[u8]) {
    if let Some((entries, rows)) = codec::record::decode(payload) {
        let again = codec::record::encode(&entries, &rows);
        assert_eq!(
            codec::record::decode(&again),
            Some((entries, rows)),
            "a decoded record re-encodes to itself"
        );
    }
}
