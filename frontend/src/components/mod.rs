//! Pieces the pages are built from.

pub(crate) mod filter_input;
pub(crate) mod flame_graph;
pub(crate) mod flame_tooltip;
pub(crate) mod metrics_graph;
pub(crate) mod query_bar;
pub(crate) mod top_table;
