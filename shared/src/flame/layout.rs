//! Flame-graph layout: rectangles for a canvas, and hit testing.

use serde::{Deserialize, Serialize};

use super::tree::{FlameTree, ROOT};

/// The rectangle of one node, in pixels horizontally and rows vertically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    /// The node drawn.
    pub node: u32,
    /// Left edge in pixels.
    pub x: f64,
    /// Width in pixels.
    pub width: f64,
    /// Row: the node's depth (the root is row 0).
    pub depth: u16,
}

/// Lays out `tree` zoomed on `zoom` (the root when `None` or out of range) across
/// `width_px` pixels.
///
/// The zoomed node and its ancestors (breadcrumbs) span the full width; descendants
/// get widths proportional to their totals. Nodes narrower than `min_width_px`, or
/// with a total ≤ 0, are culled with their whole subtree, which is never visited:
/// the cost is proportional to the visible nodes and their children.
///
/// Rects come sorted by depth, then by `x` (so parents before children), which is what
/// [`hit_test`] expects. A child never extends past its parent's right edge.
pub fn layout(tree: &FlameTree, zoom: Option<u32>, width_px: f64, min_width_px: f64) -> Vec<Rect> {
    let zoom = zoom.filter(|&z| tree.get(z).is_some()).unwrap_or(ROOT);
    let mut rects = breadcrumbs(tree, zoom, width_px);
    let total = tree.node(zoom).total;
    if total <= 0 || width_px.is_nan() || width_px <= 0.0 {
        return rects;
    }
    let scale = width_px / total as f64;
    // Breadth-first, using the output as the queue.
    let mut next = rects.len() - 1;
    while next < rects.len() {
        let parent = rects[next];
        next += 1;
        push_children(tree, parent, scale, min_width_px, &mut rects);
    }
    rects
}

/// Full-width rects for `zoom` and its ancestors, root first.
fn breadcrumbs(tree: &FlameTree, zoom: u32, width_px: f64) -> Vec<Rect> {
    let depth = tree.node(zoom).depth;
    let mut rects = vec![Rect::default(); usize::from(depth) + 1];
    for (slot, node) in rects
        .iter_mut()
        .rev()
        .zip(std::iter::once(zoom).chain(tree.ancestors(zoom)))
    {
        *slot = Rect {
            node,
            x: 0.0,
            width: width_px,
            depth: tree.node(node).depth,
        };
    }
    rects
}

/// Appends the rects of the visible children of `parent`.
fn push_children(
    tree: &FlameTree,
    parent: Rect,
    scale: f64,
    min_width_px: f64,
    rects: &mut Vec<Rect>,
) {
    let right = parent.x + parent.width;
    let mut offset: i64 = 0;
    for child in tree.children(parent.node) {
        let node = tree.node(child);
        if node.total <= 0 {
            continue;
        }
        let x = parent.x + offset as f64 * scale;
        offset = offset.saturating_add(node.total);
        let width = (node.total as f64 * scale).min(right - x);
        if width >= min_width_px && width > 0.0 {
            rects.push(Rect {
                node: child,
                x,
                width,
                depth: node.depth,
            });
        }
    }
}

/// The node whose rect contains `x` in row `depth`, if any. `rects` must be sorted by
/// depth then `x`, without overlaps within a row, as [`layout`] returns them; the cost
/// is two binary searches.
pub fn hit_test(rects: &[Rect], x: f64, depth: u16) -> Option<u32> {
    let start = rects.partition_point(|r| r.depth < depth);
    let row = &rects[start..];
    let row = &row[..row.partition_point(|r| r.depth == depth)];
    let candidate = row[..row.partition_point(|r| r.x <= x)].last()?;
    (x < candidate.x + candidate.width).then_some(candidate.node)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::flame::testutil::{find, stacks};
    use crate::flame::tree::TreeOptions;

    fn tree() -> FlameTree {
        let set = stacks(&[
            ("main;a;a1", 40),
            ("main;a", 10),
            ("main;b", 30),
            ("main;c", 1),
            ("gc", 19),
        ]);
        FlameTree::build(&set, TreeOptions::default())
    }

    fn named(tree: &FlameTree, rects: &[Rect]) -> Vec<(String, f64, f64, u16)> {
        rects
            .iter()
            .map(|r| (tree.name(r.node).into_owned(), r.x, r.width, r.depth))
            .collect()
    }

    #[test]
    fn unzoomed_layout_is_proportional() {
        let tree = tree();
        let rects = layout(&tree, None, 1000.0, 1.0);
        let expected = [
            ("root", 0.0, 1000.0, 0),
            ("gc", 0.0, 190.0, 1),
            ("main", 190.0, 810.0, 1),
            ("a", 190.0, 500.0, 2),
            ("b", 690.0, 300.0, 2),
            ("c", 990.0, 10.0, 2),
            ("a1", 190.0, 400.0, 3),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(n, x, w, d)| (n.to_owned(), x, w, d))
            .collect();
        assert_eq!(named(&tree, &rects), expected);
    }

    #[test]
    fn narrow_nodes_are_culled_with_their_subtree() {
        let tree = tree();
        let rects = layout(&tree, None, 100.0, 5.0);
        let names: Vec<_> = named(&tree, &rects).into_iter().map(|r| r.0).collect();
        // c is 1px; a1 stays (40px) under a.
        assert_eq!(names, ["root", "gc", "main", "a", "b", "a1"]);
        let rects = layout(&tree, None, 100.0, 60.0);
        let names: Vec<_> = named(&tree, &rects).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["root", "main"]);
    }

    #[test]
    fn zoom_spans_full_width_under_full_width_ancestors() {
        let tree = tree();
        let a = find(&tree, "main;a");
        let rects = layout(&tree, Some(a), 500.0, 1.0);
        let expected = [
            ("root", 0.0, 500.0, 0),
            ("main", 0.0, 500.0, 1),
            ("a", 0.0, 500.0, 2),
            ("a1", 0.0, 400.0, 3),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(n, x, w, d)| (n.to_owned(), x, w, d))
            .collect();
        assert_eq!(named(&tree, &rects), expected);
    }

    #[test]
    fn bad_zoom_and_degenerate_sizes() {
        let tree = tree();
        assert_eq!(
            layout(&tree, Some(999), 100.0, 1.0),
            layout(&tree, None, 100.0, 1.0)
        );
        assert_eq!(layout(&tree, None, 0.0, 1.0).len(), 1);
        assert_eq!(layout(&tree, None, f64::NAN, 1.0).len(), 1);
        let empty = FlameTree::default();
        assert_eq!(layout(&empty, None, 100.0, 1.0).len(), 1);
        let zero = FlameTree::build(&stacks(&[("f", 0)]), TreeOptions::default());
        assert_eq!(layout(&zero, Some(1), 100.0, 1.0).len(), 2);
    }

    #[test]
    fn hit_test_finds_the_rect_under_the_pointer() {
        let tree = tree();
        let rects = layout(&tree, None, 1000.0, 1.0);
        let hit = |x, depth| hit_test(&rects, x, depth).map(|n| tree.name(n).into_owned());
        assert_eq!(hit(0.0, 0).as_deref(), Some("root"));
        assert_eq!(hit(189.9, 1).as_deref(), Some("gc"));
        assert_eq!(hit(190.0, 1).as_deref(), Some("main"));
        assert_eq!(hit(995.0, 2).as_deref(), Some("c"));
        assert_eq!(hit(600.0, 3), None);
        assert_eq!(hit(200.0, 3).as_deref(), Some("a1"));
        assert_eq!(hit(-1.0, 1), None);
        assert_eq!(hit(1000.0, 1), None);
        assert_eq!(hit(10.0, 9), None);
        assert_eq!(hit_test(&[], 1.0, 0), None);
    }

    proptest! {
        #[test]
        fn children_fit_in_their_parents(
            folded in prop::collection::vec(("[abcd](;[abcd]){0,5}", 0i64..1000), 1..30),
            width in 1.0f64..2000.0,
            min_width in 0.0f64..3.0,
            zoom in 0u32..20,
        ) {
            let folded: Vec<_> = folded.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let tree = FlameTree::build(&stacks(&folded), TreeOptions::default());
            let rects = layout(&tree, Some(zoom), width, min_width);
            let mut by_node = std::collections::HashMap::new();
            for (i, r) in rects.iter().enumerate() {
                if i > 0 {
                    let prev = rects[i - 1];
                    prop_assert!(
                        prev.depth < r.depth
                            || (prev.depth == r.depth && prev.x + prev.width <= r.x + 1e-9)
                    );
                }
                if r.node != ROOT {
                    let parent = by_node.get(&tree.node(r.node).parent);
                    let parent: &Rect = parent.expect("parent drawn first");
                    prop_assert!(r.x >= parent.x - 1e-9);
                    prop_assert!(r.x + r.width <= parent.x + parent.width + 1e-9);
                }
                prop_assert!(r.width >= min_width.min(width));
                prop_assert_eq!(hit_test(&rects, r.x + r.width / 2.0, r.depth), Some(r.node));
                by_node.insert(r.node, *r);
            }
        }
    }
}
