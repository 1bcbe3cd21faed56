//! Types and algorithms that both sides of Cinder use: the query language (profile
//! types and label selectors), durations, flame-graph tree building and layout, and the
//! JSON bodies both sides exchange ([`wire`]).
//!
//! This crate is pure: no I/O, no async runtime, no UI framework. It builds for the
//! native target and for `wasm32-unknown-unknown`.

pub mod chart;
pub mod complete;
pub mod duration;
pub mod flame;
#[cfg(feature = "arrow")]
pub mod ipc;
pub mod labels;
pub mod query;
pub mod targets;
pub mod units;
pub mod view;
pub mod wire;
