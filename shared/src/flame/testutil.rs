//! Helpers for tests: stack sets from folded stacks, nodes by path.

use super::model::{Frame, Stack, StackSet};
use super::tree::{FlameTree, ROOT};

/// A frame from a test name: `0x10@libc` is unsymbolized (address 0x10 in libc).
fn frame(name: &str) -> Frame {
    match name.strip_prefix("0x") {
        Some(rest) => {
            let (address, binary) = rest.split_once('@').unwrap_or((rest, ""));
            Frame {
                address: u64::from_str_radix(address, 16).unwrap(),
                binary: binary.into(),
                ..Frame::default()
            }
        }
        None => Frame::named(name),
    }
}

/// A stack set from folded stacks (`"main;f;g"`, root first) with values and baselines.
/// Every occurrence of a name gets its own frame index, as distinct lines would.
pub(crate) fn diff_stacks(folded: &[(&str, i64, i64)]) -> StackSet {
    let mut set = StackSet::default();
    for &(path, value, baseline) in folded {
        let mut frames: Vec<u32> = path
            .split(';')
            .filter(|n| !n.is_empty())
            .map(|name| {
                set.frames.push(frame(name));
                set.frames.len() as u32 - 1
            })
            .collect();
        frames.reverse();
        set.stacks.push(Stack {
            frames,
            value,
            baseline,
        });
    }
    set
}

/// A stack set from folded stacks with values and no baseline.
pub(crate) fn stacks(folded: &[(&str, i64)]) -> StackSet {
    let with_baseline: Vec<_> = folded.iter().map(|&(p, v)| (p, v, 0)).collect();
    diff_stacks(&with_baseline)
}

/// The node at root-first `path` (`"main;f"`; `""` is the root).
pub(crate) fn find(tree: &FlameTree, path: &str) -> u32 {
    path.split(';')
        .filter(|n| !n.is_empty())
        .fold(ROOT, |node, name| {
            tree.children(node)
                .find(|&c| tree.name(c) == name)
                .unwrap_or_else(|| panic!("no {name} under {}", tree.name(node)))
        })
}

/// Every node as `"path total/self"`, breadth-first.
pub(crate) fn shape(tree: &FlameTree) -> Vec<String> {
    (0..tree.len() as u32)
        .map(|id| {
            let mut path: Vec<_> = tree.ancestors(id).map(|a| tree.name(a)).collect();
            path.reverse();
            path.push(tree.name(id));
            let node = tree.node(id);
            let label = if id == ROOT {
                path.join(";")
            } else {
                path[1..].join(";")
            };
            format!("{label} {}/{}", node.total, node.self_value)
        })
        .collect()
}

/// Structural invariants every tree (built or trimmed) satisfies.
pub(crate) fn assert_invariants(tree: &FlameTree) {
    let nodes = tree.nodes();
    for (id, node) in nodes.iter().enumerate() {
        let kids = tree.children(id as u32);
        let (mut total, mut baseline) = (node.self_value, node.baseline_self);
        for kid in kids.clone() {
            let child = tree.node(kid);
            assert_eq!(child.parent, id as u32);
            assert_eq!(child.depth, node.depth + 1);
            total += child.total;
            baseline += child.baseline_total;
        }
        assert_eq!(node.total, total, "node {id}");
        assert_eq!(node.baseline_total, baseline, "node {id}");
        assert!(kids.start as usize > id || kids.is_empty());
    }
    // Breadth-first: each node's children start where the previous node's ended.
    let mut next = 1;
    for id in 0..nodes.len() as u32 {
        assert_eq!(tree.node(id).first_child, next);
        next += tree.node(id).child_count;
    }
    assert_eq!(next as usize, nodes.len());
}
