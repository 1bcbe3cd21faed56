//! Stack filters: keep or drop whole stacks by frame name, hide single frames.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::model::{Stack, StackSet};
use super::text::{Terms, per_frame};

/// Which stacks and frames to show. Terms are case-insensitive substrings of a frame's
/// display name; empty terms are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackFilter {
    /// When not empty, only stacks with a frame matching one of these are kept.
    pub keep_containing: Vec<String>,
    /// Stacks with a frame matching one of these are dropped.
    pub drop_containing: Vec<String>,
    /// Frames matching one of these are removed from the remaining stacks; their value
    /// goes to the nearest remaining caller (or the root).
    pub hide_frames: Vec<String>,
}

/// A stack that passed a [`StackFilter`]; its frames are borrowed unless some were hidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilteredStack<'a> {
    /// Frame indexes, leaf first.
    pub frames: Cow<'a, [u32]>,
    /// See [`Stack::value`].
    pub value: i64,
    /// See [`Stack::baseline`].
    pub baseline: i64,
}

const KEEP: u8 = 1;
const DROP: u8 = 2;
const HIDE: u8 = 4;

impl StackFilter {
    /// Whether the filter lets every stack through unchanged.
    pub fn is_empty(&self) -> bool {
        [
            &self.keep_containing,
            &self.drop_containing,
            &self.hide_frames,
        ]
        .iter()
        .all(|terms| terms.iter().all(String::is_empty))
    }

    /// The stacks of `stacks` that pass, with hidden frames removed; frames are kept as is.
    pub fn apply(&self, stacks: &StackSet) -> StackSet {
        StackSet {
            frames: stacks.frames.clone(),
            stacks: self
                .iter(stacks)
                .map(|s| Stack {
                    frames: s.frames.into_owned(),
                    value: s.value,
                    baseline: s.baseline,
                })
                .collect(),
        }
    }

    /// Iterates over the stacks of `stacks` that pass, without copying unchanged ones.
    /// Names are matched once per frame, not once per stack.
    pub fn iter<'a>(&self, stacks: &'a StackSet) -> FilteredStacks<'a> {
        let keep = Terms::new(&self.keep_containing);
        let drop = Terms::new(&self.drop_containing);
        let hide = Terms::new(&self.hide_frames);
        let flags = per_frame(&stacks.frames, |name| {
            let bit = |terms: &Terms, bit: u8| if terms.matches(name) { bit } else { 0 };
            bit(&keep, KEEP) | bit(&drop, DROP) | bit(&hide, HIDE)
        });
        FilteredStacks {
            stacks: stacks.stacks.iter(),
            flags,
            need_keep: !keep.is_empty(),
        }
    }
}

/// Iterator returned by [`StackFilter::iter`].
#[derive(Clone, Debug)]
pub struct FilteredStacks<'a> {
    stacks: std::slice::Iter<'a, Stack>,
    /// KEEP/DROP/HIDE bits per frame index.
    flags: Vec<u8>,
    need_keep: bool,
}

impl FilteredStacks<'_> {
    fn flag(&self, frame: u32) -> u8 {
        self.flags.get(frame as usize).copied().unwrap_or(0)
    }

    fn passes(&self, stack: &Stack) -> bool {
        let all = stack.frames.iter().fold(0, |acc, &f| acc | self.flag(f));
        all & DROP == 0 && (!self.need_keep || all & KEEP != 0)
    }
}

impl<'a> Iterator for FilteredStacks<'a> {
    type Item = FilteredStack<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let stack = loop {
            let stack = self.stacks.next()?;
            if self.passes(stack) {
                break stack;
            }
        };
        let hidden = |f: &u32| self.flag(*f) & HIDE != 0;
        let frames = if stack.frames.iter().any(hidden) {
            Cow::Owned(
                stack
                    .frames
                    .iter()
                    .copied()
                    .filter(|f| !hidden(f))
                    .collect(),
            )
        } else {
            Cow::Borrowed(&stack.frames[..])
        };
        Some(FilteredStack {
            frames,
            value: stack.value,
            baseline: stack.baseline,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stacks.size_hint().1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::model::Frame;

    /// Frames: 0 main, 1 Handler, 2 malloc, 3 runtime.gcWork, 4 0xbeef.
    fn set() -> StackSet {
        let mut frames: Vec<Frame> = ["main", "Handler", "malloc", "runtime.gcWork"]
            .into_iter()
            .map(Frame::named)
            .collect();
        frames.push(Frame {
            address: 0xbeef,
            ..Frame::default()
        });
        let stack = |frames: &[u32], value| Stack {
            frames: frames.to_vec(),
            value,
            baseline: value * 10,
        };
        StackSet {
            frames,
            stacks: vec![
                stack(&[2, 1, 0], 5),
                stack(&[3], 7),
                stack(&[4, 0], 2),
                stack(&[], 1),
            ],
        }
    }

    fn filter(keep: &[&str], drop: &[&str], hide: &[&str]) -> StackFilter {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        StackFilter {
            keep_containing: owned(keep),
            drop_containing: owned(drop),
            hide_frames: owned(hide),
        }
    }

    fn values(f: &StackFilter) -> Vec<(Vec<u32>, i64)> {
        f.apply(&set())
            .stacks
            .into_iter()
            .map(|s| (s.frames, s.value))
            .collect()
    }

    #[test]
    fn empty_filter_keeps_everything() {
        let f = filter(&[""], &[], &[""]);
        assert!(f.is_empty());
        assert_eq!(f.apply(&set()), set());
    }

    #[test]
    fn keep_is_case_insensitive_any_term() {
        let f = filter(&["HANDLER", "GcWork"], &[], &[]);
        assert!(!f.is_empty());
        assert_eq!(values(&f), [(vec![2, 1, 0], 5), (vec![3], 7)]);
    }

    #[test]
    fn keep_matches_unsymbolized_addresses() {
        assert_eq!(values(&filter(&["0xBEEF"], &[], &[])), [(vec![4, 0], 2)]);
    }

    #[test]
    fn drop_removes_stacks_with_any_matching_frame() {
        let f = filter(&[], &["MAIN"], &[]);
        assert_eq!(values(&f), [(vec![3], 7), (vec![], 1)]);
    }

    #[test]
    fn drop_wins_over_keep() {
        let f = filter(&["main"], &["malloc"], &[]);
        assert_eq!(values(&f), [(vec![4, 0], 2)]);
    }

    #[test]
    fn hide_removes_frames_and_keeps_values() {
        let f = filter(&[], &[], &["Malloc", "runtime."]);
        let out = f.apply(&set());
        assert_eq!(out.frames, set().frames);
        assert_eq!(out.stacks[0].frames, [1, 0]);
        assert_eq!(out.stacks[0].baseline, 50);
        assert_eq!(out.stacks[1].frames, Vec::<u32>::new());
        assert_eq!(out.total(), set().total());
    }

    #[test]
    fn keep_and_drop_look_at_hidden_frames_too() {
        let f = filter(&["malloc"], &[], &["malloc"]);
        assert_eq!(values(&f), [(vec![1, 0], 5)]);
    }

    #[test]
    fn unchanged_stacks_are_borrowed() {
        let set = set();
        let f = filter(&[], &[], &["malloc"]);
        let out: Vec<_> = f.iter(&set).collect();
        assert!(matches!(out[0].frames, Cow::Owned(_)));
        assert!(matches!(out[1].frames, Cow::Borrowed(_)));
    }

    #[test]
    fn out_of_range_frames_match_nothing() {
        let mut set = set();
        set.stacks.push(Stack {
            frames: vec![99],
            value: 1,
            baseline: 0,
        });
        let f = filter(&[], &["main"], &[]);
        assert_eq!(f.apply(&set).stacks.len(), 3);
    }
}
