//! Pure flame-graph algorithms, shared by the server (`report=flamegraph`, the top
//! table) and the WebAssembly UI (tree building and layout on every data or zoom change).
//!
//! The pipeline:
//!
//! 1. A [`StackSet`] holds the unique stacks of a selection (leaf first, like pprof).
//! 2. A [`StackFilter`] keeps, drops or hides by frame name ([`FlameTree::build_filtered`]
//!    applies one without copying stacks).
//! 3. [`FlameTree::build`] merges stacks root-first (or leaf-first with
//!    [`TreeOptions::invert`]) into an arena of [`Node`]s; [`FlameTree::trim`] bounds its size.
//!    Stacks in flame-tree order ([`tree_order`], how the server sends them) build in one
//!    pass without hashing ([`FlameTree::build_ordered`]).
//! 4. [`layout`] turns the tree into [`Rect`]s for a canvas at a given zoom, and
//!    [`hit_test`] finds the node under the pointer, [`step`] the one an arrow key leads to.
//! 5. [`search`], [`focus_path`], [`top`], [`diff_ratio`], [`color_for`] and [`diff_color`]
//!    serve the rest of the UI; [`node_path`]/[`find_path`] name a node in a link and
//!    [`NodeInfo`] says what its tooltip shows; [`sandwich`] splits the stacks through one
//!    function into its callers and callees.
//!
//! Nothing here does I/O; everything builds for native targets and `wasm32-unknown-unknown`.

mod color;
mod diff;
mod filter;
mod hash;
mod layout;
mod model;
mod navigate;
mod ordered;
mod path;
mod sandwich;
mod search;
mod text;
mod top;
mod tree;
mod trim;

#[cfg(test)]
mod testutil;

pub use color::{color_for, diff_color};
pub use diff::{diff_delta, diff_ratio};
pub use filter::{FilteredStack, FilteredStacks, StackFilter};
pub use layout::{Rect, hit_test, layout};
pub use model::{Frame, Stack, StackSet};
pub use navigate::{Step, step};
pub use ordered::tree_order;
pub use path::{NodeInfo, find_path, node_path};
pub use sandwich::{Sandwich, sandwich};
pub use search::{SearchResult, focus_path, search};
pub use top::{TopRow, top};
pub use tree::{FlameTree, Node, OTHER_NAME, ROOT, ROOT_NAME, TreeOptions};
pub use trim::Trimmed;
