//! The flame graph's state between frames: the tree built from the stacks (once per data,
//! filter or invert change), the layout (once per tree, zoom or width change), search
//! matches, and the colour of every frame. Drawing is in [`draw`].

pub(crate) mod draw;
pub(crate) mod hook;

use crate::perf;
use shared::{
    flame::{
        FlameTree, ROOT, Rect, SearchResult, StackFilter, StackSet, TopRow, TreeOptions,
        diff_delta, find_path, layout, search, top,
    },
    ipc::StacksResponse,
};

/// Nodes narrower than this many CSS pixels are not laid out (nor their subtrees).
pub(crate) const MIN_WIDTH_PX: f64 = 0.75;

/// Everything derived from one answer of the query API.
#[derive(Default)]
pub(crate) struct Model {
    /// The tree of the filtered stacks.
    pub(crate) tree: FlameTree,
    /// The top table of the filtered stacks, computed after the first frame ([`Model::retop`]).
    pub(crate) top: Vec<TopRow>,
    /// Fill colour per frame of `tree`, light and dark theme, computed when first drawn.
    pub(crate) colors: std::cell::RefCell<[Vec<Option<String>>; 2]>,
    /// The zoomed node.
    pub(crate) zoom: u32,
    /// The visible rects at the current zoom and width.
    pub(crate) rects: Vec<Rect>,
    /// The current search's matches.
    pub(crate) search: SearchResult,
    /// The largest absolute change of a node (diff colouring by absolute change).
    pub(crate) max_delta: i64,
    /// The value unit, e.g. `nanoseconds`.
    pub(crate) unit: String,
    /// Whether this is a diff (values are B, baselines A).
    pub(crate) diff: bool,
    /// The width laid out, CSS pixels.
    pub(crate) width: f64,
    /// Nodes and value the server folded into "other" nodes to bound the answer.
    pub(crate) trimmed: (u64, i64),
}

impl Model {
    /// Rebuilds the tree of `data` through `filter` (the top table is left empty, for
    /// [`Model::retop`]). Unfiltered and not inverted, the server's flame-tree order
    /// builds it in one pass; otherwise (or if that order does not check out) stacks
    /// are merged through a hash index.
    pub(crate) fn rebuild(&mut self, data: &StacksResponse, filter: &StackFilter, invert: bool) {
        let tree = perf::span(perf::names::TREE, || {
            let ordered = (filter.is_empty() && !invert)
                .then(|| FlameTree::build_ordered(&data.stacks, &data.prefix))
                .flatten();
            ordered.unwrap_or_else(|| {
                FlameTree::build_filtered(&data.stacks, filter, TreeOptions { invert })
            })
        });
        self.set_tree(tree);
        self.top.clear();
        self.unit = data.meta.unit.clone();
        self.diff = data.meta.diff;
        self.trimmed = (data.meta.trimmed_nodes, data.meta.trimmed_value);
    }

    /// Computes the top table of `data` through `filter`.
    pub(crate) fn retop(&mut self, data: &StacksResponse, filter: &StackFilter) {
        self.top = perf::span(perf::names::TOP, || {
            if filter.is_empty() {
                top(&data.stacks)
            } else {
                top(&filter.apply(&data.stacks))
            }
        });
    }

    /// The model of the (already filtered) `stacks`, without a top table: a sandwich pane.
    pub(crate) fn of_stacks(stacks: &StackSet, unit: &str, diff: bool) -> Model {
        let mut model = Model {
            unit: unit.to_owned(),
            diff,
            ..Model::default()
        };
        model.set_tree(FlameTree::build(stacks, TreeOptions::default()));
        model
    }

    /// Takes `tree`, with its colours and largest change; the layout starts over.
    fn set_tree(&mut self, tree: FlameTree) {
        self.tree = tree;
        let frames = self.tree.frames().len();
        *self.colors.get_mut() = [vec![None; frames], vec![None; frames]];
        self.max_delta = self
            .tree
            .nodes()
            .iter()
            .skip(1)
            .map(|n| diff_delta(n).saturating_abs())
            .max()
            .unwrap_or(0);
        self.rects.clear();
        self.zoom = ROOT;
    }

    /// Lays the tree out zoomed on `path` across `width` CSS pixels.
    pub(crate) fn relayout<S: AsRef<str>>(&mut self, path: &[S], width: f64) {
        self.zoom = find_path(&self.tree, path);
        self.width = width;
        self.rects = perf::span(perf::names::LAYOUT, || {
            layout(&self.tree, Some(self.zoom), width, MIN_WIDTH_PX)
        });
    }

    /// Marks the nodes matching `term`.
    pub(crate) fn research(&mut self, term: &str) {
        self.search = search(&self.tree, term);
    }

    /// The drawn rect of `node`, if it is drawn.
    pub(crate) fn rect_of(&self, node: u32) -> Option<&Rect> {
        self.rects.iter().find(|r| r.node == node)
    }

    /// The deepest row laid out.
    pub(crate) fn max_row(&self) -> u16 {
        self.rects.last().map_or(0, |r| r.depth)
    }
}
