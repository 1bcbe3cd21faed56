//! The binary encoding of metadata values and WAL records: varints and length-prefixed
//! strings, from the Arrow-free `codec` crate (where it is fuzzed).

pub(crate) use codec::{Reader, Writer};
