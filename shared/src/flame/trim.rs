//! Bounding a tree's size: keep the largest nodes, fold the rest into "other" nodes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use super::model::{Frame, Stack, StackSet};
use super::tree::{FlameTree, Node, OTHER_NAME, ROOT};

/// What [`FlameTree::trim`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trimmed {
    /// Number of nodes of the original tree that were dropped.
    pub nodes: usize,
    /// Value moved into "other" nodes: the totals of the dropped children of kept nodes.
    pub value: i64,
}

/// Marks a node of the trimmed tree that has no original ("other").
const NO_ORIGIN: u32 = u32::MAX;

/// Values folded into one "other" node.
#[derive(Default)]
struct Folded {
    any: bool,
    trimmed: i64,
    total: i64,
    baseline: i64,
}

impl FlameTree {
    /// Keeps the `max_nodes` largest nodes by total (at least the root, and always the
    /// ancestors of a kept node: the largest are taken best-first from the root), and
    /// folds the dropped children of each kept node into one synthetic [`OTHER_NAME`]
    /// child, last among its siblings. "Other" nodes come on top of `max_nodes`.
    ///
    /// Totals of kept nodes are unchanged. Ties go to the node first in breadth-first
    /// order. Trimming a trimmed tree merges old and new "other" nodes.
    pub fn trim(&self, max_nodes: usize) -> (FlameTree, Trimmed) {
        if self.nodes.len() <= max_nodes {
            return (self.clone(), Trimmed::default());
        }
        let (keep, kept) = self.largest(max_nodes.max(1));
        let (tree, value) = self.rebuild(&keep);
        let trimmed = Trimmed {
            nodes: self.nodes.len() - kept,
            value,
        };
        (tree, trimmed)
    }

    /// The tree as a stack set: one stack (its path, leaf first) per node with a self
    /// value, so a trimmed tree can travel as stacks. Frames are the tree's, "other"
    /// included; the root's own value becomes the empty stack. Building a tree from the
    /// result gives this tree back (merged by name, so file and line are those of the
    /// first frame of each name).
    pub fn to_stacks(&self) -> StackSet {
        let mut stacks = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            if node.self_value == 0 && node.baseline_self == 0 {
                continue;
            }
            let mut frames = Vec::with_capacity(usize::from(node.depth));
            let mut current = id as u32;
            while current != ROOT {
                let n = &self.nodes[current as usize];
                frames.push(n.frame);
                current = n.parent;
            }
            if self.inverted {
                frames.reverse();
            }
            stacks.push(Stack {
                frames,
                value: node.self_value,
                baseline: node.baseline_self,
            });
        }
        StackSet {
            frames: self.frames.clone(),
            stacks,
        }
    }

    /// Marks the `count` largest nodes, best-first from the root; returns how many.
    fn largest(&self, count: usize) -> (Vec<bool>, usize) {
        let mut keep = vec![false; self.nodes.len()];
        let mut heap = BinaryHeap::from([(self.total(), Reverse(ROOT))]);
        let mut kept = 0;
        while kept < count {
            let Some((_, Reverse(id))) = heap.pop() else {
                break;
            };
            keep[id as usize] = true;
            kept += 1;
            heap.extend(self.children(id).map(|c| (self.node(c).total, Reverse(c))));
        }
        (keep, kept)
    }

    /// The tree of the kept nodes plus "other" nodes, and the value newly folded.
    fn rebuild(&self, keep: &[bool]) -> (FlameTree, i64) {
        let mut frames = self.frames.clone();
        let other_frame = self.other_frame.unwrap_or_else(|| {
            frames.push(Frame::named(OTHER_NAME));
            frames.len() as u32 - 1
        });
        let mut nodes = vec![*self.node(ROOT)];
        let mut origin = vec![ROOT];
        let mut trimmed = 0;
        let mut made_other = false;
        let mut i = 0;
        while i < nodes.len() {
            let first_child = nodes.len() as u32;
            if origin[i] != NO_ORIGIN {
                let folded =
                    self.push_kept_children(origin[i], i as u32, keep, &mut nodes, &mut origin);
                if folded.any {
                    made_other = true;
                    trimmed += folded.trimmed;
                    nodes.push(other_node(&nodes[i], i as u32, other_frame, &folded));
                    origin.push(NO_ORIGIN);
                }
            }
            nodes[i].first_child = first_child;
            nodes[i].child_count = nodes.len() as u32 - first_child;
            i += 1;
        }
        let other_frame = if made_other || self.other_frame.is_some() {
            Some(other_frame)
        } else {
            frames.pop();
            None
        };
        let tree = FlameTree {
            frames,
            nodes,
            inverted: self.inverted,
            other_frame,
        };
        (tree, trimmed)
    }

    /// Copies the kept children of `old` under new node `parent`; returns the rest.
    fn push_kept_children(
        &self,
        old: u32,
        parent: u32,
        keep: &[bool],
        nodes: &mut Vec<Node>,
        origin: &mut Vec<u32>,
    ) -> Folded {
        let mut folded = Folded::default();
        let mut old_other = None;
        for child in self.children(old) {
            let node = self.node(child);
            if !keep[child as usize] {
                folded.any = true;
                folded.trimmed += node.total;
                folded.total += node.total;
                folded.baseline += node.baseline_total;
            } else if self.is_synthetic(child) {
                old_other = Some(node);
            } else {
                nodes.push(Node { parent, ..*node });
                origin.push(child);
            }
        }
        if let Some(node) = old_other {
            if folded.any {
                folded.total += node.total;
                folded.baseline += node.baseline_total;
            } else {
                nodes.push(Node { parent, ..*node });
                origin.push(NO_ORIGIN);
            }
        }
        folded
    }
}

/// The "other" child of `parent` (new id `parent_id`) holding `folded`.
fn other_node(parent: &Node, parent_id: u32, frame: u32, folded: &Folded) -> Node {
    Node {
        frame,
        parent: parent_id,
        first_child: 0,
        child_count: 0,
        total: folded.total,
        self_value: folded.total,
        baseline_total: folded.baseline,
        baseline_self: folded.baseline,
        depth: parent.depth + 1,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::flame::testutil::{assert_invariants, diff_stacks, shape, stacks};
    use crate::flame::tree::TreeOptions;

    fn tree() -> FlameTree {
        let set = diff_stacks(&[
            ("main;a;a1", 50, 5),
            ("main;a;a2", 3, 1),
            ("main;b", 20, 2),
            ("main;c;c1", 2, 0),
            ("main;d", 1, 1),
            ("gc", 4, 4),
        ]);
        FlameTree::build(&set, TreeOptions::default())
    }

    #[test]
    fn no_trim_when_small_enough() {
        let tree = tree();
        let (same, trimmed) = tree.trim(tree.len());
        assert_eq!(same, tree);
        assert_eq!(trimmed, Trimmed::default());
    }

    #[test]
    fn folds_dropped_children_into_other() {
        // Largest first: root 80, main 76, a 53, a1 50, b 20 | gc 4, a2 3, c 2, ...
        let (trimmed, info) = tree().trim(5);
        assert_eq!(
            shape(&trimmed),
            [
                "root 80/0",
                "main 76/0",
                "other 4/4",
                "main;a 53/0",
                "main;b 20/20",
                "main;other 3/3",
                "main;a;a1 50/50",
                "main;a;other 3/3",
            ]
        );
        assert_eq!(
            info,
            Trimmed {
                nodes: 5,
                value: 10
            }
        );
        assert!(trimmed.is_synthetic(2));
        assert_eq!(trimmed.node(2).baseline_total, 4);
        assert_eq!(trimmed.node(5).baseline_total, 1);
        assert_eq!(trimmed.frames().len(), tree().frames().len() + 1);
        assert_invariants(&trimmed);
    }

    #[test]
    fn to_stacks_rebuilds_the_same_tree() {
        let (trimmed, _) = tree().trim(5);
        let stacks = trimmed.to_stacks();
        assert_eq!(stacks.total(), 80);
        let rebuilt = FlameTree::build(&stacks, TreeOptions::default());
        assert_eq!(shape(&rebuilt), shape(&trimmed));
        let inverted = FlameTree::build(
            &diff_stacks(&[("main;a", 5, 1)]),
            TreeOptions { invert: true },
        );
        let back = FlameTree::build(&inverted.to_stacks(), TreeOptions::default());
        assert_eq!(shape(&back), ["root 5/0", "main 5/0", "main;a 5/5"]);
        assert_eq!(back.node(2).baseline_self, 1);
    }

    #[test]
    fn zero_keeps_the_root() {
        let (trimmed, info) = tree().trim(0);
        assert_eq!(shape(&trimmed), ["root 80/0", "other 80/80"]);
        assert_eq!(
            info,
            Trimmed {
                nodes: 9,
                value: 80
            }
        );
    }

    #[test]
    fn trimming_twice_merges_other_nodes() {
        let (once, _) = tree().trim(5);
        let (twice, info) = once.trim(4);
        // Kept: root, main, a, a1; b and the old "other" nodes are dropped.
        assert_eq!(
            info,
            Trimmed {
                nodes: 4,
                value: 30
            }
        );
        let main_children: Vec<_> = twice.children(1).map(|c| twice.name(c)).collect();
        assert_eq!(main_children, ["a", "other"]);
        assert_eq!(twice.node(twice.children(1).end - 1).total, 23);
        assert_eq!(twice.frames().len(), once.frames().len());
        assert_invariants(&twice);
    }

    proptest! {
        #[test]
        fn trim_keeps_totals_and_bounds_size(
            folded in prop::collection::vec(("[abc](;[abc]){0,4}", 0i64..100), 0..20),
            max in 0usize..12,
        ) {
            let folded: Vec<_> = folded.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let tree = FlameTree::build(&stacks(&folded), TreeOptions::default());
            let (trimmed, info) = tree.trim(max);
            assert_invariants(&trimmed);
            prop_assert_eq!(trimmed.total(), tree.total());
            let real = (0..trimmed.len() as u32).filter(|&n| !trimmed.is_synthetic(n)).count();
            prop_assert!(real < max.max(1));
            prop_assert_eq!(real + 1 + info.nodes, tree.len());
            let other: i64 = (0..trimmed.len() as u32)
                .filter(|&n| n != ROOT && trimmed.is_synthetic(n))
                .map(|n| trimmed.node(n).total)
                .sum();
            prop_assert_eq!(other, info.value);
        }
    }
}
