//! Keyboard navigation between the drawn nodes of a flame graph: to the parent, to the
//! widest drawn child, and to the neighbours left and right in the same row.

use super::layout::Rect;
use super::tree::{FlameTree, ROOT};

/// A move of the keyboard cursor, in tree terms (the UI maps arrow keys to these by
/// orientation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// To the caller.
    Parent,
    /// To the widest drawn callee.
    Child,
    /// To the drawn node left of it in its row.
    Left,
    /// To the drawn node right of it in its row.
    Right,
}

/// Where `step` leads from node `from` among the drawn `rects` (sorted by depth, then
/// `x`, as [`layout`](super::layout) returns them). `None` when there is nowhere to go;
/// a `from` that is not drawn starts at the root.
pub fn step(tree: &FlameTree, rects: &[Rect], from: Option<u32>, step: Step) -> Option<u32> {
    let Some(at) = from.and_then(|n| rects.iter().position(|r| r.node == n)) else {
        return rects.first().map(|r| r.node);
    };
    let rect = rects[at];
    match step {
        Step::Parent => (rect.node != ROOT)
            .then(|| tree.node(rect.node).parent)
            .filter(|p| rects.iter().any(|r| r.node == *p)),
        Step::Child => rects
            .iter()
            .filter(|r| r.node != rect.node && tree.node(r.node).parent == rect.node)
            .max_by(|a, b| a.width.total_cmp(&b.width).then(b.x.total_cmp(&a.x)))
            .map(|r| r.node),
        Step::Left => at
            .checked_sub(1)
            .map(|i| rects[i])
            .filter(|r| r.depth == rect.depth)
            .map(|r| r.node),
        Step::Right => rects
            .get(at + 1)
            .filter(|r| r.depth == rect.depth)
            .map(|r| r.node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::layout::layout;
    use crate::flame::testutil::{find, stacks};
    use crate::flame::tree::TreeOptions;

    #[test]
    fn arrows_walk_the_drawn_tree() {
        let set = stacks(&[("main;a;x", 5), ("main;b", 30), ("main;c", 1), ("gc", 19)]);
        let tree = FlameTree::build(&set, TreeOptions::default());
        let rects = layout(&tree, None, 1000.0, 1.0);
        let go = |from: &str, s| {
            let from = (!from.is_empty()).then(|| find(&tree, from));
            step(&tree, &rects, from, s).map(|n| tree.name(n).into_owned())
        };
        assert_eq!(go("", Step::Child).as_deref(), Some("root"));
        assert_eq!(go("main", Step::Child).as_deref(), Some("b"));
        assert_eq!(go("main;b", Step::Left).as_deref(), Some("a"));
        assert_eq!(go("main;b", Step::Right).as_deref(), Some("c"));
        assert_eq!(go("main;c", Step::Right), None);
        assert_eq!(go("gc", Step::Left), None);
        assert_eq!(go("main;a;x", Step::Parent).as_deref(), Some("a"));
        assert_eq!(go("main;a;x", Step::Child), None);
        // The row ends at the right edge of its row, even under another parent.
        assert_eq!(go("gc", Step::Right).as_deref(), Some("main"));
        // Culled nodes are skipped: at 40 px, c (1/55 of it) is not drawn.
        let narrow = layout(&tree, None, 40.0, 1.0);
        let b = find(&tree, "main;b");
        assert_eq!(step(&tree, &narrow, Some(b), Step::Right), None);
        assert_eq!(step(&tree, &narrow, Some(ROOT), Step::Parent), None);
    }
}
