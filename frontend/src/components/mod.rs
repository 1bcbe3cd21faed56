//! Pieces the pages are built from.

pub(crate) mod filter_input;
pub(crate) mod flame_canvas;
pub(crate) mod flame_graph;
pub(crate) mod flame_menu;
pub(crate) mod flame_toolbar;
pub(crate) mod flame_tooltip;
pub(crate) mod metrics_graph;
pub(crate) mod query_bar;
pub(crate) mod sandwich;
pub(crate) mod top_table;
