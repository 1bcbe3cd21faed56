//! O(1) lookups into a validated [`Profile`].

use std::borrow::Cow;
use std::collections::HashMap;

use crate::validate::{EntityKind, ValidationError};
use crate::{Function, Location, Mapping, Profile, Sample};

/// Fast lookups from ids and string indexes into a validated profile.
///
/// Built by [`Profile::index`], which validates first, so every id a sample or line of this
/// profile references resolves, and every string index the profile holds is in range.
///
/// Tables are laid out by how the ids look: when the i-th entry has id i+1 (what Go's
/// runtime and most profilers write) a lookup is a bounds-checked slice access; other small
/// ids use a vector indexed by id; large or scattered ids (e.g. addresses) use a hash map.
#[derive(Debug)]
pub struct Index<'a> {
    profile: &'a Profile,
    strings: Vec<Cow<'a, str>>,
    ids: IdTables<'a>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(profile: &'a Profile, ids: IdTables<'a>) -> Self {
        let strings = profile
            .string_table
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect();
        Index {
            profile,
            strings,
            ids,
        }
    }

    /// The profile this index is over.
    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// The location with this id, if any.
    #[inline]
    pub fn location(&self, id: u64) -> Option<&'a Location> {
        self.ids.locations.get(id)
    }

    /// The function with this id, if any.
    #[inline]
    pub fn function(&self, id: u64) -> Option<&'a Function> {
        self.ids.functions.get(id)
    }

    /// The mapping with this id, if any. Id 0 ("no mapping") never resolves.
    #[inline]
    pub fn mapping(&self, id: u64) -> Option<&'a Mapping> {
        self.ids.mappings.get(id)
    }

    /// The string at `index`, with invalid UTF-8 replaced by U+FFFD. Every string index
    /// stored in the validated profile is in range; any other index yields `""`.
    #[inline]
    pub fn string(&self, index: i64) -> &str {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.strings.get(i))
            .map_or("", |s| s.as_ref())
    }

    /// The whole string table, converted like [`Index::string`].
    pub fn strings(&self) -> &[Cow<'a, str>] {
        &self.strings
    }

    /// The locations of `sample`'s stack, leaf first. For a sample of the indexed profile
    /// every id resolves; ids that do not are skipped.
    pub fn stack<'s>(&'s self, sample: &'s Sample) -> impl Iterator<Item = &'a Location> + 's {
        sample
            .location_id
            .iter()
            .filter_map(move |&id| self.location(id))
    }
}

/// The three id tables, built (and checked for zero and duplicate ids) during validation.
#[derive(Debug)]
pub(crate) struct IdTables<'a> {
    pub(crate) mappings: ById<'a, Mapping>,
    pub(crate) locations: ById<'a, Location>,
    pub(crate) functions: ById<'a, Function>,
}

/// A message with a unique non-zero id.
pub(crate) trait HasId {
    const KIND: EntityKind;
    fn id(&self) -> u64;
}

impl HasId for Mapping {
    const KIND: EntityKind = EntityKind::Mapping;
    fn id(&self) -> u64 {
        self.id
    }
}

impl HasId for Location {
    const KIND: EntityKind = EntityKind::Location;
    fn id(&self) -> u64 {
        self.id
    }
}

impl HasId for Function {
    const KIND: EntityKind = EntityKind::Function;
    fn id(&self) -> u64 {
        self.id
    }
}

/// Ids above `DENSE_FACTOR * len + DENSE_SLACK` go to a hash map instead of a vector.
const DENSE_FACTOR: u64 = 4;
const DENSE_SLACK: u64 = 1024;

/// Lookup by id.
#[derive(Debug)]
pub(crate) enum ById<'a, T> {
    /// `items[i].id == i + 1` for every i.
    Identity(&'a [T]),
    /// `slots[id]`, for ids bounded by a small multiple of the count.
    Dense(Vec<Option<&'a T>>),
    /// Anything else.
    Sparse(HashMap<u64, &'a T>),
}

impl<'a, T: HasId> ById<'a, T> {
    /// Builds the table, rejecting id 0 and duplicate ids.
    pub(crate) fn build(items: &'a [T]) -> Result<Self, ValidationError> {
        let mut identity = true;
        let mut max = 0;
        for (index, item) in items.iter().enumerate() {
            let id = item.id();
            if id == 0 {
                return Err(ValidationError::ZeroId {
                    kind: T::KIND,
                    index,
                });
            }
            identity &= id == index as u64 + 1;
            max = max.max(id);
        }
        if identity {
            return Ok(ById::Identity(items));
        }

        let dense_bound = (items.len() as u64)
            .saturating_mul(DENSE_FACTOR)
            .saturating_add(DENSE_SLACK);
        if let Some(slots_len) = (max <= dense_bound)
            .then(|| usize::try_from(max).ok())
            .flatten()
            .and_then(|m| m.checked_add(1))
        {
            let mut slots: Vec<Option<&'a T>> = vec![None; slots_len];
            for (index, item) in items.iter().enumerate() {
                // In range: every id is <= max.
                let slot = &mut slots[item.id() as usize];
                if slot.is_some() {
                    return Err(duplicate(items, index));
                }
                *slot = Some(item);
            }
            return Ok(ById::Dense(slots));
        }

        let mut map = HashMap::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if map.insert(item.id(), item).is_some() {
                return Err(duplicate(items, index));
            }
        }
        Ok(ById::Sparse(map))
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&'a T> {
        match self {
            // id 0 wraps to u64::MAX, which is never a valid position.
            ById::Identity(items) => items.get(usize::try_from(id.wrapping_sub(1)).ok()?),
            ById::Dense(slots) => *slots.get(usize::try_from(id).ok()?)?,
            ById::Sparse(map) => map.get(&id).copied(),
        }
    }
}

/// The error for `items[second]` repeating the id of an earlier item.
fn duplicate<T: HasId>(items: &[T], second: usize) -> ValidationError {
    let id = items[second].id();
    let first = items[..second]
        .iter()
        .position(|it| it.id() == id)
        .unwrap_or(second);
    ValidationError::DuplicateId {
        kind: T::KIND,
        id,
        first,
        second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::valid_profile;

    fn funcs(ids: &[u64]) -> Vec<Function> {
        ids.iter()
            .map(|&id| Function {
                id,
                name: 0,
                system_name: 0,
                filename: 0,
                start_line: id as i64,
            })
            .collect()
    }

    fn check_lookups(items: &[Function], table: &ById<'_, Function>) {
        for f in items {
            assert_eq!(table.get(f.id).map(|g| g.start_line), Some(f.id as i64));
        }
        for missing in [0, u64::MAX, 1 << 33] {
            if !items.iter().any(|f| f.id == missing) {
                assert!(table.get(missing).is_none(), "{missing}");
            }
        }
    }

    #[test]
    fn identity_layout() {
        let items = funcs(&[1, 2, 3, 4]);
        let table = ById::build(&items).unwrap();
        assert!(matches!(table, ById::Identity(_)));
        check_lookups(&items, &table);
        assert!(table.get(5).is_none());
    }

    #[test]
    fn dense_layout_for_shuffled_or_gappy_ids() {
        for ids in [&[3, 1, 2][..], &[2, 4, 6, 8], &[1000, 1]] {
            let items = funcs(ids);
            let table = ById::build(&items).unwrap();
            assert!(matches!(table, ById::Dense(_)), "{ids:?}");
            check_lookups(&items, &table);
        }
    }

    #[test]
    fn sparse_layout_for_large_ids() {
        let items = funcs(&[0x7f00_dead_beef, 5, u64::MAX]);
        let table = ById::build(&items).unwrap();
        assert!(matches!(table, ById::Sparse(_)));
        check_lookups(&items, &table);
    }

    #[test]
    fn empty_table() {
        let table = ById::<Function>::build(&[]).unwrap();
        assert!(table.get(0).is_none() && table.get(1).is_none());
    }

    #[test]
    fn index_resolves_everything_in_a_valid_profile() {
        let p = valid_profile();
        let index = p.index().unwrap();
        assert!(std::ptr::eq(index.profile(), &p));
        for s in &p.sample {
            let stack: Vec<u64> = index.stack(s).map(|l| l.id).collect();
            assert_eq!(stack, s.location_id);
            for loc in index.stack(s) {
                if loc.mapping_id != 0 {
                    assert_eq!(index.mapping(loc.mapping_id).unwrap().id, loc.mapping_id);
                }
                for line in &loc.line {
                    let f = index.function(line.function_id).unwrap();
                    assert!(!index.string(f.name).is_empty());
                }
            }
        }
        assert_eq!(index.string(p.sample_type[1].ty), "cpu");
        assert_eq!(index.string(-1), "");
        assert_eq!(index.string(1 << 40), "");
        assert_eq!(index.strings().len(), p.string_table.len());
        assert!(index.mapping(0).is_none());
    }

    #[test]
    fn index_replaces_invalid_utf8() {
        let mut p = valid_profile();
        p.string_table.push(b"caf\xe9".to_vec());
        p.function[0].name = p.string_table.len() as i64 - 1;
        let index = p.index().unwrap();
        assert_eq!(index.string(p.function[0].name), "caf\u{FFFD}");
    }
}
