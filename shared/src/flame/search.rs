//! Finding nodes by name: search highlighting and focusing a function.

use serde::{Deserialize, Serialize};

use super::text::{Terms, per_frame};
use super::tree::{FlameTree, ROOT};

/// What [`search`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Per node id: whether its name matches.
    pub matches: Vec<bool>,
    /// Value of the stacks through at least one matching node, each counted once
    /// (the sum over topmost matches), for "x% of total".
    pub matched_total: i64,
}

/// Marks the nodes whose display name contains `term`, case-insensitively. An empty
/// term matches nothing; synthetic nodes (root, "other") never match.
pub fn search(tree: &FlameTree, term: &str) -> SearchResult {
    let terms = Terms::new(&[term]);
    if terms.is_empty() {
        return SearchResult {
            matches: vec![false; tree.len()],
            matched_total: 0,
        };
    }
    let by_frame = frame_matches(tree, |name| terms.matches(name));
    let matches: Vec<bool> = tree
        .nodes()
        .iter()
        .map(|n| by_frame[n.frame as usize])
        .collect();
    let matched_total = topmost_total(tree, &matches);
    SearchResult {
        matches,
        matched_total,
    }
}

/// `matches(lower-cased name)` per frame of `tree`, false for synthetic frames.
fn frame_matches(tree: &FlameTree, matches: impl Fn(&str) -> bool) -> Vec<bool> {
    let mut frame = 0;
    per_frame(tree.frames(), |name| {
        let synthetic = tree.is_synthetic_frame(frame);
        frame += 1;
        !synthetic && matches(name)
    })
}

/// The sum of totals of matching nodes that have no matching ancestor.
fn topmost_total(tree: &FlameTree, matches: &[bool]) -> i64 {
    // Nodes are breadth-first, so a parent's flag is final before its children look.
    let mut covered = vec![false; matches.len()];
    let mut total = 0i64;
    for (id, node) in tree.nodes().iter().enumerate().skip(1) {
        let inherited = covered[node.parent as usize];
        if matches[id] && !inherited {
            total = total.wrapping_add(node.total);
        }
        covered[id] = inherited || matches[id];
    }
    total
}

/// The node with the largest total whose display name is exactly `function` (ties go
/// to the first in breadth-first order): where to zoom when a top-table row is clicked.
pub fn focus_path(tree: &FlameTree, function: &str) -> Option<u32> {
    let by_frame: Vec<bool> = tree
        .frames()
        .iter()
        .enumerate()
        .map(|(i, f)| !tree.is_synthetic_frame(i as u32) && f.display_name() == function)
        .collect();
    let mut best: Option<u32> = None;
    for (id, node) in tree.nodes().iter().enumerate().skip(1) {
        let better = best.is_none_or(|b| node.total > tree.node(b).total);
        if by_frame[node.frame as usize] && better {
            best = Some(id as u32);
        }
    }
    best.filter(|&b| b != ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::testutil::{find, stacks};
    use crate::flame::tree::TreeOptions;

    fn tree() -> FlameTree {
        let set = stacks(&[
            ("main;Lock;work;lock", 10),
            ("main;work", 5),
            ("main;unlock", 3),
            ("gc;0x1f", 2),
        ]);
        FlameTree::build(&set, TreeOptions::default())
    }

    fn matched(tree: &FlameTree, result: &SearchResult) -> Vec<String> {
        let ids = (0..tree.len() as u32).filter(|&n| result.matches[n as usize]);
        ids.map(|n| tree.name(n).into_owned()).collect()
    }

    #[test]
    fn nested_matches_count_once() {
        let tree = tree();
        let result = search(&tree, "LOCK");
        assert_eq!(matched(&tree, &result), ["Lock", "unlock", "lock"]);
        // Lock (10, containing lock) + unlock (3).
        assert_eq!(result.matched_total, 13);
        assert_eq!(result.matches.len(), tree.len());
    }

    #[test]
    fn matches_addresses_and_skips_synthetic_nodes() {
        let tree = tree();
        assert_eq!(search(&tree, "0x1F").matched_total, 2);
        assert_eq!(search(&tree, "ROOT").matched_total, 0);
        let (trimmed, _) = tree.trim(3);
        assert!(
            trimmed
                .nodes()
                .iter()
                .any(|n| trimmed.is_synthetic_frame(n.frame) && n.parent == 0)
        );
        assert_eq!(search(&trimmed, "other").matched_total, 0);
    }

    #[test]
    fn empty_term_matches_nothing() {
        let tree = tree();
        let result = search(&tree, "");
        assert_eq!(result.matches, vec![false; tree.len()]);
        assert_eq!(result.matched_total, 0);
        assert_eq!(search(&tree, "main").matched_total, 18);
    }

    #[test]
    fn focus_path_picks_the_largest_exact_match() {
        let tree = tree();
        assert_eq!(
            focus_path(&tree, "work"),
            Some(find(&tree, "main;Lock;work"))
        );
        assert_eq!(
            focus_path(&tree, "lock"),
            Some(find(&tree, "main;Lock;work;lock"))
        );
        assert_eq!(focus_path(&tree, "0x1f"), Some(find(&tree, "gc;0x1f")));
        assert_eq!(focus_path(&tree, "wor"), None);
        assert_eq!(focus_path(&tree, "root"), None);
    }
}
