//! The top table: flat and cumulative value per function, like `go tool pprof -top`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::StackSet;

/// One function of the top table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopRow {
    /// Display name of the function (what rows are keyed by).
    pub function: String,
    /// Source file of the first frame seen with this name.
    pub file: String,
    /// Value of the stacks whose leaf is this function.
    pub flat: i64,
    /// Value of the stacks this function is on, once per stack even when recursive.
    pub cum: i64,
    /// Baseline (diff side A) counterpart of `flat`.
    pub baseline_flat: i64,
    /// Baseline counterpart of `cum`.
    pub baseline_cum: i64,
}

/// The top table of `stacks`, computed like `go tool pprof -top -nodefraction=0`: a
/// stack's value goes to its leaf's function (flat) and once to every distinct function
/// on it (cum). Stacks whose value and baseline are both 0 are skipped, as pprof does.
/// Sorted by flat descending, then name ascending.
pub fn top(stacks: &StackSet) -> Vec<TopRow> {
    let (row_of, mut rows) = rows_by_name(stacks);
    // The last stack (index + 1) each row was counted in, so recursion counts once.
    let mut seen = vec![0usize; rows.len()];
    for (index, stack) in stacks.stacks.iter().enumerate() {
        if stack.value == 0 && stack.baseline == 0 {
            continue;
        }
        let mut on_stack = stack
            .frames
            .iter()
            .filter_map(|&f| row_of.get(f as usize).copied());
        let Some(leaf) = on_stack.next() else {
            continue;
        };
        let row = &mut rows[leaf as usize];
        row.flat = row.flat.wrapping_add(stack.value);
        row.baseline_flat = row.baseline_flat.wrapping_add(stack.baseline);
        for id in std::iter::once(leaf).chain(on_stack) {
            if std::mem::replace(&mut seen[id as usize], index + 1) != index + 1 {
                let row = &mut rows[id as usize];
                row.cum = row.cum.wrapping_add(stack.value);
                row.baseline_cum = row.baseline_cum.wrapping_add(stack.baseline);
            }
        }
    }
    let mut rows: Vec<TopRow> = rows
        .into_iter()
        .zip(seen)
        .filter_map(|(row, seen)| (seen != 0).then_some(row))
        .collect();
    rows.sort_unstable_by(|a, b| {
        b.flat
            .cmp(&a.flat)
            .then_with(|| a.function.cmp(&b.function))
    });
    rows
}

/// The row index of each frame (rows keyed by display name), and the empty rows.
fn rows_by_name(stacks: &StackSet) -> (Vec<u32>, Vec<TopRow>) {
    let mut ids: HashMap<Cow<'_, str>, u32> = HashMap::new();
    let mut rows = Vec::new();
    let row_of = stacks
        .frames
        .iter()
        .map(|frame| {
            *ids.entry(frame.display_name()).or_insert_with_key(|name| {
                rows.push(TopRow {
                    function: name.to_string(),
                    file: frame.file.clone(),
                    ..TopRow::default()
                });
                rows.len() as u32 - 1
            })
        })
        .collect();
    (row_of, rows)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::flame::model::{Frame, Stack};
    use crate::flame::search::search;
    use crate::flame::testutil::{diff_stacks, stacks};
    use crate::flame::tree::{FlameTree, ROOT, TreeOptions};

    fn row(function: &str, flat: i64, cum: i64) -> (String, i64, i64) {
        (function.to_owned(), flat, cum)
    }

    fn table(set: &StackSet) -> Vec<(String, i64, i64)> {
        top(set)
            .into_iter()
            .map(|r| (r.function, r.flat, r.cum))
            .collect()
    }

    #[test]
    fn flat_goes_to_the_leaf_cum_to_every_function() {
        let set = stacks(&[("main;a;b", 5), ("main;a", 3), ("main;c", 2), ("", 4)]);
        assert_eq!(
            table(&set),
            [
                row("b", 5, 5),
                row("a", 3, 8),
                row("c", 2, 2),
                row("main", 0, 10)
            ]
        );
    }

    #[test]
    fn recursion_counts_once_in_cum() {
        let set = stacks(&[("main;f;g;f;f", 7), ("main;f;g", 1)]);
        assert_eq!(
            table(&set),
            [row("f", 7, 8), row("g", 1, 8), row("main", 0, 8)]
        );
    }

    #[test]
    fn ties_sort_by_name_and_zero_stacks_are_skipped() {
        let set = stacks(&[("z", 1), ("y", 1), ("main;x", 0), ("0x1a@lib", 1)]);
        assert_eq!(
            table(&set),
            [row("0x1a", 1, 1), row("y", 1, 1), row("z", 1, 1)]
        );
    }

    #[test]
    fn baselines_and_files() {
        let mut set = diff_stacks(&[("main;f", 2, 5), ("main;f", 0, 1)]);
        set.frames[1].file = "f.go".into();
        set.frames[3].file = "elsewhere.go".into();
        let rows = top(&set);
        assert_eq!(rows[0].function, "f");
        assert_eq!(rows[0].file, "f.go");
        assert_eq!(
            (rows[0].flat, rows[0].baseline_flat, rows[0].baseline_cum),
            (2, 6, 6)
        );
        assert_eq!(
            (rows[1].function.as_str(), rows[1].cum, rows[1].baseline_cum),
            ("main", 2, 6)
        );
    }

    #[test]
    fn out_of_range_frames_are_ignored() {
        let set = StackSet {
            frames: vec![Frame::named("f")],
            stacks: vec![Stack {
                frames: vec![7, 0],
                value: 3,
                baseline: 0,
            }],
        };
        assert_eq!(table(&set), [row("f", 3, 3)]);
    }

    proptest! {
        /// flat = the inverted tree's top level; cum = the search total of the name.
        #[test]
        fn agrees_with_trees(
            folded in prop::collection::vec(("[abcde](;[abcde]){0,6}", -10i64..100), 0..25),
        ) {
            let folded: Vec<_> = folded.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let set = stacks(&folded);
            let tree = FlameTree::build(&set, TreeOptions::default());
            let inverted = FlameTree::build(&set, TreeOptions { invert: true });
            for row in top(&set) {
                prop_assert_eq!(row.cum, search(&tree, &row.function).matched_total);
                let flat = inverted
                    .children(ROOT)
                    .find(|&c| inverted.name(c) == row.function)
                    .map_or(0, |c| inverted.node(c).total);
                prop_assert_eq!(row.flat, flat);
            }
        }
    }
}
