//! Decoding the push shapes existing agents send, with no storage or query engine, so
//! that the decoders build small and are fuzzed (`fuzz/`, targets `pyroscope` and
//! `parca`):
//!
//! - [`labels`]: Pyroscope's `name=app.cpu{k=v}` as Cinder labels, the labels of a
//!   Connect Push series, and agents' label names sanitized.
//! - [`pyroscope`]: Pyroscope's `/ingest` text formats (folded, lines, speedscope) as a
//!   pprof profile.
//! - [`parca`]: Parca's `WriteRaw` request in protobuf JSON, as labels and raw profiles.
//!
//! `backend` re-exports these where its own modules used to define them.

pub mod labels;
pub mod parca;
pub mod pyroscope;
