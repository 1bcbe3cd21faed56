//! The pprof profile format for Cinder: this crate owns everything between the bytes of a
//! pprof body and a trustworthy in-memory profile.
//!
//! - [`Profile`] and friends: google/pprof's `profile.proto` as hand-written prost messages
//!   (no protoc, no build script). They decode and, for exporting merged profiles, encode
//!   with [`prost::Message`] (`encode_to_vec`). The string table is kept as raw bytes so
//!   profiles with invalid UTF-8 still decode; [`Profile::string`] converts lossily.
//! - [`read`]: gzip (detected by magic bytes) or raw protobuf in, [`Profile`] out, with a hard
//!   limit on the uncompressed size so a gzip bomb cannot exhaust memory.
//! - [`census`]: counts samples, locations, functions and strings of an uncompressed
//!   message without decoding it, so callers can refuse or budget for it first.
//! - [`Profile::validate`]: linear-time referential checks (string indexes, ids, value
//!   counts) with precise error messages.
//! - [`Index`]: O(1) lookups by id and string index over a validated profile, for ingest.
//! - The other formats agents send, turned into a [`Profile`] so they share pprof's ingest
//!   path: [`folded`] text (Pyroscope's `folded`/`lines`), [`speedscope`] JSON, built with
//!   [`ProfileBuilder`]; and Pyroscope's push messages ([`pyroscope`]).
//!
//! ```
//! use prost::Message;
//!
//! let profile = proto::Profile {
//!     string_table: vec![b"".to_vec(), b"cpu".to_vec(), b"nanoseconds".to_vec()],
//!     sample_type: vec![proto::ValueType { ty: 1, unit: 2 }],
//!     ..Default::default()
//! };
//! let body = profile.encode_to_vec();
//!
//! let read = proto::read(&body, 64 << 20)?;
//! let index = read.index()?;
//! assert_eq!(index.string(read.sample_type[0].ty), "cpu");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod census;
pub mod folded;
mod index;
pub mod pyroscope;
mod read;
pub mod speedscope;
mod types;
mod validate;

pub use builder::ProfileBuilder;
pub use census::{Census, CensusError, census};
pub use index::Index;
pub use read::{ReadError, decode, inflate, is_gzip, read};
pub use types::{
    Function, Label, Line, Location, Mapping, Profile, Sample, StringIndexError, ValueType,
};
pub use validate::{EntityKind, StringField, ValidationError};

/// Re-exported so callers can encode and decode without naming prost's version themselves.
pub use prost::Message;

#[cfg(test)]
pub(crate) mod test_util {
    use crate::*;

    /// A small, valid profile exercising every string-index field.
    pub(crate) fn valid_profile() -> Profile {
        let strings = [
            "",
            "samples",
            "count",
            "cpu",
            "nanoseconds",
            "main",
            "main.go",
            "runtime.goexit",
            "runtime/proc.go",
            "compute",
            "/bin/app",
            "abc123",
            "libc.so.6",
            "thread",
            "worker-1",
            "bytes",
            "size",
            "a comment",
            "https://example.com/docs",
        ];
        let s = |text: &str| strings.iter().position(|x| *x == text).unwrap() as i64;
        let line = |function_id, line| Line {
            function_id,
            line,
            column: 0,
        };
        Profile {
            sample_type: vec![
                ValueType {
                    ty: s("samples"),
                    unit: s("count"),
                },
                ValueType {
                    ty: s("cpu"),
                    unit: s("nanoseconds"),
                },
            ],
            sample: vec![
                Sample {
                    location_id: vec![1, 2, 3],
                    value: vec![1, 10_000_000],
                    label: vec![
                        Label {
                            key: s("thread"),
                            str: s("worker-1"),
                            num: 0,
                            num_unit: 0,
                        },
                        Label {
                            key: s("size"),
                            str: 0,
                            num: 4096,
                            num_unit: s("bytes"),
                        },
                    ],
                },
                Sample {
                    location_id: vec![2, 3],
                    value: vec![2, 20_000_000],
                    label: vec![Label {
                        key: s("thread"),
                        str: s("worker-1"),
                        num: 0,
                        num_unit: 0,
                    }],
                },
            ],
            mapping: vec![
                Mapping {
                    id: 1,
                    memory_start: 0x400000,
                    memory_limit: 0x800000,
                    file_offset: 0,
                    filename: s("/bin/app"),
                    build_id: s("abc123"),
                    has_functions: true,
                    has_filenames: true,
                    has_line_numbers: true,
                    has_inline_frames: true,
                },
                Mapping {
                    id: 2,
                    memory_start: 0x7f0000000000,
                    memory_limit: 0x7f0000100000,
                    file_offset: 0x1000,
                    filename: s("libc.so.6"),
                    build_id: 0,
                    ..Mapping::default()
                },
            ],
            location: vec![
                Location {
                    id: 1,
                    mapping_id: 1,
                    address: 0x401000,
                    // compute() inlined into main().
                    line: vec![line(3, 42), line(1, 10)],
                    is_folded: false,
                },
                Location {
                    id: 2,
                    mapping_id: 1,
                    address: 0x402000,
                    line: vec![line(1, 12)],
                    is_folded: false,
                },
                Location {
                    id: 3,
                    mapping_id: 2,
                    address: 0x7f0000000100,
                    line: vec![line(2, 250)],
                    is_folded: true,
                },
            ],
            function: vec![
                Function {
                    id: 1,
                    name: s("main"),
                    system_name: s("main"),
                    filename: s("main.go"),
                    start_line: 5,
                },
                Function {
                    id: 2,
                    name: s("runtime.goexit"),
                    system_name: s("runtime.goexit"),
                    filename: s("runtime/proc.go"),
                    start_line: 240,
                },
                Function {
                    id: 3,
                    name: s("compute"),
                    system_name: 0,
                    filename: s("main.go"),
                    start_line: 40,
                },
            ],
            string_table: strings.iter().map(|x| x.as_bytes().to_vec()).collect(),
            drop_frames: 0,
            keep_frames: 0,
            time_nanos: 1_700_000_000_000_000_000,
            duration_nanos: 10_000_000_000,
            period_type: Some(ValueType {
                ty: s("cpu"),
                unit: s("nanoseconds"),
            }),
            period: 10_000_000,
            comment: vec![s("a comment")],
            default_sample_type: s("cpu"),
            doc_url: s("https://example.com/docs"),
        }
    }
}
