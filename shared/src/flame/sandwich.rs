//! The sandwich view of one function: its callers (an inverted flame graph above it) and
//! its callees (a flame graph below it), merged over every stack the function is on.
//!
//! Each stack through the function counts once on each side, so both roots hold the
//! function's cumulative value (the top table's `cum`), recursion included:
//!
//! - **callees** start at the function's *outermost* occurrence (nearest the root), so a
//!   recursive call shows as the function again inside its own callees;
//! - **callers** end at its *innermost* occurrence (nearest the leaf), walked towards the
//!   root, so recursion shows as the function among its own callers.

use super::model::{Stack, StackSet};

/// The two stack sets of a sandwich. Both keep the input's frame table; build each with
/// [`FlameTree::build`](super::FlameTree::build) (not inverted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandwich {
    /// Stacks from the function (outermost) towards its callers, as leaf-first stacks
    /// whose root is the function: their tree has the function on top and its callers,
    /// then theirs, below.
    pub callers: StackSet,
    /// The part of each stack from the function's outermost occurrence to the leaf:
    /// their tree has the function on top and its callees below.
    pub callees: StackSet,
}

/// The sandwich of the function displayed as `function` in `stacks`; both sets are empty
/// when no stack contains it.
pub fn sandwich(stacks: &StackSet, function: &str) -> Sandwich {
    let is_it: Vec<bool> = stacks
        .frames
        .iter()
        .map(|f| f.display_name() == function)
        .collect();
    let matches = |id: &u32| is_it.get(*id as usize).copied().unwrap_or(false);
    let mut out = Sandwich {
        callers: StackSet {
            frames: stacks.frames.clone(),
            stacks: Vec::new(),
        },
        callees: StackSet {
            frames: stacks.frames.clone(),
            stacks: Vec::new(),
        },
    };
    for stack in &stacks.stacks {
        // Leaf first: the innermost occurrence is the first match, the outermost the last.
        let Some(inner) = stack.frames.iter().position(matches) else {
            continue;
        };
        let outer = stack.frames.iter().rposition(matches).unwrap_or(inner);
        out.callees.stacks.push(Stack {
            frames: stack.frames[..=outer].to_vec(),
            value: stack.value,
            baseline: stack.baseline,
        });
        out.callers.stacks.push(Stack {
            frames: stack.frames[inner..].iter().rev().copied().collect(),
            value: stack.value,
            baseline: stack.baseline,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::testutil::{find, stacks};
    use crate::flame::top::top;
    use crate::flame::tree::{FlameTree, ROOT, TreeOptions};

    /// The tree's nodes as root-first `path=total` lines, depth-first.
    fn dump(set: &StackSet) -> Vec<String> {
        let tree = FlameTree::build(set, TreeOptions::default());
        let mut out = Vec::new();
        let mut todo: Vec<(u32, String)> = vec![(ROOT, String::new())];
        while let Some((node, path)) = todo.pop() {
            if node != ROOT {
                out.push(format!("{path}={}", tree.node(node).total));
            }
            for child in tree.children(node).rev() {
                let name = tree.name(child);
                let child_path = if path.is_empty() {
                    name.into_owned()
                } else {
                    format!("{path};{name}")
                };
                todo.push((child, child_path));
            }
        }
        out
    }

    #[test]
    fn callers_above_callees_below_merged_over_every_occurrence() {
        let set = stacks(&[
            ("main;a;f;x", 5),
            ("main;b;f;y", 3),
            ("main;b;f", 2),
            ("main;c", 7),
        ]);
        let s = sandwich(&set, "f");
        assert_eq!(
            dump(&s.callers),
            ["f=10", "f;a=5", "f;a;main=5", "f;b=5", "f;b;main=5"]
        );
        assert_eq!(dump(&s.callees), ["f=10", "f;x=5", "f;y=3"]);
        let tree = FlameTree::build(&s.callees, TreeOptions::default());
        assert_eq!(tree.node(find(&tree, "f")).self_value, 2);
    }

    #[test]
    fn recursion_counts_each_stack_once() {
        // f calls g calls f: callees from the outermost f, callers from the innermost.
        let set = stacks(&[("main;f;g;f;h", 4), ("main;f", 1), ("f;f", 2)]);
        let s = sandwich(&set, "f");
        assert_eq!(
            dump(&s.callees),
            ["f=7", "f;f=2", "f;g=4", "f;g;f=4", "f;g;f;h=4"]
        );
        assert_eq!(
            dump(&s.callers),
            [
                "f=7",
                "f;f=2",
                "f;g=4",
                "f;g;f=4",
                "f;g;f;main=4",
                "f;main=1"
            ]
        );
        // Both roots are the function's cum in the top table.
        let cum = top(&set)
            .into_iter()
            .find(|r| r.function == "f")
            .unwrap()
            .cum;
        for side in [&s.callers, &s.callees] {
            let tree = FlameTree::build(side, TreeOptions::default());
            assert_eq!(tree.total(), cum);
        }
    }

    #[test]
    fn baselines_follow_and_missing_functions_give_nothing() {
        let mut set = stacks(&[("main;f", 3)]);
        set.stacks[0].baseline = 9;
        let s = sandwich(&set, "f");
        assert_eq!(s.callees.stacks[0].baseline, 9);
        assert_eq!(s.callers.stacks[0].baseline, 9);
        let none = sandwich(&set, "nope");
        assert!(none.callers.stacks.is_empty() && none.callees.stacks.is_empty());
    }

    #[test]
    fn unsymbolized_frames_match_by_display_name() {
        let set = stacks(&[("main;0x1a@libc;g", 1)]);
        let s = sandwich(&set, "0x1a");
        assert_eq!(dump(&s.callees), ["0x1a=1", "0x1a;g=1"]);
        assert_eq!(dump(&s.callers), ["0x1a=1", "0x1a;main=1"]);
    }
}
