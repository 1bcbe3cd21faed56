//! Flame-tree order: stacks sorted root-first by frame rank (the order siblings are drawn
//! in), so that the stacks of every subtree are contiguous, each with the number of
//! root-most frames it shares with the stack before it. The server writes stacks this
//! way ([`tree_order`]); the UI then builds the tree in one pass that touches each node
//! once, without hashing ([`FlameTree::build_ordered`]).

use super::model::StackSet;
use super::tree::{FlameTree, Node, ROOT, frame_ranks, sum_totals};

/// The order to write `stacks.stacks` in (indexes into it), and for each stack in that
/// order the number of root-most frames its flame-tree path shares with the path of the
/// stack before it (frames merged by name, as [`FlameTree::build`] merges them).
///
/// Stacks are sorted by their root-first sequence of frame ranks (a path before its
/// extensions); equal paths keep their input order.
pub fn tree_order(stacks: &StackSet) -> (Vec<u32>, Vec<u32>) {
    let (_, ranks) = frame_ranks(&stacks.frames);
    let mut offsets = Vec::with_capacity(stacks.stacks.len() + 1);
    let total: usize = stacks.stacks.iter().map(|s| s.frames.len()).sum();
    let mut paths = Vec::with_capacity(total);
    offsets.push(0);
    for stack in &stacks.stacks {
        let rank = |&f: &u32| ranks.get(f as usize).copied().unwrap_or(u32::MAX);
        paths.extend(stack.frames.iter().rev().map(rank));
        offsets.push(paths.len());
    }
    let path = |i: u32| &paths[offsets[i as usize]..offsets[i as usize + 1]];
    let mut order: Vec<u32> = (0..stacks.stacks.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| path(a).cmp(path(b)).then(a.cmp(&b)));
    let mut previous: &[u32] = &[];
    let prefix = order
        .iter()
        .map(|&i| {
            let current = path(i);
            let shared = current.iter().zip(previous).take_while(|(a, b)| a == b);
            previous = current;
            shared.count() as u32
        })
        .collect();
    (order, prefix)
}

/// Nodes in creation order (depth-first, parents first), while building.
#[derive(Default)]
struct Preorder {
    rank: Vec<u32>,
    parent: Vec<u32>,
    depth: Vec<u16>,
    selfs: Vec<(i64, i64)>,
    /// Rank of the child created last (0: none yet; frame ranks start at 1).
    last_child: Vec<u32>,
}

impl Preorder {
    fn with_root(capacity: usize) -> Self {
        let mut nodes = Preorder {
            rank: Vec::with_capacity(capacity),
            parent: Vec::with_capacity(capacity),
            depth: Vec::with_capacity(capacity),
            selfs: Vec::with_capacity(capacity),
            last_child: Vec::with_capacity(capacity),
        };
        nodes.push(0, ROOT, 0);
        nodes
    }

    fn push(&mut self, rank: u32, parent: u32, depth: u16) -> u32 {
        self.rank.push(rank);
        self.parent.push(parent);
        self.depth.push(depth);
        self.selfs.push((0, 0));
        self.last_child.push(0);
        self.rank.len() as u32 - 1
    }

    /// The nodes renumbered breadth-first. Depth-first order already lists each depth's
    /// nodes left to right, so a stable counting sort by depth gives breadth-first ids,
    /// with every node's children contiguous and in rank order.
    fn breadth_first(&self) -> Vec<Node> {
        let len = self.rank.len();
        let max_depth = self.depth.iter().copied().max().unwrap_or(0);
        let mut start = vec![0u32; usize::from(max_depth) + 2];
        for &d in &self.depth {
            start[usize::from(d) + 1] += 1;
        }
        for d in 1..start.len() {
            start[d] += start[d - 1];
        }
        let mut new_id = vec![0u32; len];
        for (id, &d) in new_id.iter_mut().zip(&self.depth) {
            *id = start[usize::from(d)];
            start[usize::from(d)] += 1;
        }
        let mut nodes = vec![Node::default(); len];
        for old in 0..len {
            let (self_value, baseline_self) = self.selfs[old];
            let node = &mut nodes[new_id[old] as usize];
            node.frame = self.rank[old];
            node.parent = new_id[self.parent[old] as usize];
            node.depth = self.depth[old];
            (node.total, node.self_value) = (self_value, self_value);
            (node.baseline_total, node.baseline_self) = (baseline_self, baseline_self);
        }
        for old in 1..len {
            nodes[new_id[self.parent[old] as usize] as usize].child_count += 1;
        }
        let mut next = 1;
        for node in &mut nodes {
            node.first_child = next;
            next += node.child_count;
        }
        nodes
    }
}

impl FlameTree {
    /// Builds the tree of `stacks` given in flame-tree order, `prefix[i]` being how many
    /// root-most frames stack `i` shares with stack `i - 1` (what [`tree_order`] gives):
    /// one pass, each node created once, no hashing.
    ///
    /// Returns `None` unless the stacks really are in that order with exact prefixes
    /// (every shared frame is checked, and no node is left and entered again), every
    /// frame index is in range and no stack is deeper than `u16::MAX`; build with
    /// [`FlameTree::build`] then. When it returns a tree, it is the tree
    /// [`FlameTree::build`] makes of the same stacks.
    pub fn build_ordered(stacks: &StackSet, prefix: &[u32]) -> Option<Self> {
        if prefix.len() != stacks.stacks.len() {
            return None;
        }
        let (frames, ranks) = frame_ranks(&stacks.frames);
        let added = stacks.stacks.iter().zip(prefix);
        let added: usize = added
            .map(|(s, &p)| s.frames.len().saturating_sub(p as usize))
            .sum();
        let mut nodes = Preorder::with_root(added + 1);
        // The nodes of the previous stack's path, root-most first (the root left out).
        let mut path: Vec<u32> = Vec::new();
        for (stack, &shared) in stacks.stacks.iter().zip(prefix) {
            let shared = shared as usize;
            let len = stack.frames.len();
            if shared > len || shared > path.len() || len >= usize::from(u16::MAX) {
                return None;
            }
            path.truncate(shared);
            let mut root_first = stack.frames.iter().rev().map(|&f| ranks.get(f as usize));
            for (&node, rank) in path.iter().zip(root_first.by_ref()) {
                if rank != Some(&nodes.rank[node as usize]) {
                    return None;
                }
            }
            for rank in root_first {
                let rank = *rank?;
                let parent = path.last().copied().unwrap_or(ROOT);
                if rank <= nodes.last_child[parent as usize] {
                    return None;
                }
                nodes.last_child[parent as usize] = rank;
                path.push(nodes.push(rank, parent, path.len() as u16 + 1));
            }
            let end = &mut nodes.selfs[path.last().copied().unwrap_or(ROOT) as usize];
            end.0 = end.0.wrapping_add(stack.value);
            end.1 = end.1.wrapping_add(stack.baseline);
        }
        let mut nodes = nodes.breadth_first();
        sum_totals(&mut nodes);
        Some(FlameTree {
            frames,
            nodes,
            inverted: false,
            other_frame: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::flame::model::{Frame, Stack};
    use crate::flame::testutil::stacks;
    use crate::flame::tree::TreeOptions;

    /// `set` with its stacks in `order`.
    fn reordered(set: &StackSet, order: &[u32]) -> StackSet {
        StackSet {
            frames: set.frames.clone(),
            stacks: order
                .iter()
                .map(|&i| set.stacks[i as usize].clone())
                .collect(),
        }
    }

    fn ordered(set: &StackSet) -> (StackSet, Vec<u32>) {
        let (order, prefix) = tree_order(set);
        (reordered(set, &order), prefix)
    }

    #[test]
    fn order_is_root_first_by_name_with_shared_prefixes() {
        let set = stacks(&[("main;b;x", 3), ("main;a", 2), ("gc", 1), ("main;b", 1)]);
        let (order, prefix) = tree_order(&set);
        assert_eq!(order, [2, 1, 3, 0]);
        assert_eq!(prefix, [0, 0, 1, 2]);
        let (sorted, _) = ordered(&set);
        let tree = FlameTree::build_ordered(&sorted, &prefix).unwrap();
        assert_eq!(tree, FlameTree::build(&set, TreeOptions::default()));
    }

    #[test]
    fn wrong_prefixes_or_orders_are_refused() {
        let set = stacks(&[("main;a", 2), ("main;b", 1), ("main;b;x", 3)]);
        let (sorted, prefix) = ordered(&set);
        assert_eq!(prefix, [0, 1, 2]);
        assert!(FlameTree::build_ordered(&sorted, &prefix).is_some());
        // A prefix too short would make a second "main" under the root.
        assert!(FlameTree::build_ordered(&sorted, &[0, 0, 2]).is_none());
        // Too long: past the previous path, or past the stack.
        assert!(FlameTree::build_ordered(&sorted, &[0, 2, 2]).is_none());
        assert!(FlameTree::build_ordered(&sorted, &[1, 1, 2]).is_none());
        // Claims a frame is shared that is not ("main;b" after "main;a" with prefix 2).
        let bad = stacks(&[("main;a", 2), ("main;b", 1)]);
        assert!(FlameTree::build_ordered(&bad, &[0, 2]).is_none());
        // Out of order: "main;a" after "main;b" would enter "main" again below "b".
        let back = stacks(&[("main;b", 1), ("main;a", 2)]);
        assert!(FlameTree::build_ordered(&back, &[0, 1]).is_none());
        // Leaving a node and entering it again.
        let again = stacks(&[("main;a", 1), ("gc", 1), ("main;b", 1)]);
        assert!(FlameTree::build_ordered(&again, &[0, 0, 0]).is_none());
        // Lengths that do not match, and frames out of range.
        assert!(FlameTree::build_ordered(&sorted, &[0, 1]).is_none());
        let mut out = stacks(&[("f", 1)]);
        out.stacks[0].frames[0] = 7;
        assert!(FlameTree::build_ordered(&out, &[0]).is_none());
    }

    #[test]
    fn empty_sets_and_empty_stacks() {
        let empty = StackSet::default();
        let tree = FlameTree::build_ordered(&empty, &[]).unwrap();
        assert_eq!(tree, FlameTree::build(&empty, TreeOptions::default()));
        let set = stacks(&[("f", 2), ("", 5), ("", 1)]);
        let (sorted, prefix) = ordered(&set);
        assert_eq!(prefix, [0, 0, 0]);
        let tree = FlameTree::build_ordered(&sorted, &prefix).unwrap();
        assert_eq!(tree, FlameTree::build(&set, TreeOptions::default()));
        assert_eq!(tree.node(ROOT).self_value, 6);
    }

    fn stack_set() -> impl Strategy<Value = StackSet> {
        let frame = (0u8..6, any::<bool>(), 0u8..3).prop_map(|(n, symbolized, line)| Frame {
            function: if symbolized {
                format!("f{n}")
            } else {
                String::new()
            },
            address: u64::from(n),
            binary: format!("bin{}", n % 2),
            line: i64::from(line),
            ..Frame::default()
        });
        let stack = (
            prop::collection::vec(0u32..12, 0..9),
            -5i64..1000,
            0i64..1000,
        )
            .prop_map(|(frames, value, baseline)| Stack {
                frames,
                value,
                baseline,
            });
        (
            prop::collection::vec(frame, 12..13),
            prop::collection::vec(stack, 0..40),
        )
            .prop_map(|(frames, stacks)| StackSet { frames, stacks })
    }

    proptest! {
        #[test]
        fn ordered_build_is_the_hashed_build(set in stack_set()) {
            let (sorted, prefix) = ordered(&set);
            let tree = FlameTree::build_ordered(&sorted, &prefix);
            prop_assert_eq!(tree, Some(FlameTree::build(&set, TreeOptions::default())));
        }

        #[test]
        fn any_other_prefix_is_refused_or_right(
            set in stack_set(),
            at in any::<prop::sample::Index>(),
            value in 0u32..10,
        ) {
            let (sorted, mut prefix) = ordered(&set);
            if !prefix.is_empty() {
                let at = at.index(prefix.len());
                prefix[at] = value;
            }
            if let Some(tree) = FlameTree::build_ordered(&sorted, &prefix) {
                prop_assert_eq!(tree, FlameTree::build(&set, TreeOptions::default()));
            }
        }

        #[test]
        fn unsorted_stacks_are_refused_or_right(set in stack_set(), seed in any::<u64>()) {
            // Prefixes computed over a shuffled order.
            let mut order: Vec<u32> = (0..set.stacks.len() as u32).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let shuffled = reordered(&set, &order);
            let (_, ranks) = frame_ranks(&set.frames);
            let path = |s: &Stack| -> Vec<u32> {
                s.frames.iter().rev().map(|&f| ranks[f as usize]).collect()
            };
            let mut previous = Vec::new();
            let prefix: Vec<u32> = shuffled.stacks.iter().map(|s| {
                let current = path(s);
                let shared = current.iter().zip(&previous).take_while(|(a, b)| a == b).count();
                previous = current;
                shared as u32
            }).collect();
            if let Some(tree) = FlameTree::build_ordered(&shuffled, &prefix) {
                prop_assert_eq!(tree, FlameTree::build(&set, TreeOptions::default()));
            }
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::flame::model::{Frame, Stack};
    use crate::flame::tree::TreeOptions;

    /// `cargo test --release -p shared --lib ordered::bench -- --ignored --nocapture`:
    /// the two builds on a profile shaped like the UI perf test's (100k stacks, ~950k nodes).
    #[test]
    #[ignore = "a timing, not a test"]
    fn ordered_and_hashed_builds_on_a_big_profile() {
        let mut x = 0x5eed_c1de_2026_0001u64;
        let mut next = move |n: usize| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        };
        let frames = (0..20_000)
            .map(|i| Frame::named(format!("pkg{}.fn{i}", i % 97)))
            .collect();
        let mut paths: Vec<Vec<u32>> = Vec::new();
        while paths.len() < 100_000 {
            let depth = 20 + next(21);
            let mut path = match paths.len() {
                0 => Vec::new(),
                n => {
                    let parent = &paths[n - 1 - next(n.min(2000))];
                    parent[..depth.saturating_sub(1 + next(16)).min(parent.len())].to_vec()
                }
            };
            while path.len() < depth {
                path.push(next(20_000) as u32);
            }
            paths.push(path);
        }
        let set = StackSet {
            frames,
            stacks: paths
                .into_iter()
                .map(|mut p| {
                    p.reverse();
                    Stack {
                        frames: p,
                        value: 1 + next(100) as i64,
                        baseline: 0,
                    }
                })
                .collect(),
        };
        let t = std::time::Instant::now();
        let (order, prefix) = tree_order(&set);
        let sorted = StackSet {
            frames: set.frames.clone(),
            stacks: order
                .iter()
                .map(|&i| set.stacks[i as usize].clone())
                .collect(),
        };
        eprintln!("order: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let hashed = FlameTree::build(&sorted, TreeOptions::default());
        eprintln!("hashed build: {:?} ({} nodes)", t.elapsed(), hashed.len());
        let t = std::time::Instant::now();
        let _ = frame_ranks(&sorted.frames);
        eprintln!("frame ranks: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let ordered = FlameTree::build_ordered(&sorted, &prefix).unwrap();
        eprintln!("ordered build: {:?}", t.elapsed());
        assert_eq!(ordered, hashed);
        #[cfg(feature = "arrow")]
        {
            let meta = crate::ipc::StacksMeta::default();
            let bytes = crate::ipc::write_stacks(Vec::new(), &set, &meta).unwrap();
            let t = std::time::Instant::now();
            let back = crate::ipc::decode_stacks(&bytes).unwrap();
            eprintln!("decode: {:?}", t.elapsed());
            let t = std::time::Instant::now();
            let tree = FlameTree::build_ordered(&back.stacks, &back.prefix);
            eprintln!("ordered build of the decoded stream: {:?}", t.elapsed());
            assert_eq!(tree.as_ref(), Some(&hashed));
        }
    }
}
