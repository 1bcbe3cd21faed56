//! The flame tree: stacks merged root-first by frame name into an arena of nodes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::filter::StackFilter;
use super::hash::IdMap;
use super::model::{Frame, StackSet};

/// Id of the synthetic root node, which holds the grand total.
pub const ROOT: u32 = 0;
/// Function name of the root node's synthetic frame.
pub const ROOT_NAME: &str = "root";
/// Function name of the synthetic frame [`FlameTree::trim`] folds dropped children into.
pub const OTHER_NAME: &str = "other";

/// One node of a [`FlameTree`]: a call path, merged by frame name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Index into [`FlameTree::frames`].
    pub frame: u32,
    /// The parent node; the root is its own parent.
    pub parent: u32,
    /// The first child; children are the contiguous ids `first_child..first_child + child_count`.
    pub first_child: u32,
    /// Number of children.
    pub child_count: u32,
    /// Value of all stacks through this node.
    pub total: i64,
    /// Value of the stacks ending at this node.
    pub self_value: i64,
    /// Baseline (diff side A) value of all stacks through this node.
    pub baseline_total: i64,
    /// Baseline value of the stacks ending at this node.
    pub baseline_self: i64,
    /// Distance from the root, which is at depth 0.
    pub depth: u16,
}

/// How to build a [`FlameTree`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TreeOptions {
    /// Put leaves at the root (an icicle of callers) instead of the outermost callers.
    pub invert: bool,
}

/// Stacks merged into a tree, root first; siblings are merged by display name
/// (function name, or binary and address for unsymbolized frames).
///
/// Nodes are stored breadth-first: parents come before children, each node's children
/// are contiguous and sorted alphabetically by name, and node 0 is a synthetic root.
/// Each frame in [`FlameTree::frames`] is a distinct name, sorted by name after the
/// root's synthetic frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlameTree {
    pub(crate) frames: Vec<Frame>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) inverted: bool,
    /// The synthetic "other" frame added by trimming, if any.
    pub(crate) other_frame: Option<u32>,
}

impl Default for FlameTree {
    fn default() -> Self {
        FlameTree::build(&StackSet::default(), TreeOptions::default())
    }
}

impl FlameTree {
    /// Builds the tree of `stacks`. Empty stacks count in the root's self value;
    /// out-of-range frame indexes are skipped; frames deeper than `u16::MAX` are cut off
    /// (their value stays on the deepest node kept).
    pub fn build(stacks: &StackSet, options: TreeOptions) -> Self {
        let mut builder = Builder::new(&stacks.frames, options);
        for stack in &stacks.stacks {
            builder.add(&stack.frames, stack.value, stack.baseline);
        }
        builder.finish()
    }

    /// Builds the tree of the stacks of `stacks` that pass `filter`, without copying them.
    pub fn build_filtered(stacks: &StackSet, filter: &StackFilter, options: TreeOptions) -> Self {
        let mut builder = Builder::new(&stacks.frames, options);
        for stack in filter.iter(stacks) {
            builder.add(&stack.frames, stack.value, stack.baseline);
        }
        builder.finish()
    }

    /// All nodes, breadth-first; index = node id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The distinct frames nodes refer to; index 0 is the root's synthetic frame.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no node but the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Whether leaves are at the root.
    pub fn is_inverted(&self) -> bool {
        self.inverted
    }

    /// The grand total: the root's total.
    pub fn total(&self) -> i64 {
        self.nodes[ROOT as usize].total
    }

    /// The node `id`. Panics when out of range.
    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// The node `id`, if it exists.
    pub fn get(&self, id: u32) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    /// The frame of node `id`. Panics when out of range.
    pub fn frame(&self, id: u32) -> &Frame {
        &self.frames[self.node(id).frame as usize]
    }

    /// The display name of node `id`. Panics when out of range.
    pub fn name(&self, id: u32) -> Cow<'_, str> {
        self.frame(id).display_name()
    }

    /// The children of node `id`, sorted by name (a trimmed tree's "other" child last).
    pub fn children(&self, id: u32) -> Range<u32> {
        let node = self.node(id);
        node.first_child..node.first_child + node.child_count
    }

    /// The ancestors of node `id`, from its parent up to the root.
    pub fn ancestors(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let mut current = id;
        std::iter::from_fn(move || {
            if current == ROOT {
                return None;
            }
            current = self.node(current).parent;
            Some(current)
        })
    }

    /// Whether frame index `frame` is synthetic (the root's or "other").
    pub fn is_synthetic_frame(&self, frame: u32) -> bool {
        frame == 0 || Some(frame) == self.other_frame
    }

    /// Whether node `id` is synthetic: the root or an "other" node of a trimmed tree.
    pub fn is_synthetic(&self, id: u32) -> bool {
        self.is_synthetic_frame(self.node(id).frame)
    }

    /// The greatest node depth.
    pub fn max_depth(&self) -> u16 {
        // Breadth-first: the last node is among the deepest.
        self.nodes.last().map_or(0, |n| n.depth)
    }
}

/// The frames of a tree built from `frames` (the root's synthetic frame, then one per
/// distinct name, in name order) and, per input frame index, its index among them: the
/// rank siblings are sorted by. [`FlameTree::build`] numbers frames this way.
pub(super) fn frame_ranks(frames: &[Frame]) -> (Vec<Frame>, Vec<u32>) {
    let builder = Builder::new(frames, TreeOptions::default());
    let (sorted, rank) = builder.sorted_frames();
    let ranks = builder.key_of.iter().map(|&k| rank[k as usize]).collect();
    (sorted, ranks)
}

/// The identity siblings are merged by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum FrameKey<'a> {
    Named(&'a str),
    Unsymbolized { binary: &'a str, address: u64 },
}

impl<'a> FrameKey<'a> {
    fn of(frame: &'a Frame) -> Self {
        if frame.is_symbolized() {
            FrameKey::Named(&frame.function)
        } else {
            FrameKey::Unsymbolized {
                binary: &frame.binary,
                address: frame.address,
            }
        }
    }
}

/// The hot part of a node while building, what every stack frame touches (nodes are
/// in insertion order; totals are summed up from self values at the end).
#[derive(Clone, Copy)]
struct Link {
    key: u32,
    /// The child found last, tried before the index: most paths repeat (0 = none).
    last_child: u32,
}

/// Accumulates stacks into raw nodes, then sorts them into a [`FlameTree`].
struct Builder<'a> {
    /// Key id (1-based; 0 is the root) per input frame index.
    key_of: Vec<u32>,
    /// A representative frame per key id; index 0 unused (root).
    reps: Vec<&'a Frame>,
    /// Per raw node: key and last child.
    links: Vec<Link>,
    /// Per raw node: parent.
    parents: Vec<u32>,
    /// Per raw node: self value and baseline self value.
    selfs: Vec<(i64, i64)>,
    /// `(parent << 32 | key)` → child.
    index: IdMap<u64, u32>,
    invert: bool,
}

impl<'a> Builder<'a> {
    fn new(frames: &'a [Frame], options: TreeOptions) -> Self {
        static ROOT_FRAME: Frame = Frame {
            function: String::new(),
            system_name: String::new(),
            file: String::new(),
            line: 0,
            binary: String::new(),
            build_id: String::new(),
            address: 0,
        };
        let mut reps = vec![&ROOT_FRAME];
        let mut ids: HashMap<FrameKey<'a>, u32> = HashMap::new();
        let key_of = frames
            .iter()
            .map(|frame| {
                *ids.entry(FrameKey::of(frame)).or_insert_with(|| {
                    reps.push(frame);
                    reps.len() as u32 - 1
                })
            })
            .collect();
        Builder {
            key_of,
            reps,
            links: vec![Link {
                key: 0,
                last_child: 0,
            }],
            parents: vec![ROOT],
            selfs: vec![(0, 0)],
            index: IdMap::default(),
            invert: options.invert,
        }
    }

    fn add(&mut self, frames: &[u32], value: i64, baseline: i64) {
        let end = if self.invert {
            self.walk(frames.iter())
        } else {
            self.walk(frames.iter().rev())
        };
        let own = &mut self.selfs[end as usize];
        own.0 = own.0.wrapping_add(value);
        own.1 = own.1.wrapping_add(baseline);
    }

    /// Follows (creating as needed) the nodes of `path`, root-first frame indexes;
    /// returns the last node.
    fn walk<'f>(&mut self, path: impl Iterator<Item = &'f u32>) -> u32 {
        let mut current = ROOT;
        let mut depth = 0u16;
        for &frame in path {
            let Some(&key) = self.key_of.get(frame as usize) else {
                continue;
            };
            if depth == u16::MAX {
                break;
            }
            current = self.child(current, key);
            depth += 1;
        }
        current
    }

    fn child(&mut self, parent: u32, key: u32) -> u32 {
        let last = self.links[parent as usize].last_child;
        if last != 0 && self.links[last as usize].key == key {
            return last;
        }
        let next = self.links.len() as u32;
        let id = *self
            .index
            .entry(u64::from(parent) << 32 | u64::from(key))
            .or_insert(next);
        if id == next {
            self.links.push(Link { key, last_child: 0 });
            self.parents.push(parent);
            self.selfs.push((0, 0));
        }
        self.links[parent as usize].last_child = id;
        id
    }

    fn finish(self) -> FlameTree {
        let (frames, rank) = self.sorted_frames();
        let children = Children::new(&self.links, &self.parents, &rank);
        let mut nodes = self.breadth_first(&children, &rank);
        sum_totals(&mut nodes);
        FlameTree {
            frames,
            nodes,
            inverted: self.invert,
            other_frame: None,
        }
    }

    /// The frames in name order after the root frame, and each key's new frame index.
    fn sorted_frames(&self) -> (Vec<Frame>, Vec<u32>) {
        let mut order: Vec<(Cow<'_, str>, u32)> = (1..self.reps.len() as u32)
            .map(|key| (self.reps[key as usize].display_name(), key))
            .collect();
        order.sort_unstable_by(|(a_name, a), (b_name, b)| {
            let (a_rep, b_rep) = (self.reps[*a as usize], self.reps[*b as usize]);
            a_name
                .cmp(b_name)
                .then_with(|| a_rep.binary.cmp(&b_rep.binary))
                .then_with(|| a.cmp(b))
        });
        let mut rank = vec![0u32; self.reps.len()];
        let mut frames = Vec::with_capacity(self.reps.len());
        frames.push(Frame::named(ROOT_NAME));
        for (i, (_, key)) in order.iter().enumerate() {
            rank[*key as usize] = i as u32 + 1;
            frames.push(self.reps[*key as usize].clone());
        }
        (frames, rank)
    }

    /// The nodes renumbered breadth-first so that siblings are contiguous, with depths
    /// and self values; totals are left equal to self values.
    fn breadth_first(&self, children: &Children, rank: &[u32]) -> Vec<Node> {
        let len = self.links.len();
        let mut order: Vec<u32> = Vec::with_capacity(len);
        let mut new_id = vec![0u32; len];
        let mut nodes: Vec<Node> = Vec::with_capacity(len);
        order.push(ROOT);
        let mut i = 0;
        while i < order.len() {
            let old = order[i] as usize;
            let kids = children.of(old);
            let first_child = order.len() as u32;
            for &kid in kids {
                new_id[kid as usize] = order.len() as u32;
                order.push(kid);
            }
            let parent = new_id[self.parents[old] as usize];
            let (self_value, baseline_self) = self.selfs[old];
            nodes.push(Node {
                frame: rank[self.links[old].key as usize],
                parent,
                first_child,
                child_count: kids.len() as u32,
                total: self_value,
                self_value,
                baseline_total: baseline_self,
                baseline_self,
                depth: if i == 0 {
                    0
                } else {
                    nodes[parent as usize].depth + 1
                },
            });
            i += 1;
        }
        nodes
    }
}

/// Adds every node's total into its parent's, children first (breadth-first order
/// puts children after parents).
pub(super) fn sum_totals(nodes: &mut [Node]) {
    for i in (1..nodes.len()).rev() {
        let (total, baseline, parent) = (nodes[i].total, nodes[i].baseline_total, nodes[i].parent);
        let parent = &mut nodes[parent as usize];
        parent.total = parent.total.wrapping_add(total);
        parent.baseline_total = parent.baseline_total.wrapping_add(baseline);
    }
}

/// Raw children per raw node in CSR form: `ids[offsets[n]..offsets[n + 1]]` are the
/// children of raw node `n`, sorted by frame rank.
struct Children {
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

impl Children {
    fn new(links: &[Link], parents: &[u32], rank: &[u32]) -> Self {
        let mut offsets = vec![0u32; links.len() + 1];
        for &parent in &parents[1..] {
            offsets[parent as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        // Sort (rank, id) pairs packed in a u64: no indirection while sorting.
        let mut fill = offsets.clone();
        let mut packed = vec![0u64; links.len() - 1];
        for id in 1..links.len() {
            let slot = &mut fill[parents[id] as usize];
            packed[*slot as usize] = u64::from(rank[links[id].key as usize]) << 32 | id as u64;
            *slot += 1;
        }
        for w in offsets.windows(2) {
            packed[w[0] as usize..w[1] as usize].sort_unstable();
        }
        let ids = packed.into_iter().map(|p| p as u32).collect();
        Children { offsets, ids }
    }

    fn of(&self, node: usize) -> &[u32] {
        &self.ids[self.offsets[node] as usize..self.offsets[node + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::flame::model::Stack;
    use crate::flame::testutil::{assert_invariants, diff_stacks, find, shape, stacks};

    fn build(folded: &[(&str, i64)]) -> FlameTree {
        FlameTree::build(&stacks(folded), TreeOptions::default())
    }

    #[test]
    fn merges_by_name_root_first_with_sorted_children() {
        let tree = build(&[
            ("main;b;x", 3),
            ("main;a", 2),
            ("main;b", 1),
            ("main;b;x", 4),
        ]);
        assert_eq!(
            shape(&tree),
            [
                "root 10/0",
                "main 10/0",
                "main;a 2/2",
                "main;b 8/1",
                "main;b;x 7/7"
            ]
        );
        let b = find(&tree, "main;b");
        assert_eq!(tree.node(b).depth, 2);
        assert_eq!(tree.node(b).parent, find(&tree, "main"));
        assert_eq!(tree.children(find(&tree, "main")), 2..4);
        assert_eq!(tree.max_depth(), 3);
        assert_eq!(tree.total(), 10);
        assert_eq!(
            tree.ancestors(find(&tree, "main;b;x")).collect::<Vec<_>>(),
            [b, 1, 0]
        );
    }

    #[test]
    fn frames_are_distinct_names_in_order() {
        let tree = build(&[("z;y", 1), ("y;z", 1)]);
        let names: Vec<_> = tree.frames().iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, [ROOT_NAME, "y", "z"]);
        assert!(tree.is_synthetic(ROOT));
        assert!(!tree.is_synthetic(1));
    }

    #[test]
    fn empty_stacks_and_empty_sets() {
        let tree = build(&[("", 5), ("f", 2)]);
        assert_eq!(shape(&tree), ["root 7/5", "f 2/2"]);
        let empty = FlameTree::default();
        assert!(empty.is_empty());
        assert_eq!(shape(&empty), ["root 0/0"]);
        assert_eq!(empty.max_depth(), 0);
    }

    #[test]
    fn recursion_makes_deeper_nodes() {
        let tree = build(&[("f;f;f", 1), ("f;g", 1)]);
        assert_eq!(
            shape(&tree),
            ["root 2/0", "f 2/0", "f;f 1/0", "f;g 1/1", "f;f;f 1/1"]
        );
    }

    #[test]
    fn unsymbolized_frames_merge_by_binary_and_address() {
        let tree = build(&[("0x10@a", 1), ("0x10@a", 2), ("0x10@b", 4), ("0x20@a", 8)]);
        assert_eq!(tree.children(ROOT).len(), 3);
        let totals: Vec<_> = tree.children(ROOT).map(|c| tree.node(c).total).collect();
        assert_eq!(totals, [3, 4, 8]);
        assert_eq!(tree.name(1), "0x10");
        assert_eq!(tree.frame(2).binary, "b");
    }

    #[test]
    fn symbolized_frames_merge_across_lines_and_binaries() {
        let mut set = stacks(&[("f", 1), ("f", 2)]);
        set.frames[0].line = 10;
        set.frames[1].binary = "other".into();
        let tree = FlameTree::build(&set, TreeOptions::default());
        assert_eq!(shape(&tree), ["root 3/0", "f 3/3"]);
        assert_eq!(tree.frame(1).line, 10);
    }

    #[test]
    fn invert_puts_leaves_at_the_root() {
        let set = stacks(&[("main;a;malloc", 3), ("main;b;malloc", 2), ("main;b", 1)]);
        let tree = FlameTree::build(&set, TreeOptions { invert: true });
        assert!(tree.is_inverted());
        assert_eq!(
            shape(&tree),
            [
                "root 6/0",
                "b 1/0",
                "malloc 5/0",
                "b;main 1/1",
                "malloc;a 3/0",
                "malloc;b 2/0",
                "malloc;a;main 3/3",
                "malloc;b;main 2/2",
            ]
        );
    }

    #[test]
    fn baselines_accumulate_like_values() {
        let set = diff_stacks(&[("main;a", 3, 1), ("main;b", 0, 5), ("main", 1, 2)]);
        let tree = FlameTree::build(&set, TreeOptions::default());
        let main = tree.node(find(&tree, "main"));
        assert_eq!(
            (main.total, main.baseline_total, main.baseline_self),
            (4, 8, 2)
        );
        let b = tree.node(find(&tree, "main;b"));
        assert_eq!((b.total, b.baseline_total, b.baseline_self), (0, 5, 5));
    }

    #[test]
    fn out_of_range_frames_are_skipped() {
        let mut set = stacks(&[("f;g", 1)]);
        set.stacks[0].frames.insert(1, 999);
        let tree = FlameTree::build(&set, TreeOptions::default());
        assert_eq!(shape(&tree), ["root 1/0", "f 1/0", "f;g 1/1"]);
    }

    #[test]
    fn build_filtered_matches_apply() {
        let set = stacks(&[("main;a;malloc", 3), ("main;b", 2), ("gc", 1)]);
        let filter = StackFilter {
            keep_containing: vec!["MAIN".into()],
            hide_frames: vec!["malloc".into()],
            ..StackFilter::default()
        };
        let direct = FlameTree::build_filtered(&set, &filter, TreeOptions::default());
        let applied = FlameTree::build(&filter.apply(&set), TreeOptions::default());
        assert_eq!(direct, applied);
        assert_eq!(
            shape(&direct),
            ["root 5/0", "main 5/0", "main;a 3/3", "main;b 2/2"]
        );
    }

    fn stack_set() -> impl Strategy<Value = StackSet> {
        let frame = (0u8..6, any::<bool>()).prop_map(|(n, symbolized)| Frame {
            function: if symbolized {
                format!("f{n}")
            } else {
                String::new()
            },
            address: u64::from(n),
            binary: format!("bin{}", n % 2),
            ..Frame::default()
        });
        let stack = (
            prop::collection::vec(0u32..10, 0..8),
            -5i64..1000,
            0i64..1000,
        )
            .prop_map(|(frames, value, baseline)| Stack {
                frames,
                value,
                baseline,
            });
        (
            prop::collection::vec(frame, 1..10),
            prop::collection::vec(stack, 0..30),
        )
            .prop_map(|(frames, stacks)| StackSet { frames, stacks })
    }

    proptest! {
        #[test]
        fn totals_add_up(set in stack_set(), invert in any::<bool>()) {
            let tree = FlameTree::build(&set, TreeOptions { invert });
            prop_assert_eq!(tree.total(), set.total());
            let baseline: i64 = set.stacks.iter().map(|s| s.baseline).sum();
            prop_assert_eq!(tree.node(ROOT).baseline_total, baseline);
            assert_invariants(&tree);
        }

        #[test]
        fn siblings_are_distinct_and_sorted(set in stack_set()) {
            let tree = FlameTree::build(&set, TreeOptions::default());
            for id in 0..tree.len() as u32 {
                let frames: Vec<u32> = tree.children(id).map(|c| tree.node(c).frame).collect();
                prop_assert!(frames.windows(2).all(|w| w[0] < w[1]));
                let names: Vec<_> = tree.children(id).map(|c| tree.name(c)).collect();
                prop_assert!(names.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}
