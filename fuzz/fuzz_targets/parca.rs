//! Parca agents' `WriteRaw` bodies (protobuf JSON): decoded into series labels and base64
//! raw profiles, each read and validated as ingest does. Nothing may panic, allocate
//! without bound or loop forever; every label decoded has a usable name.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// The server's cap is 64 MiB; a smaller one keeps runs fast with the same limit.
const MAX_UNCOMPRESSED: usize = 4 << 20;

fuzz_target!(|body: &[u8]| {
    let Ok(profiles) = push::parca::decode(body) else {
        return;
    };
    for (labels, raw) in &profiles {
        for (name, _) in labels.iter() {
            assert!(
                name == "__name__"
                    || shared::labels::sanitize_label_name(name).as_deref() == Some(name),
                "{name:?} is no sanitized label name"
            );
        }
        if let Ok(profile) = proto::read(raw, MAX_UNCOMPRESSED) {
            let _ = profile.validate();
        }
    }
});
