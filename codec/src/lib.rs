//! The store's own binary encodings, with no Arrow, DataFusion or sled, so that they
//! build small and can be fuzzed (`fuzz/`, target `wal`):
//!
//! - [`bytes`]: varints, zig-zag varints, fixed u64s and length-prefixed strings;
//!   decoding never panics on bad bytes, it returns `None`.
//! - [`frame`]: the write-ahead log's length- and CRC-framed records and the reading of a
//!   segment that skips torn bytes.
//! - [`record`]: what one WAL record holds: metadata entries and sample rows.
//!
//! `backend::store` re-exports these where its own modules used to define them.

pub mod bytes;
pub mod frame;
pub mod record;

pub use bytes::{Reader, Writer};
pub use record::{Columns, MetaEntry, RowsByType, TreeId};
