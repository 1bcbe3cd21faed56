//! Pyroscope's `/ingest` formats other than pprof — `folded` (alias `groups`), `lines`
//! and `speedscope` — turned into a pprof profile so they take pprof's ingest path; from
//! the `push` crate (where it is fuzzed), see [`push::pyroscope`].

pub use push::pyroscope::*;
