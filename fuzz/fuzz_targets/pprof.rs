//! pprof bodies as agents and targets send them: gzip or raw protobuf, read with the
//! server's size limit, validated, indexed, and normalized as ingest does (every sample's
//! stack resolved to frames, labels read and their names sanitized). Nothing may panic,
//! allocate without bound or loop forever, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// The server's cap on a profile's uncompressed size is 64 MiB; a smaller one keeps each
/// run fast while exercising the same limit.
const MAX_UNCOMPRESSED: usize = 4 << 20;

fuzz_target!(|body: &[u8]| {
    let Ok(profile) = proto::read(body, MAX_UNCOMPRESSED) else {
        return;
    };
    let Ok(index) = profile.index() else {
        return;
    };
    let mut frames = 0usize;
    for sample in &profile.sample {
        for location in index.stack(sample) {
            for line in &location.line {
                if let Some(function) = index.function(line.function_id) {
                    frames += index.string(function.name).len();
                    frames += index.string(function.filename).len();
                }
            }
            if let Some(mapping) = index.mapping(location.mapping_id) {
                frames += index.string(mapping.filename).len();
            }
        }
        for label in &sample.label {
            let name = shared::labels::sanitize_label_name(index.string(label.key));
            frames += name.map_or(0, |n| n.len()) + index.string(label.str).len();
        }
        assert_eq!(sample.value.len(), profile.sample_type.len());
    }
    for ty in &profile.sample_type {
        frames += index.string(ty.ty).len() + index.string(ty.unit).len();
    }
    std::hint::black_box(frames);
});
