//! The JSON flame graph (`report=flamegraph&format=json`), written straight from the
//! [`FlameTree`] arena with an explicit stack: no recursion, so a tree of any depth costs
//! heap, never the thread's stack. The shape is [`super::FlamegraphReport`].

use std::io::Write as _;

use shared::flame::{FlameTree, ROOT, Trimmed};

/// `{unit, total, trimmed_nodes, trimmed_value, root}` of a (trimmed) tree.
pub(crate) fn report(tree: &FlameTree, unit: &str, trimmed: Trimmed) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + tree.len() * 48);
    out.extend_from_slice(b"{\"unit\":");
    string(&mut out, unit);
    let _ = write!(
        out,
        ",\"total\":{},\"trimmed_nodes\":{},\"trimmed_value\":{},\"root\":",
        tree.total(),
        trimmed.nodes,
        trimmed.value
    );
    nodes(&mut out, tree);
    out.push(b'}');
    out
}

/// The tree from the root, depth first, each node `{name, binary, self, total, baseline,
/// children}` (empty binary, zero baseline and no children left out).
fn nodes(out: &mut Vec<u8>, tree: &FlameTree) {
    // (node, its next child to write)
    let mut stack: Vec<(u32, u32)> = Vec::new();
    if open(out, tree, ROOT) {
        stack.push((ROOT, tree.children(ROOT).start));
    }
    while let Some((id, next)) = stack.last_mut() {
        let children = tree.children(*id);
        if *next == children.end {
            out.extend_from_slice(b"]}");
            stack.pop();
            continue;
        }
        let child = *next;
        if child != children.start {
            out.push(b',');
        }
        *next += 1;
        if open(out, tree, child) {
            stack.push((child, tree.children(child).start));
        }
    }
}

/// Writes a node's fields; when it has children, opens their array and returns true,
/// else closes the node.
fn open(out: &mut Vec<u8>, tree: &FlameTree, id: u32) -> bool {
    let node = tree.node(id);
    out.extend_from_slice(b"{\"name\":");
    string(out, &tree.name(id));
    if !tree.is_synthetic(id) && !tree.frame(id).binary.is_empty() {
        out.extend_from_slice(b",\"binary\":");
        string(out, &tree.frame(id).binary);
    }
    let _ = write!(
        out,
        ",\"self\":{},\"total\":{}",
        node.self_value, node.total
    );
    if node.baseline_total != 0 {
        let _ = write!(out, ",\"baseline\":{}", node.baseline_total);
    }
    if node.child_count == 0 {
        out.push(b'}');
        return false;
    }
    out.extend_from_slice(b",\"children\":[");
    true
}

/// A JSON string literal.
fn string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing a string to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use shared::flame::{Frame, Stack, StackSet, TreeOptions};

    use super::*;

    fn set(stacks: &[(&[u32], i64, i64)], names: &[&str]) -> StackSet {
        StackSet {
            frames: names
                .iter()
                .map(|n| Frame {
                    binary: if *n == "main" {
                        "app".into()
                    } else {
                        "".into()
                    },
                    ..Frame::named(*n)
                })
                .collect(),
            stacks: stacks
                .iter()
                .map(|(frames, value, baseline)| Stack {
                    frames: frames.to_vec(),
                    value: *value,
                    baseline: *baseline,
                })
                .collect(),
        }
    }

    #[test]
    fn the_tree_is_written_as_nested_nodes() {
        // Leaf first: main → a (3), main → b (2, baseline 1), root self 4.
        let stacks = set(
            &[(&[1, 0], 3, 0), (&[2, 0], 2, 1), (&[], 4, 0)],
            &["main", "a", "b\"q"],
        );
        let tree = FlameTree::build(&stacks, TreeOptions::default());
        let json = report(&tree, "count", Trimmed { nodes: 2, value: 7 });
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "unit": "count", "total": 9, "trimmed_nodes": 2, "trimmed_value": 7,
                "root": {"name": "root", "self": 4, "total": 9, "baseline": 1, "children": [
                    {"name": "main", "binary": "app", "self": 0, "total": 5, "baseline": 1, "children": [
                        {"name": "a", "self": 3, "total": 3},
                        {"name": "b\"q", "self": 2, "total": 2, "baseline": 1},
                    ]},
                ]},
            })
        );
    }

    #[test]
    fn an_empty_tree_is_a_lone_root() {
        let tree = FlameTree::build(&StackSet::default(), TreeOptions::default());
        let value: serde_json::Value =
            serde_json::from_slice(&report(&tree, "", Trimmed::default())).unwrap();
        assert_eq!(
            value["root"],
            serde_json::json!({"name": "root", "self": 0, "total": 0})
        );
    }

    #[test]
    fn a_tree_deeper_than_any_thread_stack_is_written() {
        let depth = 60_000u32;
        let names: Vec<String> = (0..depth).map(|i| format!("f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let frames: Vec<u32> = (0..depth).collect();
        let tree = FlameTree::build(&set(&[(&frames, 1, 0)], &names), TreeOptions::default());
        // A small thread stack: recursion per level (60,000 frames of at least 100 bytes)
        // would overflow it many times over. Not smaller: jemalloc's heap profiling takes
        // a backtrace on sampled allocations, which needs some stack of its own.
        let json = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || report(&tree, "count", Trimmed::default()))
            .unwrap()
            .join()
            .unwrap();
        let text = String::from_utf8(json).unwrap();
        assert_eq!(text.matches("\"children\":[").count(), depth as usize);
        assert!(text.ends_with(&format!("{}}}", "]}".repeat(depth as usize))));
        assert!(text.contains("{\"name\":\"f0\",\"self\":1,\"total\":1}"));
    }
}
