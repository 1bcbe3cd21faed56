//! Naming nodes so a link can point at one: the display names from the root down
//! ([`node_path`], [`find_path`]), and what a tooltip says about a node ([`NodeInfo`]).

use super::diff::{diff_delta, diff_ratio};
use super::tree::{FlameTree, ROOT};

/// The display names from the root's child down to `node` (empty for the root).
pub fn node_path(tree: &FlameTree, node: u32) -> Vec<String> {
    let mut path: Vec<String> = std::iter::once(node)
        .chain(tree.ancestors(node))
        .filter(|&n| n != ROOT)
        .map(|n| tree.name(n).into_owned())
        .collect();
    path.reverse();
    path
}

/// The node at `path`, or the deepest node found along it (the root when nothing is):
/// a link still opens near the same place after the data changed.
pub fn find_path<S: AsRef<str>>(tree: &FlameTree, path: &[S]) -> u32 {
    let mut node = ROOT;
    for name in path {
        // Children are sorted by name (a trimmed tree's "other" last): search linearly,
        // paths are short and so are most child lists.
        match tree.children(node).find(|&c| tree.name(c) == name.as_ref()) {
            Some(child) => node = child,
            None => break,
        }
    }
    node
}

/// What the tooltip shows about one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    /// Display name.
    pub name: String,
    /// Source file, or "".
    pub file: String,
    /// Binary (mapping basename), or "".
    pub binary: String,
    /// Value of stacks ending here.
    pub self_value: i64,
    /// Value of stacks through here.
    pub total: i64,
    /// `total` as a fraction of the whole tree.
    pub of_total: f64,
    /// `total` as a fraction of the parent's total (1 for the root).
    pub of_parent: f64,
    /// For diffs: the baseline total, the change and the relative change.
    pub baseline_total: i64,
    /// `total - baseline_total`.
    pub delta: i64,
    /// `delta / |baseline_total|` (±∞ when the baseline is 0).
    pub ratio: f64,
}

impl NodeInfo {
    /// The facts about `node` of `tree`.
    pub fn of(tree: &FlameTree, node: u32) -> NodeInfo {
        let n = tree.node(node);
        let frame = tree.frame(node);
        let fraction = |part: i64, whole: i64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        let synthetic = tree.is_synthetic(node);
        NodeInfo {
            name: tree.name(node).into_owned(),
            file: if synthetic {
                String::new()
            } else {
                frame.file.clone()
            },
            binary: if synthetic {
                String::new()
            } else {
                frame.binary.clone()
            },
            self_value: n.self_value,
            total: n.total,
            of_total: fraction(n.total, tree.total()),
            of_parent: if node == ROOT {
                1.0
            } else {
                fraction(n.total, tree.node(n.parent).total)
            },
            baseline_total: n.baseline_total,
            delta: diff_delta(n),
            ratio: diff_ratio(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::testutil::{diff_stacks, find, stacks};
    use crate::flame::tree::TreeOptions;

    fn tree() -> FlameTree {
        let set = stacks(&[("main;a;b", 30), ("main;a", 10), ("main;c", 40), ("gc", 20)]);
        FlameTree::build(&set, TreeOptions::default())
    }

    #[test]
    fn paths_round_trip() {
        let tree = tree();
        for id in 0..tree.len() as u32 {
            assert_eq!(find_path(&tree, &node_path(&tree, id)), id);
        }
        assert_eq!(
            node_path(&tree, find(&tree, "main;a;b")),
            ["main", "a", "b"]
        );
        assert!(node_path(&tree, ROOT).is_empty());
    }

    #[test]
    fn unknown_paths_stop_at_the_deepest_match() {
        let tree = tree();
        assert_eq!(find_path(&tree, &["main", "zzz", "b"]), find(&tree, "main"));
        assert_eq!(find_path(&tree, &["nope"]), ROOT);
        let none: [&str; 0] = [];
        assert_eq!(find_path(&tree, &none), ROOT);
    }

    #[test]
    fn info_has_shares_of_total_and_parent() {
        let tree = tree();
        let a = NodeInfo::of(&tree, find(&tree, "main;a"));
        assert_eq!((a.name.as_str(), a.self_value, a.total), ("a", 10, 40));
        assert_eq!(a.of_total, 0.4);
        assert_eq!(a.of_parent, 0.5);
        let root = NodeInfo::of(&tree, ROOT);
        assert_eq!((root.of_total, root.of_parent), (1.0, 1.0));
        let empty = FlameTree::default();
        assert_eq!(NodeInfo::of(&empty, ROOT).of_total, 0.0);
    }

    #[test]
    fn info_of_a_diff() {
        let set = diff_stacks(&[("main;f", 150, 100), ("main;g", 0, 50)]);
        let tree = FlameTree::build(&set, TreeOptions::default());
        let f = NodeInfo::of(&tree, find(&tree, "main;f"));
        assert_eq!((f.baseline_total, f.delta, f.ratio), (100, 50, 0.5));
        let g = NodeInfo::of(&tree, find(&tree, "main;g"));
        assert_eq!((g.delta, g.ratio), (-50, -1.0));
    }
}
